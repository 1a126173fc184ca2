package replycache

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// Checksum identifies a request's method and arguments.
type Checksum [16]byte

// Sum is the checksum of a call of method with the encoded arguments.
func Sum(method string, args []byte) Checksum {
	h := sha256.New()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(method)))
	h.Write(n[:])
	h.Write([]byte(method))
	h.Write(args)
	var s Checksum
	copy(s[:], h.Sum(nil))
	return s
}

// Costs counted against Config.MaxBytes besides the replies themselves.
const (
	EntryOverhead   = 160
	SessionOverhead = 96
)

// Defaults for the zero fields of a Config.
const (
	DefaultMaxEntries = 1 << 16
	DefaultMaxBytes   = 64 << 20
	DefaultRetention  = int64(2 * 60 * 1e9) // two minutes
)

// Config bounds a Cache. Zero fields take the defaults above.
type Config struct {
	// MaxEntries bounds the entries, running and done.
	MaxEntries int
	// MaxBytes bounds the bytes held: EntryOverhead per entry,
	// SessionOverhead per session, plus each kept reply's size.
	MaxBytes int64
	// Retention, in nanoseconds, is how long a done entry is kept when
	// its caller does not acknowledge it, and how long an idle session's
	// watermark is remembered. It should exceed the longest deadline of
	// the calls served: a duplicate arriving later runs again.
	Retention int64
	// MaxEvicted bounds the records kept of done entries evicted for
	// room (id and checksum, no reply: EvictedSize bytes each, not
	// counted in MaxBytes); a duplicate of one is Evicted, not run.
	// Zero: EvictedPerEntry × MaxEntries.
	MaxEvicted int
}

// EvictedPerEntry is how many evicted records the default MaxEvicted
// allows per entry of MaxEntries; EvictedSize is about what one costs
// (id, checksum, time and the index's share).
const (
	EvictedPerEntry = 4
	EvictedSize     = 96
)

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{MaxEntries: DefaultMaxEntries, MaxBytes: DefaultMaxBytes, Retention: DefaultRetention,
		MaxEvicted: EvictedPerEntry * DefaultMaxEntries}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.MaxEntries < 0:
		return fmt.Errorf("replycache: MaxEntries %d is negative", c.MaxEntries)
	case c.MaxBytes < 0:
		return fmt.Errorf("replycache: MaxBytes %d is negative", c.MaxBytes)
	case c.MaxBytes > 0 && c.MaxBytes < EntryOverhead+SessionOverhead:
		return fmt.Errorf("replycache: MaxBytes %d holds no entry (at least %d)", c.MaxBytes, EntryOverhead+SessionOverhead)
	case c.Retention < 0:
		return fmt.Errorf("replycache: Retention %d is negative", c.Retention)
	case c.MaxEvicted < 0:
		return fmt.Errorf("replycache: MaxEvicted %d is negative", c.MaxEvicted)
	}
	return nil
}

// ErrConfig is matched by New's error for a bad Config.
var ErrConfig = errors.New("replycache: bad config")

// Verdict is Begin's decision about a request.
type Verdict uint8

const (
	// Run: a new request; run the handler, then Finish (or Abort).
	Run Verdict = iota + 1
	// Replay: a duplicate of a done request; answer with the cached reply.
	Replay
	// Join: a duplicate of a running request; the waiter is held and
	// handed back by Finish or Abort.
	Join
	// Mismatch: the id is in use with a different checksum.
	Mismatch
	// Evicted: a duplicate of a done request whose reply was dropped to
	// make room, or whose entry was evicted (an evicted record is kept);
	// the call ran, its reply is gone.
	Evicted
	// Acknowledged: the request's sequence is below its session's
	// watermark and not cached: its caller already has the reply.
	Acknowledged
	// Busy: no room could be made (every entry is running).
	Busy
)

func (v Verdict) String() string {
	switch v {
	case Run:
		return "run"
	case Replay:
		return "replay"
	case Join:
		return "join"
	case Mismatch:
		return "mismatch"
	case Evicted:
		return "evicted"
	case Acknowledged:
		return "acknowledged"
	case Busy:
		return "busy"
	}
	return fmt.Sprintf("Verdict(%d)", uint8(v))
}

