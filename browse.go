package postbox

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/postbox-ipc/postbox/wire"
)

// Browsing: reading a mailbox's queued messages without taking them.

// ErrNotLeased is returned by Ack and Nack of a message that Browse or
// Peek listed: it was read, not delivered, so there is no lease to settle
// and the message is still queued for its receivers.
var ErrNotLeased = errors.New("postbox: message not leased (browsed)")

// BrowseOption configures Browse and Peek. Type is one.
type BrowseOption interface{ applyBrowse(*browseOptions) }

type browseOptions struct{ typ int64 }

// (Browse, Peek) Type selects with the msgrcv rules of Receive, and lists
// in the order a succession of such receivers would take the messages:
// for a negative type, the lowest type first.
func (t typeOption) applyBrowse(o *browseOptions) { o.typ = int64(t) }

// Browse returns up to limit of the mailbox's queued messages, after
// cursor ("" for the first page), in the order receivers would take them
// (priority high to low, then oldest first), and the cursor of the next
// page ("" when there is no more). limit 0 takes the broker's default
// (16); more than 256 is taken as 256; the broker may return fewer to keep
// the reply within its max frame. Use a cursor with the same Type it came
// from. Options: Type.
//
// Browsing is not a delivery: the messages are not leased, their
// Redeliveries and the mailbox's MaxDeliveries do not count it, and they
// stay queued for receivers. Messages in flight (leased) are not listed.
// A listed message has Lease 0; its Ack and Nack return ErrNotLeased. A
// shared-memory channel offer is listed with an empty body (its token is
// for the receiver that takes it). Browse needs read permission, as
// Receive does.
func (m *Mailbox) Browse(ctx context.Context, cursor string, limit int, opts ...BrowseOption) ([]*Message, string, error) {
	var o browseOptions
	for _, opt := range opts {
		opt.applyBrowse(&o)
	}
	req := wire.Browse{Name: []byte(m.name), Type: o.typ, Cursor: []byte(cursor),
		Limit: uint32(min(max(limit, 0), wire.MaxBrowseLimit))}
	p, err := m.c.roundTrip(ctx, wire.OpBrowse, 0, req.Append)
	if err != nil {
		return nil, "", err // the broker's message names the mailbox
	}
	var rep wire.BrowseReply
	if err := rep.Decode(p); err != nil {
		return nil, "", fmt.Errorf("%w: browse %q: BROWSE reply", ErrMalformed, m.name)
	}
	msgs := make([]*Message, 0, len(rep.Messages))
	for i := range rep.Messages {
		d := &rep.Messages[i]
		b := d.Append(nil)
		msg := m.c.decodeMessage(b, m.name)
		if msg == nil {
			return nil, "", fmt.Errorf("%w: browse %q: undecodable message %d", ErrMalformed, m.name, d.ID)
		}
		msg.lease, msg.browsed = 0, true
		msgs = append(msgs, msg)
	}
	return msgs, string(rep.Next), nil
}

// Peek iterates over the mailbox's queued messages in the order receivers
// would take them, fetching pages of 256 with Browse; like Browse it takes
// nothing. Messages sent, taken or returned meanwhile may or may not be
// seen. After an error it yields no more. Options: Type.
func (m *Mailbox) Peek(ctx context.Context, opts ...BrowseOption) iter.Seq2[*Message, error] {
	return func(yield func(*Message, error) bool) {
		cursor := ""
		for {
			page, next, err := m.Browse(ctx, cursor, wire.MaxBrowseLimit, opts...)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, msg := range page {
				if !yield(msg, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			cursor = next
		}
	}
}
