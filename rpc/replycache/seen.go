package replycache

import (
	"fmt"

	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// DefaultSeenEntries is SeenConfig.MaxEntries's default.
const DefaultSeenEntries = 1 << 16

// SeenConfig bounds a Seen. Zero fields take the defaults
// (DefaultSeenEntries, DefaultRetention).
type SeenConfig struct {
	// MaxEntries bounds the ids remembered.
	MaxEntries int
	// Retention, in nanoseconds, is how long an id is remembered. It
	// should exceed the longest deadline of the calls served: a copy
	// arriving later is taken for a new request.
	Retention int64
}

// Validate names the first bad field.
func (c SeenConfig) Validate() error {
	switch {
	case c.MaxEntries < 0:
		return fmt.Errorf("replycache: seen MaxEntries %d is negative", c.MaxEntries)
	case c.Retention < 0:
		return fmt.Errorf("replycache: seen Retention %d is negative", c.Retention)
	}
	return nil
}

// Seen is the record of the request ids a server has taken under maybe
// semantics: ids only, no replies, so that a copy of a request (a frame
// a faulty transport duplicated or replayed) is recognised and not run
// a second time. Like Cache it is a deterministic core: no goroutines,
// no clock (times are nanoseconds passed in, taken as non-decreasing),
// and not safe for concurrent use.
//
//	Add(id not remembered)   -> true: the first sight; run it
//	Add(id remembered)       -> false: a copy; do not run it
//
// An id is remembered for Retention after its first sight, and at most
// MaxEntries ids are: when full, the oldest is forgotten. A copy of a
// forgotten id is taken for a new request.
type Seen struct {
	cfg  SeenConfig
	now  int64
	ids  map[envelope.ID]struct{}
	ring ring[seenID] // the ids in the order first seen
}

type seenID struct {
	id envelope.ID
	at int64
}

// NewSeen returns an empty record. Zero fields of cfg take the defaults.
func NewSeen(cfg SeenConfig) (*Seen, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = DefaultSeenEntries
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	return &Seen{cfg: cfg, ids: make(map[envelope.ID]struct{})}, nil
}

// Config returns the record's bounds, defaults filled in.
func (s *Seen) Config() SeenConfig { return s.cfg }

// Len returns how many ids are remembered.
func (s *Seen) Len() int { return s.ring.len() }

// Add records that id was seen at now, and reports whether this is its
// first sight (false: it is remembered, a copy).
func (s *Seen) Add(id envelope.ID, now int64) bool {
	s.Expire(now)
	if _, ok := s.ids[id]; ok {
		return false
	}
	if s.ring.len() == s.cfg.MaxEntries {
		s.pop()
	}
	s.ring.push(seenID{id: id, at: s.now}, s.cfg.MaxEntries)
	s.ids[id] = struct{}{}
	return true
}

// Expire forgets the ids first seen Retention or more before now.
func (s *Seen) Expire(now int64) {
	s.now = max(s.now, now)
	for s.ring.len() > 0 && s.now-s.ring.front().at >= s.cfg.Retention {
		s.pop()
	}
}

// pop forgets the oldest id.
func (s *Seen) pop() { delete(s.ids, s.ring.pop().id) }
