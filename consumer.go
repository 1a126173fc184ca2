package postbox

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// Consumer is a stream of messages from one mailbox: the broker pushes
// messages ahead of the application, up to the prefetch window, so the
// receive path costs no round trip per message. Next is meant for one
// goroutine at a time; Close may be called from any.
//
// Close ends the stream without losing messages. Prefetched messages that
// are leased go back to the mailbox (nacked). Under AutoAck the broker has
// already removed the prefetched messages, so they are kept instead: after
// Close, Next still returns every auto-acked message received (then the
// end error), and an application that must not drop a message drains the
// consumer with Next until it fails. Drain ends the stream keeping the
// leased messages received too, for Next (a worker pool that stops
// taking work but serves what it was sent).
type Consumer struct {
	c      *Client
	id     atomic.Uint64 // its CONSUME's request id; a new one on each reconnect
	name   string
	window uint32
	typ    int64 // as asked: a reconnect asks again
	flags  uint8
	lk     *link // the connection it streams on; guarded by mu

	mu      sync.Mutex // guards queue, head, err, granted, closed
	queue   []*Message // received, not yet handed out; live part is queue[head:]
	head    int
	err     error         // why the stream ended; nil while it runs
	granted uint32        // messages handed out since credit was last granted
	manual  bool          // ManualCredit: only Credit grants credit
	avail   int64         // under manual: window + credits granted - messages handed out
	closed  bool          // Close was called: leased arrivals are nacked, no credit is granted
	closing bool          // Close began: no reopening
	ready   chan struct{} // signalled when queue grows or the stream ends
	ended   chan struct{} // closed when the stream ended
}

// Consume starts a consumer. Options: Type (msgrcv selector), Prefetch
// (default 256), AutoAck, ManualCredit.
//
// Credit is how many more messages the broker may send. By default the
// consumer starts with the Prefetch window and Next grants credit back
// as it hands messages out (in batches of half the window). Under
// ManualCredit it starts with the same window but Next grants nothing:
// Credit(n) lets n more in. After a reconnect the stream reopens with
// the credit it had left: the window plus every Credit, less the
// messages Next handed out and those still queued.
func (m *Mailbox) Consume(ctx context.Context, opts ...ConsumeOption) (*Consumer, error) {
	o := consumeDefaults(opts)
	var flags uint8
	if o.autoAck {
		flags |= wire.FlagAutoAck
	}
	c := m.c
	cons := &Consumer{c: c, name: m.name, window: o.prefetch, typ: o.typ, flags: flags,
		manual: o.manual, avail: int64(o.prefetch),
		ready: make(chan struct{}, 1), ended: make(chan struct{})}
	if c.rc != nil && !c.rc.track(cons) {
		return nil, c.rc.stopErr()
	}
	for {
		lk := c.link()
		cons.mu.Lock()
		var err error
		if cons.lk != lk { // else a reconnect reopened it there already
			err = cons.openLocked(lk)
		}
		cons.mu.Unlock()
		if err == nil {
			break
		}
		if c.rc == nil {
			return nil, err
		}
		if err := c.rc.awaitNext(ctx, c, lk, fmt.Sprintf("consume from %q", m.name)); err != nil {
			c.rc.untrack(cons)
			return nil, err
		}
	}
	// Errors such as ErrNotFound or ErrPermission end the stream at once;
	// surface them here with a round trip that orders after CONSUME.
	if err := c.Ping(ctx); err != nil {
		// Ping already waited out the reply grace if ctx ended.
		cons.close(ctx, 0, false)
		return nil, err
	}
	cons.mu.Lock()
	err := cons.err
	cons.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return cons, nil
}

// openLocked starts the consumer's stream on lk: a CONSUME with a new
// request id and the whole window as credit (under ManualCredit, the
// credit not yet used: avail less the messages queued). cn.mu is held, so that
// Push (which takes it) sees cn.lk set before it decodes a delivery of
// the new stream.
func (cn *Consumer) openLocked(lk *link) error {
	id, err := lk.m.OpenStream((*consumerStream)(cn))
	if err != nil {
		return err
	}
	cn.id.Store(id)
	cn.lk, cn.granted = lk, 0
	credit := cn.window
	if cn.manual {
		credit = uint32(min(max(cn.avail-int64(len(cn.queue)-cn.head), 0), int64(^uint32(0))))
	}
	req := wire.Consume{Name: []byte(cn.name), Type: cn.typ, Credit: credit}
	lk.m.Post(false, wire.Header{Op: wire.OpConsume, Flags: cn.flags, Request: id}, req.Append)
	return nil
}

