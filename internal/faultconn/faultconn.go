// Package faultconn injects faults between a postbox client and its
// broker, for tests of what RPC semantics promise when frames are lost,
// doubled or late. It is a net.Conn that reads the protocol's frames
// (package wire) in both directions and, by rule, drops, duplicates or
// delays the frames of one op:
//
//	nc, stats, err := faultconn.Dial(ctx, sock,
//		faultconn.DropRequest(wire.OpCall, faultconn.Nth(3)),
//		faultconn.DuplicateRequest(wire.OpCall, faultconn.Random(0.05, 1)),
//		faultconn.DropReply(wire.OpCall, faultconn.Every(10)),
//		faultconn.ReplayRequest(wire.OpCall, faultconn.Nth(7)))
//	c, err := postbox.NewClient(ctx, nc)
//	...
//	c.Close()                    // closes nc, which stops its goroutines
//	fmt.Println(stats.Counts())
//
// Every rule counts the frames it matches and fires on those its When
// selects (Nth, Every, Always, or Random with a seed, so a run can be
// repeated exactly). A frame is acted on by the first rule that fires on
// it; every matching rule counts it. Frames no rule fires on pass
// unchanged and in order.
//
// A duplicated request goes to the broker twice: the original, then a
// copy whose request id has dupBit set (the client never uses that bit).
// Whatever the broker sends for such an id is swallowed, so the client's
// connection never sees a second reply. A CALL's copy goes as a SEND of
// the same message, so a server sees the request twice while the call
// waits (see DuplicateRequest). A replayed request (ReplayRequest) is
// sent again the same way, but only once its reply has been forwarded to
// the client; a reply that another rule drops or delays does not
// trigger it.
//
// A delayed frame is written d later from a timer; frames behind it are
// not held, so it may be overtaken (the broker and the client route by
// request id, so that is a fault they must survive too).
package faultconn

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// dupBit marks the request ids of duplicated requests. The client's ids
// count up from 1 and its group ids use bit 63, so bit 62 is free.
const dupBit = 1 << 62

const groupBit = 1 << 63

// maxFrame bounds the frames read: far above any broker's limit, since
// the broker and client enforce their own.
const maxFrame = 1 << 30

// Dial connects to the broker at socketPath and returns the client's end
// of a connection that applies rules to the frames between the two, and
// the counters of what it did. Pass the connection to postbox.NewClient;
// closing it (the client's Close does) closes the broker connection and
// stops every goroutine and timer this package started.
func Dial(ctx context.Context, socketPath string, rules ...Rule) (net.Conn, *Stats, error) {
	for _, r := range rules {
		if err := r.validate(); err != nil {
			return nil, nil, err
		}
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return nil, nil, err
	}
	c, s, err := Wrap(nc, rules...)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return c, s, nil
}

// Wrap is Dial over an established connection to a broker, which the
// returned connection owns.
func Wrap(broker net.Conn, rules ...Rule) (net.Conn, *Stats, error) {
	for _, r := range rules {
		if err := r.validate(); err != nil {
			return nil, nil, err
		}
	}
	client, proxy := net.Pipe()
	c := &Conn{
		Conn:   client,
		broker: broker,
		proxy:  proxy,
		stats:  newStats(len(rules)),
		timers: make(map[*time.Timer]struct{}),

		replays: make(map[uint64][]byte),
	}
	c.toBroker.w, c.toClient.w = broker, proxy
	for i, r := range rules {
		m := newMatcher(r)
		m.index = i
		if r.Dir == ToBroker {
			c.toBroker.rules = append(c.toBroker.rules, m)
		} else {
			c.toClient.rules = append(c.toClient.rules, m)
		}
	}
	c.wg.Add(2)
	go c.forward(&c.toBroker, proxy)
	go c.forward(&c.toClient, broker)
	return c, c.stats, nil
}

// Conn is the client's end of a faulty connection. Its methods are those
// of net.Conn (a net.Pipe end), safe for concurrent use as net.Conn is;
// Close also ends the forwarding goroutines and pending delays and waits
// for them.
type Conn struct {
	net.Conn          // the client's end of the pipe
	broker   net.Conn // the real connection
	proxy    net.Conn // our end of the pipe

	stats              *Stats
	toBroker, toClient direction
	dups               atomic.Uint64 // last duplicate sequence

	mu      sync.Mutex // guards timers, closed and replays
	timers  map[*time.Timer]struct{}
	closed  bool
	replays map[uint64][]byte // Replay rules' frames by request id, until their reply passes

	wg        sync.WaitGroup // the two forwarders and running delay timers
	closeOnce sync.Once
}

// direction is one way through the connection.
type direction struct {
	rules []*matcher // touched only by this direction's forwarder
	mu    sync.Mutex // guards writes to w: frames are written whole
	w     net.Conn
	buf   []byte // the forwarder's frame buffer, under mu
}

// Close closes both connections and waits for the goroutines and timers
// of c. It is idempotent.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.Conn.Close()
		c.shut()
		c.mu.Lock()
		c.closed = true
		for t := range c.timers {
			if t.Stop() {
				c.wg.Done() // its callback will never run
			}
		}
		clear(c.timers)
		c.mu.Unlock()
		c.wg.Wait()
	})
	return nil
}

// shut closes both inner ends, so both forwarders stop.
func (c *Conn) shut() {
	c.broker.Close()
	c.proxy.Close()
}

