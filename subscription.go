package postbox

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// Policy is what a publication does when it finds a subscription's
// buffer full.
type Policy uint8

const (
	// PolicyBlock: the publisher waits for room (the default).
	PolicyBlock Policy = Policy(wire.PolicyBlock)
	// PolicyDropOldest: the oldest event not yet sent is dropped.
	PolicyDropOldest Policy = Policy(wire.PolicyDropOldest)
	// PolicyDropNewest: the new publication is dropped.
	PolicyDropNewest Policy = Policy(wire.PolicyDropNewest)
	// PolicyDisconnect: the subscription ends with ErrLimit.
	PolicyDisconnect Policy = Policy(wire.PolicyDisconnect)
)

var policyNames = [...]string{"block", "drop-oldest", "drop-newest", "disconnect"}

func (p Policy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// ParsePolicy reads a policy's name: block, drop-oldest, drop-newest,
// disconnect (ErrInvalid otherwise).
func ParsePolicy(s string) (Policy, error) {
	for i, n := range policyNames {
		if n == s {
			return Policy(i), nil
		}
	}
	return 0, fmt.Errorf("%w: policy %q: want block, drop-oldest, drop-newest or disconnect", ErrInvalid, s)
}

// SubscribeOption configures Subscribe.
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct {
	queue  string
	buffer uint32
	policy Policy
	filter wire.Filter
}

// Queue (Subscribe) joins the queue group name: the group's members
// share one copy of each publication, round robin.
func Queue(name string) SubscribeOption { return func(o *subscribeOptions) { o.queue = name } }

// Buffer (Subscribe) bounds the events the broker holds for the
// subscription that Next has not handed out yet: 1..65536, default 256.
func Buffer(n int) SubscribeOption {
	return func(o *subscribeOptions) { o.buffer = uint32(min(max(n, 0), wire.MaxSubscribeBuffer+1)) }
}

// WithPolicy (Subscribe) sets the overflow policy (default PolicyBlock).
func WithPolicy(p Policy) SubscribeOption { return func(o *subscribeOptions) { o.policy = p } }

// FilterType (Subscribe) takes only publications whose type is in
// [min, max].
func FilterType(min, max int64) SubscribeOption {
	return func(o *subscribeOptions) { o.filter.HasType, o.filter.TypeMin, o.filter.TypeMax = true, min, max }
}

// FilterHeader (Subscribe) takes only publications with a user header
// key whose value is value. Filters add up: all must hold. The broker
// evaluates them: what they refuse never reaches the client.
func FilterHeader(key, value string) SubscribeOption {
	return func(o *subscribeOptions) {
		o.filter.Equals = append(o.filter.Equals, wire.KV{Key: []byte(key), Value: []byte(value)})
	}
}

// FilterHeaderPresent (Subscribe) takes only publications that have a
// user header key.
func FilterHeaderPresent(key string) SubscribeOption {
	return func(o *subscribeOptions) { o.filter.Present = append(o.filter.Present, []byte(key)) }
}

// Subscription is a stream of events from the publications matching one
// pattern. Next is meant for one goroutine at a time (or use Events);
// Close may be called from any. It ends when its connection does, unless
// the client reconnects (WithReconnect): then it subscribes again on the
// new connection, and a gap notice (Gap, Missed 0) marks the break
// (reconnect.go).
type Subscription struct {
	c       *Client
	pattern string
	buffer  uint32
	req     wire.Subscribe // what a reconnect subscribes again with

	mu      sync.Mutex // guards lk, id, queue, qhead, err, granted, stale, missed, closed
	lk      *link      // the stream's connection, and its request id there
	id      uint64
	queue   []*Event // received, not yet taken: queue[qhead:]
	qhead   int
	err     error // why the stream ended; nil while it runs
	granted uint32
	stale   int // queued events of an earlier connection's stream: taken, they credit nothing
	missed  uint64
	closed  bool
	ready   chan struct{} // signalled when queue grows or the stream ends
	ended   chan struct{} // closed when the stream ended

	// The reader's own (subStream.Push): the last subject and sender
	// seen, and its connection's chunks events and small bodies are cut
	// from (set before the stream is opened).
	subj       string
	wsender    wire.Identity
	senderExt  string
	sender     Identity
	haveSender bool
	chunks     *eventChunks

	evOnce sync.Once
	events chan *Event
	stop   chan struct{} // closed by Close: the Events pump stops
	pumped chan struct{} // closed when the Events pump returned
}

// Subscribe subscribes to pattern ("*" one token, ">" the rest). Options:
// Queue, Buffer, WithPolicy, FilterType, FilterHeader,
// FilterHeaderPresent. Errors: ErrInvalid (a bad pattern or option),
// ErrPermission (a claim the pattern reaches denies r, or "$SYS." without
// being root or the broker's user).
func (c *Client) Subscribe(ctx context.Context, pattern string, opts ...SubscribeOption) (*Subscription, error) {
	o := subscribeOptions{buffer: 256}
	for _, op := range opts {
		op(&o)
	}
	s := &Subscription{c: c, pattern: pattern, buffer: o.buffer, ready: make(chan struct{}, 1),
		ended: make(chan struct{}), stop: make(chan struct{}), pumped: make(chan struct{}),
		req: wire.Subscribe{Pattern: []byte(pattern), Queue: []byte(o.queue), Buffer: o.buffer, Policy: uint8(o.policy),
			Ext: wire.AppendFilter(nil, &o.filter)}}
	if c.rc != nil && !c.rc.track(s) {
		return nil, c.rc.stopErr()
	}
	for {
		lk := c.link()
		s.mu.Lock()
		var err error
		if s.lk != lk { // else a reconnect reopened it there already
			err = s.openLocked(lk)
		}
		s.mu.Unlock()
		if err == nil {
			break
		}
		if c.rc == nil {
			return nil, fmt.Errorf("subscribe %q: %w", pattern, err)
		}
		if err := c.rc.awaitNext(ctx, c, lk, fmt.Sprintf("subscribe %q", pattern)); err != nil {
			c.rc.untrack(s)
			return nil, err
		}
	}
	// A refused SUBSCRIBE ends at once; a PING orders after it.
	if err := c.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("subscribe %q: %w", pattern, err)
	}
	return s, nil
}