// Stats are a Cache's current contents.
type Stats struct {
	Running, Done int // entries; Done includes tombstones
	Tombstones    int // done entries whose reply was dropped
	Sessions      int
	Bytes         int64
	Evicted       int // records of evicted done entries (not in Bytes)
}

// Cache is the reply cache. It is not safe for concurrent use: its owner
// serializes calls (one lock around each).
type Cache[R, W any] struct {
	cfg      Config
	now      int64
	entries  map[envelope.ID]*entry[R, W]
	sessions map[[16]byte]*session[R, W]
	done     list[entry[R, W]]   // done entries in the order they finished
	bodies   list[entry[R, W]]   // done entries still holding a reply, in the order they finished
	idle     list[session[R, W]] // sessions with no entries, in the order they became idle
	pinned   *session[R, W]      // never marked idle (Begin is adding an entry to it)
	evicted  map[envelope.ID]evictedRec
	evictedQ ring[evictedID] // the evicted records in the order evicted (and finished)
	running  int
	tombs    int
	bytes    int64
}

type entry[R, W any] struct {
	id      envelope.ID
	sum     Checksum
	sess    *session[R, W]
	running bool
	hasBody bool
	reply   R
	size    int64
	doneAt  int64
	waiters []W
	done    links[entry[R, W]]
	body    links[entry[R, W]]
}

// evictedRec is what is kept of a done entry evicted for room.
type evictedRec struct {
	sum    Checksum
	doneAt int64
}

type evictedID struct {
	id     envelope.ID
	doneAt int64
}

type session[R, W any] struct {
	id        [16]byte
	acked     uint64
	lastSeq   uint64         // the highest sequence Begin saw
	seqs      []*entry[R, W] // the session's entries, by sequence
	idle      bool           // in Cache.idle
	idleSince int64          // when it became idle
	idleLinks links[session[R, W]]
}

// New returns an empty cache. Zero fields of cfg take the defaults.
func New[R, W any](cfg Config) (*Cache[R, W], error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	d := DefaultConfig()
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = d.MaxEntries
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = d.MaxBytes
	}
	if cfg.Retention == 0 {
		cfg.Retention = d.Retention
	}
	if cfg.MaxEvicted == 0 {
		cfg.MaxEvicted = EvictedPerEntry * cfg.MaxEntries
	}
	return &Cache[R, W]{
		cfg:      cfg,
		entries:  make(map[envelope.ID]*entry[R, W]),
		sessions: make(map[[16]byte]*session[R, W]),
		evicted:  make(map[envelope.ID]evictedRec),
	}, nil
}

// Config returns the cache's bounds, defaults filled in.
func (c *Cache[R, W]) Config() Config { return c.cfg }

// Stats returns the cache's contents.
func (c *Cache[R, W]) Stats() Stats {
	return Stats{Running: c.running, Done: len(c.entries) - c.running, Tombstones: c.tombs,
		Sessions: len(c.sessions), Bytes: c.bytes, Evicted: c.evictedQ.len()}
}

func (c *Cache[R, W]) clock(now int64) int64 {
	c.now = max(c.now, now)
	return c.now
}

// Begin decides about a request with id and checksum sum whose rpc-acked
// header said acked (0 if absent). For Join it keeps w; for Replay it
// returns the cached reply.
func (c *Cache[R, W]) Begin(id envelope.ID, sum Checksum, acked uint64, w W, now int64) (Verdict, R) {
	var zero R
	c.Expire(now)
	s := c.sessions[id.Session()]
	if s == nil {
		if !c.makeRoom(SessionOverhead, false) {
			return Busy, zero
		}
		s = &session[R, W]{id: id.Session()}
		c.sessions[s.id] = s
		c.bytes += SessionOverhead
		c.markIdle(s)
	}
	if acked > s.acked {
		s.acked = acked
		c.releaseBelow(s)
	}
	s.lastSeq = max(s.lastSeq, id.Seq())
	if e := c.entries[id]; e != nil {
		switch {
		case e.sum != sum:
			return Mismatch, zero
		case e.running:
			e.waiters = append(e.waiters, w)
			return Join, zero
		case e.hasBody:
			return Replay, e.reply
		}
		return Evicted, zero
	}
	if id.Seq() < s.acked {
		return Acknowledged, zero
	}
	if ev, ok := c.evicted[id]; ok {
		if ev.sum != sum {
			return Mismatch, zero
		}
		return Evicted, zero
	}
	// s must survive the room-making below, which forgets idle sessions
	// (and may evict s's last entry, which would make it idle).
	c.unmarkIdle(s)
	c.pinned = s
	ok := c.makeRoom(EntryOverhead, true)
	c.pinned = nil
	if !ok {
		if len(s.seqs) == 0 {
			c.markIdle(s)
		}
		return Busy, zero
	}
	e := &entry[R, W]{id: id, sum: sum, sess: s, running: true}
	c.entries[id] = e
	c.running++
	c.bytes += EntryOverhead
	i, _ := slices.BinarySearchFunc(s.seqs, id.Seq(), cmpSeq[R, W])
	s.seqs = slices.Insert(s.seqs, i, e)
	return Run, zero
}

