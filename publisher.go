package postbox

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/postbox-ipc/postbox/internal/mux"
	"github.com/postbox-ipc/postbox/wire"
)

// Publisher sends to one mailbox without waiting for each send's reply:
// up to its window of messages are in flight at once, which is how one
// goroutine reaches the broker's full throughput. The messages queued
// while the connection's writer is busy go out together in one SEND frame
// (up to a quarter of the window, so that several frames are in flight,
// and at most wire.MaxBatch messages), so a pipelined producer spends a
// fraction of a frame, and of a broker reply, per message (Sent/Frames).
// A send that fails makes the Publisher fail: that error is returned by
// the next Send and by Flush, and no further sends are made. Its methods
// are safe for concurrent use.
//
// Sends wait for space in a full mailbox (there is no per-send timeout);
// Flush waits until every send is settled.
type Publisher struct {
	c        *Client
	g        *mux.Group
	name     []byte
	window   int
	flags    uint8
	typ      int64
	prio     uint8
	hdr      []byte // the headers block every message carries
	perMsg   int    // encoded bytes a message adds besides its body
	maxSize  int    // the frame size a batch stays under
	maxBatch int    // messages per frame: a quarter of the window, so frames pipeline

	mu       sync.Mutex // guards everything below; cond waits on it
	cond     sync.Cond
	pend     []byte     // messages encoded for SEND, waiting for the writer
	batches  []pubBatch // how pend divides into frames
	seq      uint32     // frames sent
	inflight int        // messages queued or sent, not yet settled
	err      error
	sent     uint64
	frames   uint64
}

// pubBatch is one frame's worth of pend: pend[off:end], n messages.
type pubBatch struct{ off, end, n int }

// pubCountBits: a Publisher's request id carries its frame's message
// count minus 1 in its low bits, so a reply settles that many with no
// table of frames in flight.
const pubCountBits = 10 // wire.MaxBatch == 1<<pubCountBits

// Publisher returns a Publisher for m keeping up to window messages in
// flight (at least 1). Options: Type, Priority, WithReceipt (then one
// message per frame) and the headers, which every message carries. An
// invalid option makes every Send fail with its error.
func (m *Mailbox) Publisher(window int, opts ...PublisherOption) *Publisher {
	o := publisherDefaults(opts)
	c := m.c
	p := &Publisher{c: c, name: []byte(m.name), window: max(window, 1), typ: o.typ, prio: o.priority}
	p.cond.L = &p.mu
	if o.receipt {
		p.flags |= wire.FlagReceipt
	}
	if o.typ < 1 {
		p.err = fmt.Errorf("%w: publish to %q: message type must be at least 1", ErrInvalid, m.name)
	}
	if !o.hdr.empty() && p.err == nil {
		var err error
		if p.hdr, err = appendHeaders(nil, &o.hdr); err != nil {
			p.err = fmt.Errorf("publish to %q: %w", m.name, err)
		}
	}
	p.perMsg = 8 + 1 + 4 + len(p.hdr) + 4
	p.maxSize = c.link().maxFrame
	if p.maxSize <= 0 {
		p.maxSize = wire.DefaultMaxFrame
	}
	p.maxSize -= 4 // the size field does not count itself
	// A frame of the whole window would leave the publisher waiting for
	// its one reply with nothing in flight; a quarter keeps about four
	// frames going, the broker working on one while the next fills.
	p.maxBatch = min(wire.MaxBatch, max(1, p.window/4))
	if p.err == nil {
		g, err := c.conn().NewGroup((*pubGroup)(p))
		if err != nil {
			p.err = err
		}
		p.g = g
	}
	return p
}