// openLocked starts the subscription's stream on lk: a SUBSCRIBE with a
// new request id and a whole buffer of credit. s.mu is held; the
// connection's event chunks are set before the stream can get a push.
func (s *Subscription) openLocked(lk *link) error {
	s.chunks = &lk.events
	id, err := lk.m.OpenStream((*subStream)(s))
	if err != nil {
		return err
	}
	s.lk, s.id, s.granted = lk, id, 0
	lk.m.Post(false, wire.Header{Op: wire.OpSubscribe, Request: id}, s.req.Append)
	return nil
}

// reopen subscribes again on a new connection after a reconnect
// (reconnect.go), unless the subscription was closed or ended meanwhile,
// and queues the gap notice that says publications may have been missed.
// A refusal ends the stream as any SUBSCRIBE reply does.
func (s *Subscription) reopen(lk *link) {
	s.mu.Lock()
	if s.closed || s.err != nil || s.lk == lk || s.lk == nil { // nil: Subscribe has yet to open it, and will
		s.mu.Unlock()
		return
	}
	if s.openLocked(lk) != nil { // a connection lost again: the next reconnect reopens it
		s.mu.Unlock()
		return
	}
	// The gap notice, after what came before the break; none of those
	// queued credits the new stream.
	s.queue = append(s.queue, &Event{Gap: true})
	s.stale = len(s.queue) - s.qhead
	s.mu.Unlock()
	s.signal()
}

// eventChunks are the chunks a connection's events and their small
// bodies are cut from. They belong to its reader goroutine (every
// subStream.Push runs on it) and are shared by all its subscriptions, so
// that 10,000 subscriptions with a few events each do not hold a slab
// and an arena each. A chunk lives while any event cut from it is
// referenced.
type eventChunks struct {
	slab  []Event
	arena []byte
}

// Chunk sizes: events per slab, and the bytes of the chunk that bodies
// up to an eighth of it share.
const (
	eventSlab  = 64
	eventArena = 32 << 10
)

// event returns a new Event from the slab.
func (ch *eventChunks) event() *Event {
	if len(ch.slab) == 0 {
		ch.slab = make([]Event, eventSlab)
	}
	ev := &ch.slab[0]
	ch.slab = ch.slab[1:]
	return ev
}

// body returns a copy of b: from the arena, or its own if large.
func (ch *eventChunks) body(b []byte) []byte {
	n := len(b)
	switch {
	case n == 0:
		return nil
	case n > eventArena/8:
		return append([]byte(nil), b...)
	}
	if cap(ch.arena)-len(ch.arena) < n {
		ch.arena = make([]byte, 0, eventArena)
	}
	at := len(ch.arena)
	ch.arena = append(ch.arena, b...)
	return ch.arena[at : at+n : at+n]
}

// subStream is a Subscription as the connection sees it: the mux.Stream
// of its SUBSCRIBE. Its methods run on the connection's reader.
type subStream Subscription

