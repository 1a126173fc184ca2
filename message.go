package postbox

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// Message is a received message.
//
// Its headers, as the sender set them (see the SendOptions ReplyTo,
// CorrelationID, ContentType, MessageDeadline and WithHeader), are read
// with the methods of the same names and Header; they are zero when
// absent. The broker forwards them byte for byte and never adds any: what
// it vouches for is in Sender and SentAt.
type Message struct {
	// ID is the message's id within its mailbox (increasing).
	ID      uint64
	Mailbox string
	// Type and Priority are as the sender set them.
	Type     int64
	Priority uint8
	// Reason says why the message is in a dead-letter mailbox; ReasonNone
	// elsewhere.
	Reason Reason
	// Redeliveries counts how often the message was handed out before and
	// came back (its receiver nacked it or died).
	Redeliveries uint32
	// Sender is the sending process, as the broker established it.
	Sender Identity
	// SentAt is when the broker accepted the message.
	SentAt time.Time
	Body   []byte

	flags   uint8  // wire.DeliveryChannelOffer
	browsed bool   // listed by Browse: not delivered, Ack and Nack fail
	lease   uint64 // 0 when auto-acked or browsed
	c       *Client
	lk      *link // the connection it came on: its lease is that connection's
	// hdr holds the headers; nil when the message has none, so a message
	// without headers costs no more than before they existed (the fields
	// above plus a small body fit one allocation size class).
	hdr *messageHeaders
}

// messageHeaders are a received message's headers, decoded.
type messageHeaders struct {
	replyTo       string
	correlationID []byte
	contentType   string
	deadline      time.Time
	user          Header
	files         []*os.File // descriptors that came with it (files.go)
}

// ReplyTo returns the REPLY_TO header: the address to answer to.
func (m *Message) ReplyTo() string {
	if m.hdr == nil {
		return ""
	}
	return m.hdr.replyTo
}

// CorrelationID returns the CORRELATION_ID header (nil if absent).
func (m *Message) CorrelationID() []byte {
	if m.hdr == nil {
		return nil
	}
	return m.hdr.correlationID
}

// ContentType returns the CONTENT_TYPE header.
func (m *Message) ContentType() string {
	if m.hdr == nil {
		return ""
	}
	return m.hdr.contentType
}

// Deadline returns the DEADLINE header (the zero Time if absent).
func (m *Message) Deadline() time.Time {
	if m.hdr == nil {
		return time.Time{}
	}
	return m.hdr.deadline
}

// Header returns the user headers (nil if there are none). The map is
// the message's own.
func (m *Message) Header() Header {
	if m.hdr == nil {
		return nil
	}
	return m.hdr.user
}

// Lease returns the message's lease id, 0 if it was auto-acked.
func (m *Message) Lease() uint64 { return m.lease }

// Ack removes the message from its mailbox for good. It fails with
// ErrStaleLease if the lease is no longer held (already acked, or returned
// because this client's connection was lost), and then changes nothing.
func (m *Message) Ack(ctx context.Context) error { return m.settle(ctx, wire.OpAck) }

// Nack returns the message to its place in the mailbox, with its
// redelivery count incremented, for the next receiver. It fails with
// ErrStaleLease as Ack does.
func (m *Message) Nack(ctx context.Context) error { return m.settle(ctx, wire.OpNack) }

func (m *Message) settle(ctx context.Context, op wire.Op) error {
	if m.browsed {
		return fmt.Errorf("%s of message %d in %q: %w", strings.ToLower(op.String()), m.ID, m.Mailbox, ErrNotLeased)
	}
	if m.lease == 0 {
		return nil
	}
	if m.stale() {
		return fmt.Errorf("%s of message %d in %q: %w: it was received on a connection since lost (the broker returned it to its mailbox)",
			strings.ToLower(op.String()), m.ID, m.Mailbox, ErrStaleLease)
	}
	m.c.intr.forget(m.lease)
	req := wire.Leases{Ranges: []wire.LeaseRange{{First: m.lease, N: 1}}}
	p, err := m.c.roundTrip(ctx, op, 0, req.Append)
	if err != nil {
		return err
	}
	var rep wire.AckReply
	if err := rep.Decode(p); err != nil {
		return fmt.Errorf("%w: %s reply", ErrMalformed, op)
	}
	for _, f := range rep.Failed {
		if f.Lease == m.lease {
			return &Error{Code: f.Status, Msg: fmt.Sprintf("%s of message %d in %q (lease %d): %s",
				strings.ToLower(op.String()), m.ID, m.Mailbox, m.lease, f.Status)}
		}
	}
	return nil
}

// AckNoWait acks without waiting for the broker's answer: acks are
// gathered into the client's next write, consecutive leases as one range.
// Use it where throughput matters; a stale lease is then ignored silently.
func (m *Message) AckNoWait() {
	if m.lease != 0 && !m.stale() {
		m.c.intr.forget(m.lease)
		m.c.conn().AckNoWait(m.lease)
	}
}

// stale reports whether the message's lease belonged to a connection the
// client has since replaced (WithReconnect): the broker returned the
// message when that connection ended, and its lease id means nothing on
// the new one (or, after a broker restart, another lease).
func (m *Message) stale() bool { return m.lk != nil && m.lk != m.c.link() }

// Reason says why a message was dead-lettered.
type Reason uint8

const (
	ReasonNone          = Reason(wire.ReasonNone)
	ReasonMaxDeliveries = Reason(wire.ReasonMaxDeliveries)
	ReasonExpired       = Reason(wire.ReasonExpired)
)

func (r Reason) String() string {
	switch r {
	case ReasonNone:
		return ""
	case ReasonMaxDeliveries:
		return "max deliveries reached"
	case ReasonExpired:
		return "expired"
	}
	return fmt.Sprintf("reason %d", uint8(r))
}