// Send queues body. It waits while the window is full, until ctx ends
// (then nothing is sent, and the error matches ErrTimeout at a deadline).
// It returns the error of an earlier send, if one failed. body may be
// reused when Send returns (it is copied).
func (p *Publisher) Send(ctx context.Context, body []byte) error {
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
	size := p.perMsg + len(body)
	kick := len(p.batches) == 0
	if kick || p.flags&wire.FlagReceipt != 0 || p.batches[len(p.batches)-1].n >= p.maxBatch ||
		p.batches[len(p.batches)-1].end-p.batches[len(p.batches)-1].off+size > p.maxSize {
		// A new frame: its header and SEND fields go first, patched by
		// Flush, so pend is a run of whole frames.
		off := len(p.pend)
		b, _ := wire.StartFrame(p.pend, wire.Header{Op: wire.OpSend, Flags: p.flags})
		b = wire.AppendString(b, p.name)
		b = wire.AppendI64(b, -1)
		p.pend = wire.AppendU16(b, 0)
		p.batches = append(p.batches, pubBatch{off: off, end: len(p.pend)})
	}
	b := wire.AppendI64(p.pend, p.typ)
	b = append(b, p.prio)
	b = wire.AppendBytes(b, p.hdr)
	p.pend = wire.AppendBytes(b, body)
	last := &p.batches[len(p.batches)-1]
	last.end = len(p.pend)
	last.n++
	p.inflight++
	p.sent++
	p.mu.Unlock()
	if kick {
		p.c.conn().Kick()
	}
	return nil
}

// pubGroup is a Publisher as the connection sees it: a mux.Group of SEND
// requests whose frames it appends right before each write.
type pubGroup Publisher

// Flush appends the queued messages as SEND frames (mux.Flusher). It runs
// under the writer's lock. pend already holds whole frames but for their
// size, request id and count: those are patched in, and if the writer's
// buffer is empty the two buffers trade places instead of pend being
// copied (the writer owns what Flush returns; the publisher keeps the
// writer's empty buffer as its next pend).
func (g *pubGroup) Flush(b []byte) []byte {
	p := (*Publisher)(g)
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.batches) == 0 {
		return b
	}
	countAt := wire.HeaderSize + 2 + len(p.name) + 8
	for _, bt := range p.batches {
		p.seq++
		id := p.g.Request((p.seq&(1<<(32-pubCountBits)-1))<<pubCountBits | uint32(bt.n-1))
		frame := p.pend[bt.off:bt.end]
		wire.FinishFrame(frame, 0)
		binary.LittleEndian.PutUint64(frame[8:], id)
		binary.LittleEndian.PutUint16(frame[countAt:], uint16(bt.n))
		p.frames++
	}
	p.batches = p.batches[:0]
	if len(b) == 0 {
		b, p.pend = p.pend, b[:0]
		return b
	}
	b = append(b, p.pend...)
	p.pend = p.pend[:0]
	if cap(p.pend) > 4<<20 {
		p.pend = nil
	}
	return b
}

// Reply settles the messages of the frame hd answers.
func (g *pubGroup) Reply(hd wire.Header, pl []byte) {
	var err error
	if hd.Status != wire.OK {
		err = replyError(hd.Status, pl)
		if msg, done := wire.DecodeError(pl); done > 0 {
			err = &BatchError{Done: int(done), Err: &Error{Code: hd.Status, Msg: msg}}
		}
	}
	(*Publisher)(g).settle(int(hd.Request&(1<<pubCountBits-1))+1, err)
}

// Stopped fails the publisher: the connection stopped.
func (g *pubGroup) Stopped(err error) { (*Publisher)(g).fail(err) }

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

// settle records the reply to n messages (err nil for success).
func (p *Publisher) settle(n int, err error) {
	p.mu.Lock()
	p.inflight = max(p.inflight-n, 0)
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
	p.batches, p.pend = p.batches[:0], p.pend[:0]
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

// Frames is how many SEND frames carried them so far: Sent/Frames is the
// number of messages per frame that batching achieved.
func (p *Publisher) Frames() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frames
}

// Close flushes and forgets the publisher.
func (p *Publisher) Close(ctx context.Context) error {
	err := p.Flush(ctx)
	if p.g != nil {
		p.g.Close()
	}
	return err
}