func (st *subStream) Push(hd wire.Header, p []byte) {
	s := (*Subscription)(st)
	if hd.Op != wire.OpEvent {
		return
	}
	var e wire.Event
	if e.Decode(p) != nil {
		return
	}
	// Consecutive events mostly share a subject and a sender: those are
	// made once, and events and small bodies come from shared chunks, so
	// an event costs few allocations (the reader's; no lock needed).
	if string(e.Subject) != st.subj {
		st.subj = string(e.Subject)
	}
	if e.Sender != st.wsender || string(e.Ext) != st.senderExt || !st.haveSender {
		st.wsender, st.senderExt, st.haveSender = e.Sender, string(e.Ext), true
		st.sender = identityWithName(e.Sender, e.Ext)
	}
	ev := st.chunks.event()
	*ev = Event{Subject: st.subj, Type: e.Type, Sender: st.sender,
		SentAt: time.Unix(0, e.SentUnixNano), Missed: e.Missed, Gap: e.Flags&wire.EventGap != 0,
		Body: st.chunks.body(e.Body)}
	if len(e.Headers) > 0 {
		var m Message
		if m.setHeaders(e.Headers) == nil {
			ev.hdr = m.hdr
		}
	}
	s.mu.Lock()
	s.missed += e.Missed
	if len(s.queue) == cap(s.queue) && s.qhead >= len(s.queue)/2 {
		// Full, half of it taken: slide the untaken events down rather
		// than grow an array whose front is spent (less taken: grow).
		n := copy(s.queue, s.queue[s.qhead:])
		clear(s.queue[n:])
		s.queue, s.qhead = s.queue[:n], 0
	}
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	s.signal()
}

func (st *subStream) End(hd wire.Header, p []byte) { (*Subscription)(st).end(replyError(hd.Status, p)) }

// Stopped: the connection stopped. A reconnecting client subscribes
// again on its next connection instead of ending the subscription.
func (st *subStream) Stopped(err error) {
	s := (*Subscription)(st)
	if s.c.rc != nil && s.c.rc.resumes() {
		return
	}
	s.end(err)
}

func (s *Subscription) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

func (s *Subscription) end(err error) {
	s.mu.Lock()
	first := s.err == nil
	if first {
		s.err = err
		close(s.ended)
	}
	s.mu.Unlock()
	if first && s.c.rc != nil {
		s.c.rc.untrack(s)
	}
	s.signal()
}

// Next returns the next event, waiting until one arrives, the stream
// ends (its error: ErrLimit for policy disconnect, ErrClosed, ErrCanceled
// after Close) or ctx ends. Events already received are returned before
// the end is reported.
func (s *Subscription) Next(ctx context.Context) (*Event, error) {
	for {
		s.mu.Lock()
		if s.qhead < len(s.queue) {
			ev := s.queue[s.qhead]
			s.queue[s.qhead] = nil
			if s.qhead++; s.qhead == len(s.queue) {
				s.queue, s.qhead = s.queue[:0], 0 // drained: the array is reused
			}
			var grant uint32
			// The broker hands out at most a window of events before
			// credit comes back: Buffer, or half of it under
			// PolicyDropOldest. A quarter of Buffer is below either.
			// Events of an earlier connection's stream credit nothing.
			if s.stale > 0 {
				s.stale--
			} else if s.granted++; s.granted >= max(1, s.buffer/4) && s.err == nil && !s.closed {
				grant, s.granted = s.granted, 0
			}
			lk, id := s.lk, s.id
			s.mu.Unlock()
			if grant > 0 {
				cr := wire.Credit{N: grant}
				lk.m.Post(false, wire.Header{Op: wire.OpCredit, Request: id}, cr.Append)
			}
			return ev, nil
		}
		err := s.err
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		select {
		case <-s.ready:
		case <-ctx.Done():
			return nil, contextEnded(ctx, fmt.Sprintf("next event of %q", s.pattern))
		}
	}
}

// Events returns a channel of the subscription's events, fed by a
// goroutine that calls Next; it is closed when the stream ends (Err says
// why) or Close is called. Use Events or Next, not both.
func (s *Subscription) Events() <-chan *Event {
	s.evOnce.Do(func() {
		s.events = make(chan *Event)
		go s.pump()
	})
	return s.events
}

func (s *Subscription) pump() {
	defer close(s.pumped)
	defer close(s.events)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		ev, err := s.Next(ctx)
		if err != nil {
			return
		}
		select {
		case s.events <- ev:
		case <-s.stop:
			return
		}
	}
}

// Err returns why the stream ended, or nil while it runs.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Missed returns how many publications the subscription dropped so far,
// as the gap notices of the events received said.
func (s *Subscription) Missed() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.missed
}

// Close ends the subscription: it cancels the SUBSCRIBE and waits for
// the broker to confirm (at most the client's grace), and stops the
// Events pump. It is idempotent.
func (s *Subscription) Close() error {
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	lk, id := s.lk, s.id
	s.mu.Unlock()
	if first {
		close(s.stop)
		lk.m.Post(true, wire.Header{Op: wire.OpCancel, Flags: wire.FlagUrgent, Request: id}, nil)
	}
	var err error
	t := time.NewTimer(max(s.c.grace, time.Second))
	select {
	case <-s.ended:
	case <-lk.m.Done():
	case <-t.C:
		err = fmt.Errorf("%w: subscription %q closed before the broker confirmed", ErrCanceled, s.pattern)
	}
	t.Stop()
	s.end(fmt.Errorf("%w: subscription %q closed", ErrCanceled, s.pattern))
	s.evOnce.Do(func() { close(s.pumped) }) // no pump was started
	<-s.pumped
	return err
}
