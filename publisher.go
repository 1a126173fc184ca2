package postbox

import (
	"context"
	"fmt"
	"sync"

	"github.com/postbox-ipc/postbox/wire"
)

// Publisher sends to one mailbox without waiting for each send's reply:
// up to its window of sends are in flight at once, which is how one
// goroutine reaches the broker's full throughput. A send that fails makes
// the Publisher fail: that error is returned by the next Send and by
// Flush, and no further sends are made. Its methods are safe for
// concurrent use.
//
// Sends wait for space in a full mailbox (there is no per-send timeout);
// Flush waits until every send is settled.
type Publisher struct {
	c      *Client
	num    uint64 // publisher number, in bits 32..62 of its request ids
	name   []byte
	window int
	flags  uint8
	typ    int64
	prio   uint8

	mu       sync.Mutex // guards seq, inflight, err; cond waits on it
	cond     sync.Cond
	seq      uint32
	inflight int
	err      error
	sent     uint64
}

// Request ids with this bit belong to a Publisher.
const pubBit = 1 << 63

// Publisher returns a Publisher for m keeping up to window sends in
// flight (at least 1). Options: Type, Priority, WithReceipt.
func (m *Mailbox) Publisher(window int, opts ...Option) *Publisher {
	o := options{typ: 1}
	for _, opt := range opts {
		opt(&o)
	}
	c := m.c
	p := &Publisher{c: c, name: []byte(m.name), window: max(window, 1), typ: o.typ, prio: o.priority}
	if o.receipt {
		p.flags |= wire.FlagReceipt
	}
	p.cond.L = &p.mu
	c.pmu.Lock()
	c.npub++
	p.num = c.npub
	if c.err != nil {
		p.err = c.err
	} else {
		c.pubs[p.num] = p
	}
	c.pmu.Unlock()
	return p
}

// Send queues body. It waits while the window is full, until ctx ends
// (then nothing is sent, and the error matches ErrTimeout at a deadline).
// It returns the error of an earlier send, if one failed.
func (p *Publisher) Send(ctx context.Context, body []byte) error {
	if p.typ < 1 {
		return ErrInvalid
	}
	p.mu.Lock()
	for p.inflight >= p.window && p.err == nil {
		if ctx.Done() == nil {
			p.cond.Wait()
			continue
		}
		if !p.waitCtx(ctx) {
			p.mu.Unlock()
			return contextEnded(ctx, fmt.Sprintf("publish to %q: window full", p.name))
		}
	}
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		return err
	}
	p.seq++
	p.inflight++
	p.sent++
	id := pubBit | p.num<<32 | uint64(p.seq)
	p.mu.Unlock()

	c := p.c
	req := wire.Send{Target: p.name, Type: p.typ, Priority: p.prio, Timeout: -1, Body: body}
	c.wmu.Lock()
	if c.closing {
		c.wmu.Unlock()
		p.settle(ErrClosed)
		return ErrClosed
	}
	b, off := wire.StartFrame(c.out, wire.Header{Op: wire.OpSend, Flags: p.flags, Request: id})
	c.out = wire.FinishFrame(req.Append(b), off)
	c.wcond.Signal()
	c.wmu.Unlock()
	return nil
}

// waitCtx waits on p.cond until signalled or ctx ends; p.mu is held. It
// reports false if ctx ended.
func (p *Publisher) waitCtx(ctx context.Context) bool {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	p.cond.Wait()
	stop()
	return ctx.Err() == nil
}

// settle records one reply (err nil for success).
func (p *Publisher) settle(err error) {
	p.mu.Lock()
	p.inflight--
	if err != nil && p.err == nil {
		p.err = err
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// fail ends the publisher (the client stopped).
func (p *Publisher) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.inflight = 0
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Flush waits until every send is settled and returns the first error.
// If ctx ends first it returns an error matching ErrUnknownOutcome (and
// ErrTimeout at a deadline): the sends in flight go on, and may or may not
// be queued.
func (p *Publisher) Flush(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.inflight > 0 {
		if !p.waitCtx(ctx) {
			if p.err != nil {
				return p.err
			}
			return &ctxError{op: fmt.Sprintf("flush publisher of %q: %d sends unsettled", p.name, p.inflight),
				cause: ctx.Err(), unknown: true}
		}
	}
	return p.err
}

// Sent is how many messages Send has queued.
func (p *Publisher) Sent() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

// Close flushes and forgets the publisher.
func (p *Publisher) Close(ctx context.Context) error {
	err := p.Flush(ctx)
	p.c.pmu.Lock()
	delete(p.c.pubs, p.num)
	p.c.pmu.Unlock()
	return err
}