// reopen re-establishes the consumer on a new connection after a
// reconnect (reconnect.go), unless it was closed or ended meanwhile. An
// error (the mailbox is gone) ends the stream as any CONSUME reply does.
func (cn *Consumer) reopen(lk *link) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.closing || cn.err != nil || cn.lk == lk {
		return
	}
	cn.openLocked(lk) // a connection lost again: the next reconnect reopens it
}

// detach is Stopped for a consumer that will be reopened: leased
// messages not yet handed out are dropped (their leases died with the
// connection; the broker returns them to the mailbox), auto-acked ones
// kept for Next.
func (cn *Consumer) detach() {
	cn.mu.Lock()
	kept := cn.queue[:0]
	for _, m := range cn.queue[cn.head:] {
		if m.lease == 0 {
			kept = append(kept, m)
		} else {
			m.CloseFiles() // redelivered with new ones
		}
	}
	clear(cn.queue[len(kept):])
	cn.queue, cn.head = kept, 0
	cn.mu.Unlock()
}

// consumerStream is a Consumer as the connection sees it: the mux.Stream
// of its CONSUME request. Its methods run on the connection's reader.
type consumerStream Consumer

// Push takes a DELIVER payload.
func (s *consumerStream) Push(_ wire.Header, p []byte) {
	cn := (*Consumer)(s)
	msg := cn.c.decodeMessage(p, cn.name)
	if msg == nil { // its descriptors, if any, are closed by the reader
		var d wire.Delivery
		if d.Decode(p) == nil && d.Lease != 0 {
			cn.c.conn().Nack([]uint64{d.Lease})
		}
		return
	}
	cn.mu.Lock()
	msg.lk = cn.lk // the stream's connection: openLocked set it, under mu, before posting its CONSUME
	// This frame's descriptors (files.go) are the message's now.
	msg.setFiles(cn.lk.m.TakeFiles())
	if cn.closed && msg.lease != 0 {
		// Close has run, but the broker had not yet seen its CANCEL.
		cn.mu.Unlock()
		msg.CloseFiles()
		cn.c.conn().Nack([]uint64{msg.lease})
		return
	}
	if cn.head > 0 && len(cn.queue) == cap(cn.queue) {
		n := copy(cn.queue, cn.queue[cn.head:])
		clear(cn.queue[n:])
		cn.queue, cn.head = cn.queue[:n], 0
	}
	if msg.Urgent() {
		// Urgent messages overtake the prefetched ones, FIFO among
		// themselves: they lead the queue.
		i := cn.head
		for i < len(cn.queue) && cn.queue[i].Urgent() {
			i++
		}
		cn.queue = slices.Insert(cn.queue, i, msg)
	} else {
		cn.queue = append(cn.queue, msg)
	}
	cn.mu.Unlock()
	select {
	case cn.ready <- struct{}{}:
	default:
	}
}

// End takes the CONSUME reply that ends the stream.
func (s *consumerStream) End(hd wire.Header, p []byte) { (*Consumer)(s).end(replyError(hd.Status, p)) }

// Stopped: the connection stopped. A reconnecting client reopens the
// consumer on its next connection instead of ending it.
func (s *consumerStream) Stopped(err error) {
	cn := (*Consumer)(s)
	if cn.c.rc != nil && cn.c.rc.resumes() {
		cn.detach()
		return
	}
	cn.end(err)
}

// end records why the stream ended.
func (cn *Consumer) end(err error) {
	cn.mu.Lock()
	first := cn.err == nil
	if first {
		cn.err = err
		close(cn.ended)
	}
	cn.mu.Unlock()
	if first && cn.c.rc != nil {
		cn.c.rc.untrack(cn)
	}
	select {
	case cn.ready <- struct{}{}:
	default:
	}
}

// Next returns the next message, waiting until one arrives, the stream
// ends (its error: ErrDestroyed, ErrClosed, ErrCanceled after Close) or
// ctx ends (an error matching ErrTimeout at its deadline; no message is
// taken). Messages already received are returned before the end is
// reported, including, after Close, the auto-acked ones.
func (cn *Consumer) Next(ctx context.Context) (*Message, error) {
	for {
		cn.mu.Lock()
		if cn.head < len(cn.queue) {
			msg := cn.queue[cn.head]
			cn.queue[cn.head] = nil
			cn.head++
			if cn.head == len(cn.queue) {
				cn.queue, cn.head = cn.queue[:0], 0
			}
			var grant uint32
			if cn.manual {
				cn.avail--
			} else if cn.granted++; cn.granted >= (cn.window+1)/2 && cn.err == nil && !cn.closed {
				grant, cn.granted = cn.granted, 0
			}
			cn.mu.Unlock()
			if grant > 0 {
				cn.credit(grant)
			}
			return msg, nil
		}
		err := cn.err
		cn.mu.Unlock()
		if err != nil {
			return nil, err
		}
		select {
		case <-cn.ready:
		case <-ctx.Done():
			return nil, contextEnded(ctx, fmt.Sprintf("next from %q", cn.name))
		}
	}
}