// Finish records the reply of a running request, size bytes to keep, and
// returns the waiters that joined it (to answer with reply). A reply for
// a request that is not running is ignored.
func (c *Cache[R, W]) Finish(id envelope.ID, reply R, size int64, now int64) []W {
	now = c.clock(now)
	e := c.entries[id]
	if e == nil || !e.running {
		return nil
	}
	ws := e.waiters
	e.waiters = nil
	if id.Seq() < e.sess.acked {
		c.remove(e)
		return ws
	}
	e.running = false
	c.running--
	e.reply, e.size, e.hasBody, e.doneAt = reply, max(size, 0), true, now
	c.bytes += e.size
	c.done.pushBack(e, doneLinks[R, W])
	c.bodies.pushBack(e, bodyLinks[R, W])
	c.makeRoom(0, false)
	c.Expire(now)
	return ws
}

// Abort forgets a running request that produced no reply (a duplicate
// will run it again) and returns the waiters that joined it.
func (c *Cache[R, W]) Abort(id envelope.ID) []W {
	e := c.entries[id]
	if e == nil || !e.running {
		return nil
	}
	ws := e.waiters
	e.waiters = nil
	c.remove(e)
	return ws
}

// Ack raises session's watermark to below, releasing its done entries
// with a lower sequence (Begin does this with each request's rpc-acked).
func (c *Cache[R, W]) Ack(sess [16]byte, below uint64) {
	if s := c.sessions[sess]; s != nil && below > s.acked {
		s.acked = below
		c.releaseBelow(s)
	}
}

// Expire releases the done entries that finished Retention or more
// before now, and forgets the sessions idle that long.
func (c *Cache[R, W]) Expire(now int64) {
	now = c.clock(now)
	for e := c.done.head; e != nil && now-e.doneAt >= c.cfg.Retention; e = c.done.head {
		c.remove(e)
	}
	for s := c.oldestIdle(); s != nil && now-s.idleSince >= c.cfg.Retention; s = c.oldestIdle() {
		c.forget(s)
	}
	for c.evictedQ.len() > 0 && now-c.evictedQ.front().doneAt >= c.cfg.Retention {
		c.popEvicted()
	}
}

// Lookup reports whether id is cached and whether it is running (for
// tests and diagnostics).
func (c *Cache[R, W]) Lookup(id envelope.ID) (cached, running bool) {
	e := c.entries[id]
	return e != nil, e != nil && e.running
}

func cmpSeq[R, W any](e *entry[R, W], seq uint64) int {
	a := e.id.Seq()
	switch {
	case a < seq:
		return -1
	case a > seq:
		return 1
	}
	return 0
}

// releaseBelow releases s's done entries below its watermark; running
// ones are released when they finish.
func (c *Cache[R, W]) releaseBelow(s *session[R, W]) {
	var doomed []*entry[R, W]
	for _, e := range s.seqs {
		if e.id.Seq() >= s.acked {
			break
		}
		if !e.running {
			doomed = append(doomed, e)
		}
	}
	for _, e := range doomed {
		c.remove(e)
	}
}

