package wire

// RPC: CALL (a request and its reply in one round trip), the REPLY flag
// of SEND, the outcome of a CALL that ended without a reply, and the
// INTERRUPT pushed to the holder of a request whose caller gave up.

const (
	// OpCall sends one request message and waits for its reply: the
	// payload is a Send with one message, which must carry REPLY_TO (the
	// caller's own inbox) and CORRELATION_ID; the OK reply is a
	// CallReply.
	OpCall Op = 0x28
	// OpInterrupt is pushed (FlagPush, FlagUrgent) to the holder of a
	// request's lease when its CALL was cancelled or timed out: an
	// Interrupt. Its request field is 0.
	OpInterrupt Op = 0x61
)

// FlagReply (SEND): the message answers a CALL. It is handed to the CALL
// pending on the target inbox with the same CORRELATION_ID, or dropped if
// none is (never queued). Only with one message and an inbox target.
const FlagReply uint8 = 1 << 3

// TagAckLease (SEND ext, critical, u64): with FlagReply, the broker acks
// this lease of the sender once the reply is handled, as an ACK would
// (saving the server a frame; reply-then-ack order kept).
const TagAckLease uint16 = 0x8001

// Tags of a CALL's error reply, after the message (TagDone is never
// there: a CALL has one message).
const (
	// TagOutcome (u8): what became of the request of a CALL ended by
	// CANCEL or its timeout: OutcomeWithdrawn, OutcomeInProgress,
	// OutcomeSettled.
	TagOutcome uint16 = 0x0002
	// TagReceiver (identity): who holds (InProgress) or took (Settled)
	// the request.
	TagReceiver uint16 = 0x0003
)

// Outcomes (TagOutcome).
const (
	// OutcomeWithdrawn: the request was still queued, or waiting to be
	// admitted; the broker removed it and no receiver will see it.
	OutcomeWithdrawn uint8 = 1
	// OutcomeInProgress: a receiver holds the request leased; the broker
	// pushed it an INTERRUPT for the lease.
	OutcomeInProgress uint8 = 2
	// OutcomeSettled: a receiver took the request and acked it (or took it
	// auto-acked), but no reply came.
	OutcomeSettled uint8 = 3
)

// CallReply is the OK reply to CALL: `request id u64 | Delivery` (the
// Delivery's ext is the reply's). Request is the id the request message
// got in its target mailbox; the Delivery is the reply message, with
// lease 0 and id 0 (it never entered a mailbox).
type CallReply struct {
	Request uint64
	Delivery
}

func (m *CallReply) Append(b []byte) []byte {
	return m.Delivery.Append(AppendU64(b, m.Request))
}

func (m *CallReply) Decode(p []byte) error {
	if len(p) < 8 {
		return ErrMalformed
	}
	d := NewDecoder(p)
	m.Request = d.U64()
	return m.Delivery.Decode(d.Rest())
}

// Interrupt is the payload of INTERRUPT: `lease u64 | reason u16 | ext`,
// reason being the status the CALL ended with (CodeCanceled or
// CodeTimeout). A broker sends at most one per lease; a lease holder may
// ignore it.
type Interrupt struct {
	Lease  uint64
	Reason Code
	Ext    []byte
}

func (m *Interrupt) Append(b []byte) []byte {
	return append(AppendU16(AppendU64(b, m.Lease), uint16(m.Reason)), m.Ext...)
}

func (m *Interrupt) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Lease, m.Reason, m.Ext = d.U64(), Code(d.U16()), d.Ext()
	return d.Err()
}

// AppendCallError appends the payload of a CALL's error reply: the
// message, then OUTCOME if outcome is not 0, then RECEIVER if receiver is
// not nil.
func AppendCallError(b []byte, msg string, outcome uint8, receiver *Identity) []byte {
	b = AppendString(b, msg)
	if outcome != 0 {
		b = append(appendExtHead(b, TagOutcome, 1), outcome)
	}
	if receiver != nil {
		b = receiver.Append(appendExtHead(b, TagReceiver, IdentitySize))
	}
	return b
}

// CallOutcome reads OUTCOME and RECEIVER from an error reply's ext tail
// (ErrorReply.Ext): 0 and false when absent. A tag of the wrong length
// is ErrMalformed.
func CallOutcome(tail []byte) (outcome uint8, receiver Identity, hasReceiver bool, err error) {
	it := NewExtIter(tail)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		switch f.Tag {
		case TagOutcome:
			if len(f.Value) != 1 {
				return 0, Identity{}, false, ErrMalformed
			}
			outcome = f.Value[0]
		case TagReceiver:
			if len(f.Value) != IdentitySize {
				return 0, Identity{}, false, ErrMalformed
			}
			d := NewDecoder(f.Value)
			receiver, hasReceiver = d.Identity(), true
		}
	}
	return outcome, receiver, hasReceiver, it.Err()
}
