package postbox

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/postbox-ipc/postbox/internal/mux"
	"github.com/postbox-ipc/postbox/wire"
)

// TopicPublisher publishes to one subject without waiting for each
// publication's reply: up to its window of publications are in flight at
// once, which is how one goroutine reaches the broker's full throughput.
// The publications queued while the connection's writer is busy go out
// together in one batched PUBLISH frame (FlagPublishBatch; up to a
// quarter of the window, so that several frames are in flight, and at
// most wire.MaxBatch), so a pipelined publisher spends a fraction of a
// frame, and of a broker reply, per publication (Sent/Frames). It is the
// mailbox Publisher's design (publisher.go) for subjects.
//
// A publication waits in the broker for room in a full PolicyBlock
// subscriber (there is no per-publication timeout). One that fails makes
// the TopicPublisher fail: that error is returned by the next Publish and
// by Flush, and no further publications are made; with several frames in
// flight, frames after the failed one may still be published, so use
// PublishBatch where the published ones must be exactly a prefix. Its
// methods are safe for concurrent use.
type TopicPublisher struct {
	c        *Client
	g        *mux.Group
	subject  []byte
	window   int
	typ      int64
	hdr      []byte // the headers block every publication carries
	perItem  int    // encoded bytes an item adds besides its body
	maxSize  int    // the frame size a batch stays under
	maxBatch int    // publications per frame: a quarter of the window

	mu       sync.Mutex // guards everything below; cond waits on it
	cond     sync.Cond
	pend     []byte     // items encoded for PUBLISH, waiting for the writer
	batches  []pubBatch // how pend divides into frames
	seq      uint32     // frames sent
	inflight int        // publications queued or sent, not yet settled
	err      error
	sent     uint64
	frames   uint64
	matched  uint64
}

// topicPubFrameMax bounds the bytes of a TopicPublisher's frame.
const topicPubFrameMax = 256 << 10

// Publisher returns a TopicPublisher for subject keeping up to window
// publications in flight (at least 1). Options as Publish's (Type,
// ContentType, WithHeader), which every publication carries. An invalid
// option makes every Publish fail with its error; the subject is checked
// by the broker (the first reply fails the publisher).
func (c *Client) Publisher(subject string, window int, opts ...PublishOption) *TopicPublisher {
	o := publishOptions{typ: 1}
	for _, op := range opts {
		op.applyPublish(&o)
	}
	p := &TopicPublisher{c: c, subject: []byte(subject), window: max(window, 1), typ: o.typ}
	p.cond.L = &p.mu
	if o.typ < 1 {
		p.err = fmt.Errorf("%w: publish to %q: message type must be at least 1", ErrInvalid, subject)
	}
	if !o.hdr.empty() && p.err == nil {
		var err error
		if p.hdr, err = appendHeaders(nil, &o.hdr); err != nil {
			p.err = fmt.Errorf("publish to %q: %w", subject, err)
		}
	}
	p.perItem = 2 + len(p.subject) + 8 + 4 + len(p.hdr) + 4
	p.maxSize = c.link().maxFrame
	if p.maxSize <= 0 {
		p.maxSize = wire.DefaultMaxFrame
	}
	// Frames of at most a few hundred KiB: a larger one only delays the
	// broker's first event of it, and the reply that frees the window.
	p.maxSize = min(p.maxSize, topicPubFrameMax) - 4 // the size field does not count itself
	p.maxBatch = min(wire.MaxBatch, max(1, p.window/4))
	if p.err == nil {
		g, err := c.conn().NewGroup((*topicPubGroup)(p))
		if err != nil {
			p.err = err
		}
		p.g = g
	}
	return p
}

