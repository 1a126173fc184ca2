package postbox

import (
	"context"
	"fmt"

	"github.com/postbox-ipc/postbox/wire"
)

// Publisher sends to one mailbox without waiting for each send's reply:
// up to its window of messages are in flight at once, which is how one
// goroutine reaches the broker's full throughput. The messages queued
// while the connection's writer is busy go out together in one SEND frame
// (up to a quarter of the window, so that several frames are in flight,
// and at most wire.MaxBatch messages), so a pipelined producer spends a
// fraction of a frame, and of a broker reply, per message (Sent/Frames).
// Besides the window, a Send waits while 2 MiB of messages are encoded
// and not yet taken by the connection's writer, so large messages do not
// pile up in memory ahead of the connection. A send that fails makes the Publisher fail: that error is returned by
// the next Send and by Flush, and no further sends are made. Its methods
// are safe for concurrent use.
//
// Sends wait for space in a full mailbox (there is no per-send timeout);
// Flush waits until every send is settled.
type Publisher struct {
	c      *Client
	name   []byte
	flags  uint8
	typ    int64
	prio   uint8
	hdr    []byte // the headers block every message carries
	perMsg int    // encoded bytes a message adds besides its body
	pipeline
}

// Publisher returns a Publisher for m keeping up to window messages in
// flight (at least 1). Options: Type, Priority, Urgent, WithReceipt (then one
// message per frame) and the headers, which every message carries. An
// invalid option makes every Send fail with its error.
func (m *Mailbox) Publisher(window int, opts ...PublisherOption) *Publisher {
	o := publisherDefaults(opts)
	c := m.c
	p := &Publisher{c: c, name: []byte(m.name), typ: o.typ, prio: o.priority}
	maxSize := c.link().maxFrame
	if maxSize <= 0 {
		maxSize = wire.DefaultMaxFrame
	}
	p.init(window, maxSize-4) // the size field does not count itself
	p.countAt = wire.HeaderSize + 2 + len(p.name) + 8
	if o.receipt {
		p.flags |= wire.FlagReceipt
	}
	if o.urgent {
		p.flags |= wire.FlagUrgentMsg // in the mailbox; the frames stay in the data lane
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
	if p.err == nil {
		g, err := c.conn().NewGroup((*pubGroup)(p))
		if err != nil {
			p.err = err
		}
		p.g = g
	}
	return p
}

// Send queues body. It waits while the window is full, or 2 MiB of
// messages are encoded and not yet taken by the writer, until ctx ends
// (then nothing is sent, and the error matches ErrTimeout at a deadline).
// It returns the error of an earlier send, if one failed. body may be
// reused when Send returns (it is copied).
func (p *Publisher) Send(ctx context.Context, body []byte) error {
	if err := reserve(&p.pipeline, ctx, p.name); err != nil {
		return err
	}
	kick := p.frameFor(p.perMsg+len(body), p.flags&wire.FlagReceipt != 0, func(b []byte) []byte {
		// A new frame: its header and SEND fields go first, patched by
		// flushFrames, so pend is a run of whole frames.
		b, _ = wire.StartFrame(b, wire.Header{Op: wire.OpSend, Flags: p.flags})
		b = wire.AppendString(b, p.name)
		b = wire.AppendI64(b, -1)
		return wire.AppendU16(b, 0)
	})
	b := wire.AppendI64(p.pend, p.typ)
	b = append(b, p.prio)
	b = wire.AppendBytes(b, p.hdr)
	p.pend = wire.AppendBytes(b, body)
	p.added()
	p.mu.Unlock()
	if kick {
		p.c.conn().Kick()
	}
	return nil
}

// pubGroup is a Publisher as the connection sees it: a mux.Group of SEND
// requests whose frames it appends right before each write.
type pubGroup Publisher

// Flush appends the queued messages as SEND frames (mux.Flusher), under
// the writer's lock (pipeline.flushFrames).
func (g *pubGroup) Flush(b []byte) []byte { return (*Publisher)(g).flushFrames(b) }

// Reply settles the messages of the frame hd answers.
func (g *pubGroup) Reply(hd wire.Header, pl []byte) {
	var err error
	if hd.Status != wire.OK {
		err = batchReplyError(hd, pl)
	}
	p := (*Publisher)(g)
	p.mu.Lock()
	p.settleLocked(replyCount(hd), err)
	p.mu.Unlock()
}

// Stopped fails the publisher: the connection stopped.
func (g *pubGroup) Stopped(err error) { (*Publisher)(g).fail(err) }

// Flush waits until every send is settled and returns the first error.
// If ctx ends first it returns an error matching ErrUnknownOutcome (and
// ErrTimeout at a deadline): the sends in flight go on, and may or may not
// be queued.
func (p *Publisher) Flush(ctx context.Context) error {
	return p.flush(ctx, fmt.Sprintf("publisher of %q", p.name), "sends")
}

// Sent is how many messages Send has queued.
func (p *Publisher) Sent() uint64 { s, _ := p.counts(); return s }

// Frames is how many SEND frames carried them so far: Sent/Frames is the
// number of messages per frame that batching achieved.
func (p *Publisher) Frames() uint64 { _, f := p.counts(); return f }

// Close flushes and forgets the publisher.
func (p *Publisher) Close(ctx context.Context) error {
	return p.close(ctx, fmt.Sprintf("publisher of %q", p.name), "sends")
}