// forward copies frames from r to d.w, applying d's rules, until either
// side fails; then it closes both so the other forwarder stops too.
func (c *Conn) forward(d *direction, r net.Conn) {
	defer c.wg.Done()
	defer c.shut()
	fr := wire.NewReader(r, maxFrame, 64<<10)
	for {
		h, p, err := fr.Next()
		if err != nil {
			return
		}
		if d == &c.toBroker {
			c.stats.requests.Add(1)
		} else {
			c.stats.replies.Add(1)
			if h.Request&dupBit != 0 && h.Request&groupBit == 0 {
				c.stats.swallowed.Add(1)
				continue
			}
		}
		rule := d.fired(h)
		if rule == nil {
			if d.write(h, p) != nil {
				return
			}
			if d == &c.toClient && !h.Push() {
				c.replay(h.Request)
			}
			continue
		}
		c.stats.record(rule, h)
		switch rule.Action {
		case Drop:
		case Duplicate:
			if d.write(h, p) != nil {
				return
			}
			dh := h
			dh.Request = dupBit | c.dups.Add(1)
			if dh.Op == wire.OpCall {
				dh.Op = wire.OpSend // see DuplicateRequest
			}
			if d.write(dh, p) != nil {
				return
			}
		case Replay:
			c.mu.Lock()
			c.replays[h.Request] = frame(nil, h, p)
			c.mu.Unlock()
			if d.write(h, p) != nil {
				return
			}
		case Delay:
			c.later(d, rule.Delay, frame(nil, h, p))
		}
	}
}

// fired counts h against every rule of d and returns the first that
// fires, or nil.
func (d *direction) fired(h wire.Header) *matcher {
	var first *matcher
	for _, m := range d.rules {
		if m.matches(h) && m.fire() && first == nil {
			first = m
		}
	}
	return first
}

func (d *direction) write(h wire.Header, p []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.buf = frame(d.buf[:0], h, p)
	_, err := d.w.Write(d.buf)
	return err
}

func (d *direction) writeFrame(b []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.w.Write(b)
}

func frame(b []byte, h wire.Header, p []byte) []byte {
	b = wire.AppendHeader(b, h, len(p))
	return append(b, p...)
}

// replay sends the request waiting for the reply to request id (a
// Replay rule's), now that the reply has been forwarded.
func (c *Conn) replay(id uint64) {
	c.mu.Lock()
	b, ok := c.replays[id]
	if ok {
		delete(c.replays, id)
	}
	c.mu.Unlock()
	if !ok {
		return
	}
	binary.LittleEndian.PutUint64(b[8:16], dupBit|c.dups.Add(1)) // the header's request field
	c.stats.replayed.Add(1)
	c.toBroker.writeFrame(b)
}

// later writes the frame b to d after delay, unless c closes first.
func (c *Conn) later(d *direction, delay time.Duration, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		defer c.wg.Done()
		c.mu.Lock()
		_, pending := c.timers[t]
		delete(c.timers, t)
		c.mu.Unlock()
		if pending {
			d.writeFrame(b)
		}
	})
	c.timers[t] = struct{}{}
}

// Stats counts what a Conn did. Its methods are safe to call at any time,
// concurrently with the traffic.
type Stats struct {
	requests, replies                       atomic.Int64
	dropped, duplicated, delayed, swallowed atomic.Int64
	replayed                                atomic.Int64
	fired                                   []atomic.Int64 // per rule, in Dial's order

	mu     sync.Mutex // guards events
	events []Event
}

// Counts is a snapshot of a Stats.
type Counts struct {
	Requests   int64 // frames read from the client (HELLO included)
	Replies    int64 // frames read from the broker, swallowed ones included
	Dropped    int64 // frames dropped, both ways
	Duplicated int64 // requests sent twice
	Delayed    int64 // frames delayed, both ways
	Swallowed  int64 // broker frames for duplicated or replayed requests, not forwarded
	Replayed   int64 // requests sent again after their reply
}

// Event is one action of a rule.
type Event struct {
	Rule    int // index in Dial's rules
	Action  Action
	Op      wire.Op
	Request uint64 // the frame's request id
	At      time.Time
}

// maxEvents bounds the event log; Counts keep counting past it.
const maxEvents = 1 << 16

func newStats(rules int) *Stats { return &Stats{fired: make([]atomic.Int64, rules)} }

// Counts returns the counters now.
func (s *Stats) Counts() Counts {
	return Counts{
		Requests: s.requests.Load(), Replies: s.replies.Load(),
		Dropped: s.dropped.Load(), Duplicated: s.duplicated.Load(),
		Delayed: s.delayed.Load(), Swallowed: s.swallowed.Load(),
		Replayed: s.replayed.Load(),
	}
}

// Fired returns how many frames rule i (in Dial's order) acted on.
func (s *Stats) Fired(i int) int64 { return s.fired[i].Load() }

// Events returns the actions taken so far, oldest first (at most the
// first 65536).
func (s *Stats) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

func (s *Stats) record(m *matcher, h wire.Header) {
	s.fired[m.index].Add(1)
	switch m.Action {
	case Drop:
		s.dropped.Add(1)
	case Duplicate:
		s.duplicated.Add(1)
	case Delay:
		s.delayed.Add(1)
	}
	s.mu.Lock()
	if len(s.events) < maxEvents {
		s.events = append(s.events, Event{Rule: m.index, Action: m.Action, Op: h.Op, Request: h.Request, At: time.Now()})
	}
	s.mu.Unlock()
}