// Publish queues body. It waits while the window is full, until ctx ends
// (then nothing is published, and the error matches ErrTimeout at a
// deadline). It returns the error of an earlier publication, if one
// failed. body may be reused when Publish returns (it is copied).
func (p *TopicPublisher) Publish(ctx context.Context, body []byte) error {
	p.mu.Lock()
	for p.inflight >= p.window && p.err == nil {
		if ctx.Done() == nil {
			p.cond.Wait()
			continue
		}
		if !p.waitCtx(ctx) {
			p.mu.Unlock()
			return contextEnded(ctx, fmt.Sprintf("publish to %q: window full", p.subject))
		}
	}
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		return err
	}
	size := p.perItem + len(body)
	kick := len(p.batches) == 0
	if kick || p.batches[len(p.batches)-1].n >= p.maxBatch ||
		p.batches[len(p.batches)-1].end-p.batches[len(p.batches)-1].off+size > p.maxSize {
		// A new frame: its header, timeout and count go first, patched
		// by Flush, so pend is a run of whole frames.
		off := len(p.pend)
		b, _ := wire.StartFrame(p.pend, wire.Header{Op: wire.OpPublish, Flags: wire.FlagPublishBatch})
		b = wire.AppendI64(b, -1)
		p.pend = wire.AppendU16(b, 0)
		p.batches = append(p.batches, pubBatch{off: off, end: len(p.pend)})
	}
	b := wire.AppendString(p.pend, p.subject)
	b = wire.AppendI64(b, p.typ)
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

// topicPubGroup is a TopicPublisher as the connection sees it: a
// mux.Group of PUBLISH requests whose frames it appends right before each
// write.
type topicPubGroup TopicPublisher

// Flush appends the queued publications as PUBLISH frames (mux.Flusher),
// under the writer's lock, as pubGroup.Flush does for SEND.
func (g *topicPubGroup) Flush(b []byte) []byte {
	p := (*TopicPublisher)(g)
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.batches) == 0 {
		return b
	}
	countAt := wire.HeaderSize + 8
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

// Reply settles the publications of the frame hd answers.
func (g *topicPubGroup) Reply(hd wire.Header, pl []byte) {
	var err error
	var matched uint32
	if hd.Status != wire.OK {
		err = replyError(hd.Status, pl)
		if msg, done := wire.DecodeError(pl); done > 0 {
			err = &BatchError{Done: int(done), Err: &Error{Code: hd.Status, Msg: msg}}
		}
	} else {
		var rep wire.PublishReply
		if rep.Decode(pl) != nil {
			err = fmt.Errorf("publish to %q: reply: %w", g.subject, ErrMalformed)
		}
		matched = rep.Matched
	}
	p := (*TopicPublisher)(g)
	p.mu.Lock()
	p.matched += uint64(matched)
	p.mu.Unlock()
	p.settle(int(hd.Request&(1<<pubCountBits-1))+1, err)
}

// Stopped fails the publisher: the connection stopped.
func (g *topicPubGroup) Stopped(err error) { (*TopicPublisher)(g).fail(err) }

// waitCtx waits on p.cond until signalled or ctx ends; p.mu is held. It
// reports false if ctx ended.
func (p *TopicPublisher) waitCtx(ctx context.Context) bool {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	p.cond.Wait()
	stop()
	return ctx.Err() == nil
}

// settle records the reply to n publications (err nil for success).
func (p *TopicPublisher) settle(n int, err error) {
	p.mu.Lock()
	p.inflight = max(p.inflight-n, 0)
	if err != nil && p.err == nil {
		p.err = err
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// fail ends the publisher (the client stopped).
func (p *TopicPublisher) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.inflight = 0
	p.batches, p.pend = p.batches[:0], p.pend[:0]
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Flush waits until every publication is settled and returns the first
// error. If ctx ends first it returns an error matching
// ErrUnknownOutcome (and ErrTimeout at a deadline): the publications in
// flight go on, and may or may not be published.
func (p *TopicPublisher) Flush(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.inflight > 0 {
		if !p.waitCtx(ctx) {
			if p.err != nil {
				return p.err
			}
			return &ctxError{op: fmt.Sprintf("flush publisher of %q: %d publications unsettled", p.subject, p.inflight),
				cause: ctx.Err(), unknown: true}
		}
	}
	return p.err
}

// Sent is how many publications Publish has queued.
func (p *TopicPublisher) Sent() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

// Frames is how many PUBLISH frames carried them so far: Sent/Frames is
// the number of publications per frame that batching achieved.
func (p *TopicPublisher) Frames() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frames
}

// Matched is the sum of the matched counts of the publications settled
// so far: how many subscriptions and bindings took them.
func (p *TopicPublisher) Matched() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.matched
}

// Close flushes and forgets the publisher.
func (p *TopicPublisher) Close(ctx context.Context) error {
	err := p.Flush(ctx)
	if p.g != nil {
		p.g.Close()
	}
	return err
}