// Credit lets n more messages in: the broker may send n messages beyond
// those it was granted so far. It is for a ManualCredit consumer (on
// another it only widens the window). Safe for concurrent use, with Next
// too; after Close or the end of the stream it does nothing. Under
// ManualCredit a reconnect carries the unused credit over to the new
// connection.
func (cn *Consumer) Credit(n uint32) {
	if n == 0 {
		return
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.manual {
		cn.avail += int64(n)
	}
	if cn.closing || cn.closed || cn.err != nil || cn.lk == nil {
		return
	}
	// Under mu, so that a reopen (which carries avail over) and this
	// grant do not both count it.
	req := wire.Credit{N: n}
	cn.lk.m.Post(false, wire.Header{Op: wire.OpCredit, Request: cn.id.Load()}, req.Append)
}

func (cn *Consumer) credit(n uint32) {
	req := wire.Credit{N: n}
	cn.c.conn().Post(false, wire.Header{Op: wire.OpCredit, Request: cn.id.Load()}, req.Append)
}

// Close ends the stream, waiting until the broker confirms the end or ctx
// ends. Messages received but not yet returned by Next are nacked, so
// they go to another receiver (with their redelivery count incremented),
// except auto-acked ones: the broker has already removed those, so Next
// still returns them. If ctx ends first and the broker does not confirm
// within the reply grace (see WithReplyGrace), Close returns an error
// matching ErrUnknownOutcome and ErrTimeout (or context.Canceled): the
// stream ends locally, and messages that still arrive are handled the same
// way (leased ones nacked, auto-acked ones kept for Next).
func (cn *Consumer) Close(ctx context.Context) error { return cn.close(ctx, cn.c.grace, false) }

// Drain ends the stream as Close does, but keeps the messages received
// and not yet handed out, leased ones too, for Next instead of nacking
// them: Next returns them, then the end error, and the application
// settles each (a nack would count as a redelivery). A worker pool that
// stops taking work but must finish what it was sent drains its
// consumer; under ManualCredit what it was sent is only what it asked
// for. Messages that arrive after ctx ended and the reply grace passed
// are nacked, as for Close.
func (cn *Consumer) Drain(ctx context.Context) error { return cn.close(ctx, cn.c.grace, true) }

// Done is closed when the stream has ended (its end error is what Next
// returns once the messages received are handed out).
func (cn *Consumer) Done() <-chan struct{} { return cn.ended }

// close is Close, waiting up to grace for the broker after ctx ended.
// With keep (Drain), the messages received are kept for Next.
func (cn *Consumer) close(ctx context.Context, grace time.Duration, keep bool) error {
	// The stream's connection and id are read together, after closing
	// bars a reopen: the CANCEL goes where the stream is.
	cn.mu.Lock()
	cn.closing = true
	lk := cn.lk
	cn.mu.Unlock()
	lk.m.Post(true, wire.Header{Op: wire.OpCancel, Flags: wire.FlagUrgent, Request: cn.id.Load()}, nil)
	var err error
	select {
	case <-cn.ended:
	case <-lk.m.Done():
	case <-ctx.Done():
		// As for a call (see await): the broker's answer may be just
		// behind the deadline.
		t := time.NewTimer(grace)
		select {
		case <-cn.ended:
		case <-lk.m.Done():
		case <-t.C:
			err = &ctxError{op: fmt.Sprintf("close consumer of %q", cn.name), cause: ctx.Err(), unknown: true, grace: grace}
		}
		t.Stop()
	}
	cn.mu.Lock()
	cn.closed = true
	var leases []uint64
	kept := cn.queue[:0]
	for _, m := range cn.queue[cn.head:] {
		if m.lease != 0 && !keep {
			leases = append(leases, m.lease)
		} else {
			kept = append(kept, m)
		}
	}
	clear(cn.queue[len(kept):])
	cn.queue, cn.head = kept, 0
	cn.mu.Unlock()
	if err != nil {
		cn.end(fmt.Errorf("%w: consumer of %q closed before the broker confirmed", ErrCanceled, cn.name))
	}
	// A stream whose connection was lost has no CONSUME reply to end it
	// (a reconnecting client would have reopened it).
	cn.end(fmt.Errorf("%w: consumer of %q closed", ErrCanceled, cn.name))
	lk.m.Nack(leases) // leases of lk's; if lk is gone, so are they
	return err
}
