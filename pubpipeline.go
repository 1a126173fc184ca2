package postbox

import (
	"context"
	"fmt"

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
	c       *Client
	subject []byte
	typ     int64
	hdr     []byte // the headers block every publication carries
	perItem int    // encoded bytes an item adds besides its body
	matched uint64 // guarded by mu
	pipeline
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
	p := &TopicPublisher{c: c, subject: []byte(subject), typ: o.typ}
	maxSize := c.link().maxFrame
	if maxSize <= 0 {
		maxSize = wire.DefaultMaxFrame
	}
	// Frames of at most a few hundred KiB: a larger one only delays the
	// broker's first event of it, and the reply that frees the window.
	p.init(window, min(maxSize, topicPubFrameMax)-4) // the size field does not count itself
	p.countAt = wire.HeaderSize + 8
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
	if p.err == nil {
		g, err := c.conn().NewGroup((*topicPubGroup)(p))
		if err != nil {
			p.err = err
		}
		p.g = g
	}
	return p
}

// Publish queues body. It waits while the window is full, or 2 MiB of
// publications are encoded and not yet taken by the writer, until ctx ends
// (then nothing is published, and the error matches ErrTimeout at a
// deadline). It returns the error of an earlier publication, if one
// failed. body may be reused when Publish returns (it is copied).
func (p *TopicPublisher) Publish(ctx context.Context, body []byte) error {
	return topicPublish(p, ctx, p.subject, body)
}

// PublishTo is Publish to subject instead of the publisher's own: one
// TopicPublisher pipelines publications to any number of subjects (a
// batched frame's items each carry their subject), in the order they are
// made. The broker checks each subject; an invalid or denied one fails
// the publisher as a failed Publish does. The publisher's options apply
// to every publication.
func (p *TopicPublisher) PublishTo(ctx context.Context, subject string, body []byte) error {
	return topicPublish(p, ctx, subject, body)
}

// topicPublish is Publish and PublishTo: subject is taken as it comes,
// not converted per publication.
func topicPublish[S ~string | ~[]byte](p *TopicPublisher, ctx context.Context, subject S, body []byte) error {
	if err := reserve(&p.pipeline, ctx, subject); err != nil {
		return err
	}
	kick := p.frameFor(p.perItem-len(p.subject)+len(subject)+len(body), false, func(b []byte) []byte {
		// A new frame: its header, timeout and count go first, patched
		// by flushFrames, so pend is a run of whole frames.
		b, _ = wire.StartFrame(b, wire.Header{Op: wire.OpPublish, Flags: wire.FlagPublishBatch})
		b = wire.AppendI64(b, -1)
		return wire.AppendU16(b, 0)
	})
	b := wire.AppendString(p.pend, subject)
	b = wire.AppendI64(b, p.typ)
	b = wire.AppendBytes(b, p.hdr)
	p.pend = wire.AppendBytes(b, body)
	p.added()
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
// under the writer's lock (pipeline.flushFrames).
func (g *topicPubGroup) Flush(b []byte) []byte { return (*TopicPublisher)(g).flushFrames(b) }

// Reply settles the publications of the frame hd answers.
func (g *topicPubGroup) Reply(hd wire.Header, pl []byte) {
	var err error
	var matched uint32
	if hd.Status != wire.OK {
		err = batchReplyError(hd, pl)
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
	p.settleLocked(replyCount(hd), err)
	p.mu.Unlock()
}

// Stopped fails the publisher: the connection stopped.
func (g *topicPubGroup) Stopped(err error) { (*TopicPublisher)(g).fail(err) }

// Flush waits until every publication is settled and returns the first
// error. If ctx ends first it returns an error matching
// ErrUnknownOutcome (and ErrTimeout at a deadline): the publications in
// flight go on, and may or may not be published.
func (p *TopicPublisher) Flush(ctx context.Context) error {
	return p.flush(ctx, fmt.Sprintf("publisher of %q", p.subject), "publications")
}

// Sent is how many publications Publish has queued.
func (p *TopicPublisher) Sent() uint64 { s, _ := p.counts(); return s }

// Frames is how many PUBLISH frames carried them so far: Sent/Frames is
// the number of publications per frame that batching achieved.
func (p *TopicPublisher) Frames() uint64 { _, f := p.counts(); return f }

// Matched is the sum of the matched counts of the publications settled
// so far: how many subscriptions and bindings took them.
func (p *TopicPublisher) Matched() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.matched
}

// Close flushes and forgets the publisher.
func (p *TopicPublisher) Close(ctx context.Context) error {
	return p.close(ctx, fmt.Sprintf("publisher of %q", p.subject), "publications")
}