// makeRoom evicts done entries, replies and idle sessions until bytes
// more (and one more entry, if entry) fit, and reports whether they do.
func (c *Cache[R, W]) makeRoom(bytes int64, entry bool) bool {
	n := 0
	if entry {
		n = 1
	}
	for len(c.entries)+n > c.cfg.MaxEntries {
		e := c.victim(&c.done, doneLinks[R, W])
		if e == nil {
			return false
		}
		c.evict(e)
	}
	for c.bytes+bytes > c.cfg.MaxBytes {
		if e := c.victim(&c.bodies, bodyLinks[R, W]); e != nil {
			c.strip(e)
		} else if s := c.oldestIdle(); s != nil {
			c.forget(s)
		} else if e := c.victim(&c.done, doneLinks[R, W]); e != nil {
			c.evict(e)
		} else {
			return false
		}
	}
	return true
}

// victim is the done entry of l (done or bodies) to give up for room:
// the oldest that is not waited for, else the oldest; nil if l is empty.
func (c *Cache[R, W]) victim(l *list[entry[R, W]], at func(*entry[R, W]) *links[entry[R, W]]) *entry[R, W] {
	for e := l.head; e != nil; e = at(e).next {
		if !e.waitedFor() {
			return e
		}
	}
	return l.head
}

// waitedFor reports whether a done entry's caller is known to wait for
// its reply still: a later request of its session said, in rpc-acked,
// that this is the lowest sequence it has no reply for.
func (e *entry[R, W]) waitedFor() bool {
	seq := e.id.Seq()
	return seq == e.sess.acked && e.sess.lastSeq > seq
}

// evict removes a done entry for room, keeping a record of it (the
// oldest record goes if there are MaxEvicted): its caller may still
// retry, and must learn that it ran rather than run it again.
func (c *Cache[R, W]) evict(e *entry[R, W]) {
	if c.evictedQ.len() == c.cfg.MaxEvicted {
		c.popEvicted()
	}
	// Records leave in the order they came (the oldest first), so a
	// record's time is never before the one ahead of it: a victim that
	// is not the oldest done entry keeps its record a little longer.
	at := e.doneAt
	if c.evictedQ.len() > 0 {
		at = max(at, c.evictedQ.back().doneAt)
	}
	c.evictedQ.push(evictedID{id: e.id, doneAt: at}, c.cfg.MaxEvicted)
	c.evicted[e.id] = evictedRec{sum: e.sum, doneAt: at}
	c.remove(e)
}

// popEvicted forgets the oldest evicted record.
func (c *Cache[R, W]) popEvicted() {
	delete(c.evicted, c.evictedQ.pop().id)
}

// strip drops a done entry's reply, leaving a tombstone.
func (c *Cache[R, W]) strip(e *entry[R, W]) {
	var zero R
	c.bodies.remove(e, bodyLinks[R, W])
	c.bytes -= e.size
	e.reply, e.size, e.hasBody = zero, 0, false
	c.tombs++
}

// remove forgets an entry (running or done).
func (c *Cache[R, W]) remove(e *entry[R, W]) {
	if e.running {
		c.running--
	} else {
		if e.hasBody {
			c.bodies.remove(e, bodyLinks[R, W])
		} else {
			c.tombs--
		}
		c.done.remove(e, doneLinks[R, W])
	}
	c.bytes -= EntryOverhead + e.size
	delete(c.entries, e.id)
	s := e.sess
	if i, ok := slices.BinarySearchFunc(s.seqs, e.id.Seq(), cmpSeq[R, W]); ok {
		s.seqs = slices.Delete(s.seqs, i, i+1)
	}
	if len(s.seqs) == 0 {
		c.markIdle(s)
	}
}

// forget drops an idle session and its watermark.
func (c *Cache[R, W]) forget(s *session[R, W]) {
	c.unmarkIdle(s)
	delete(c.sessions, s.id)
	c.bytes -= SessionOverhead
}

func (c *Cache[R, W]) markIdle(s *session[R, W]) {
	if !s.idle && s != c.pinned {
		s.idle, s.idleSince = true, c.now
		c.idle.pushBack(s, idleLinks[R, W])
	}
}

func (c *Cache[R, W]) unmarkIdle(s *session[R, W]) {
	if s.idle {
		s.idle = false
		c.idle.remove(s, idleLinks[R, W])
	}
}

// oldestIdle returns the session idle longest, nil if none.
func (c *Cache[R, W]) oldestIdle() *session[R, W] { return c.idle.head }
