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
//	Add(id not remembered)   -> SeenNew: the first sight; run it, then Done
//	Add(id of a running one) -> SeenRunning: a copy; do not run it, and do not
//	                            answer it (the run's reply answers the call)
//	Add(id of a done one)    -> SeenDone: a copy; do not run it
//
// An id is remembered for Retention after its first sight, and at most
// MaxEntries ids are: when full, the oldest is forgotten. A copy of a
// forgotten id is taken for a new request.
type Seen struct {
	cfg  SeenConfig
	now  int64
	ids  map[envelope.ID]bool // remembered ids: running (not yet Done)
	ring ring[seenID]         // the ids in the order first seen
}

// SeenVerdict is Seen.Add's answer.
type SeenVerdict uint8

const (
	// SeenNew: the id's first sight.
	SeenNew SeenVerdict = iota + 1
	// SeenRunning: a copy of a request whose run has not finished.
	SeenRunning
	// SeenDone: a copy of a request whose run finished (Done).
	SeenDone
)

func (v SeenVerdict) String() string {
	switch v {
	case SeenNew:
		return "new"
	case SeenRunning:
		return "running"
	case SeenDone:
		return "done"
	}
	return fmt.Sprintf("SeenVerdict(%d)", uint8(v))
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
	return &Seen{cfg: cfg, ids: make(map[envelope.ID]bool)}, nil
}

// Config returns the record's bounds, defaults filled in.
func (s *Seen) Config() SeenConfig { return s.cfg }

// Len returns how many ids are remembered.
func (s *Seen) Len() int { return s.ring.len() }

// Add records that id was seen at now, and says whether this is its
// first sight (then it is running until Done) or a copy.
func (s *Seen) Add(id envelope.ID, now int64) SeenVerdict {
	s.Expire(now)
	if running, ok := s.ids[id]; ok {
		if running {
			return SeenRunning
		}
		return SeenDone
	}
	if s.ring.len() == s.cfg.MaxEntries {
		s.pop()
	}
	s.ring.push(seenID{id: id, at: s.now}, s.cfg.MaxEntries)
	s.ids[id] = true
	return SeenNew
}

// Done records that the run of id finished (its reply is sent); an id not
// remembered is ignored.
func (s *Seen) Done(id envelope.ID) {
	if _, ok := s.ids[id]; ok {
		s.ids[id] = false
	}
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
