package postbox

import (
	"context"
	"fmt"

	"github.com/postbox-ipc/postbox/wire"
)

// Batched publishing: PublishBatch sends many publications in few frames
// (a PUBLISH with FlagPublishBatch carries up to wire.MaxBatch), one frame
// in flight at a time, so a failure leaves exactly a leading run of them
// published. Client.Publisher (pubpipeline.go) pipelines such frames
// for throughput.

// PublishBatch publishes each body to subject, in order, as Publish
// would, and returns the sum of their matched counts. The bodies go in
// frames of up to wire.MaxBatch (and the broker's frame size), one frame
// in flight, so if one fails the error is a *BatchError whose Done says
// how many leading bodies were published; the rest were not (the one at
// Done may have reached the subscribers that had room, as a failed
// Publish may). ctx's deadline bounds the waits for full PolicyBlock
// subscribers. Options as Publish's apply to every body.
func (c *Client) PublishBatch(ctx context.Context, subject string, bodies [][]byte, opts ...PublishOption) (int, error) {
	o := publishOptions{typ: 1}
	for _, op := range opts {
		op.applyPublish(&o)
	}
	if o.typ < 1 {
		return 0, fmt.Errorf("%w: publish to %q: message type must be at least 1", ErrInvalid, subject)
	}
	var hdr []byte
	if !o.hdr.empty() {
		var err error
		if hdr, err = appendHeaders(nil, &o.hdr); err != nil {
			return 0, fmt.Errorf("publish to %q: %w", subject, err)
		}
	}
	limit := c.link().maxFrame
	if limit <= 0 {
		limit = wire.DefaultMaxFrame
	}
	items := make([]wire.PublishItem, 0, min(len(bodies), wire.MaxBatch))
	matched, done := 0, 0
	for done < len(bodies) {
		// As many as one frame carries; at least one (a body too large for
		// any frame is the broker's to refuse).
		items = items[:0]
		size := wire.HeaderSize + 8 + 2
		for n := done; n < len(bodies) && len(items) < wire.MaxBatch; n++ {
			s := 2 + len(subject) + 8 + 4 + len(hdr) + 4 + len(bodies[n])
			if len(items) > 0 && size+s > limit {
				break
			}
			size += s
			items = append(items, wire.PublishItem{Subject: []byte(subject), Type: o.typ, Headers: hdr, Body: bodies[n]})
		}
		m, n, err := c.publishFrame(ctx, items)
		if err != nil {
			return matched + m, &BatchError{Done: done + n, Err: fmt.Errorf("publish to %q: %w", subject, err)}
		}
		matched += m
		done += len(items)
	}
	return matched, nil
}

// publishFrame sends one batched PUBLISH and returns the matched sum, or,
// with an error, how many leading items were published (its DONE).
func (c *Client) publishFrame(ctx context.Context, items []wire.PublishItem) (int, int, error) {
	cl := c.conn().NewCall()
	defer c.conn().Release(cl)
	req := wire.PublishBatch{Timeout: timeoutOf(ctx, false), Items: items}
	if _, err := c.start(ctx, cl, wire.OpPublish, wire.FlagPublishBatch, req.Append); err != nil {
		return 0, 0, err
	}
	if err := c.wait(ctx, cl, wire.OpPublish, ""); err != nil {
		if cl.HasDone {
			return 0, min(int(cl.Done), len(items)), err
		}
		return 0, 0, err
	}
	var rep wire.PublishReply
	if err := rep.Decode(cl.Payload); err != nil {
		return 0, len(items), fmt.Errorf("reply: %w", ErrMalformed)
	}
	return int(rep.Matched), 0, nil
}
