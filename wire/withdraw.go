package wire

// The urgent lane and withdrawal by the sender: the URGENT_MSG flag of
// SEND, the urgent Delivery flag, and WITHDRAW (docs/PROTOCOL.md 8.19).

const (
	// OpWithdraw takes back messages the caller sent that nobody has taken
	// yet, by id or by a header match: a Withdraw; the OK reply is a
	// WithdrawReply with an outcome per message.
	OpWithdraw Op = 0x29
)

// FlagUrgentMsg (SEND, per-op bit 5): the messages are urgent. Each is
// delivered ahead of every message of its mailbox that is not urgent,
// whatever their priorities (FIFO among urgent messages; a receiver's
// type selector still applies), and it enters a bounded mailbox that is
// full while fewer than UrgentReserve urgent messages are queued there.
// Deliveries of urgent messages carry DeliveryUrgent and travel in the
// urgent lane. (The frame-class bit FlagUrgent is separate: a client
// sets it too, so the SEND itself overtakes its queued data.)
const FlagUrgentMsg uint8 = 1 << 5

// FlagAnySender (WITHDRAW, per-op bit 0): a match takes every sender's
// messages, not just the caller's. Only a principal that may withdraw
// anybody's messages (the mailbox's owner, root) may set it; others get
// PERMISSION.
const FlagAnySender uint8 = 1 << 0

// DeliveryUrgent (Delivery.Flags bit 1): the message is urgent.
const DeliveryUrgent uint8 = 1 << 1

// UrgentReserve is how many urgent messages a bounded mailbox takes
// beyond its capacity (or MAX_BYTES).
const UrgentReserve = 64

// MaxWithdrawIDs is the most ids one WITHDRAW may name, and the most
// outcomes a match's reply holds (the rest follow with MORE set).
const MaxWithdrawIDs = 1024

// OutcomeNoSuchMessage (WithdrawOutcome.Outcome): no message with that id was
// ever accepted by the mailbox. (OutcomeWithdrawn, OutcomeInProgress and
// OutcomeSettled are CALL's: withdrawn; leased, Holder holds it; no
// longer in the mailbox: delivered and acked or auto-acked, expired,
// dead-lettered, or withdrawn before.)
const OutcomeNoSuchMessage uint8 = 4

// Withdraw is WITHDRAW's payload: `name string | u32 n | n × id u64 |
// match headers | after u64 | ext`. Exactly one of IDs (1..MaxWithdrawIDs
// ids) and Match (a headers block of exactly one CORRELATION_ID or USER
// entry) is given. A match takes the caller's messages (every sender's,
// with FlagAnySender) held by the mailbox, queued or leased, that carry a
// header entry equal to it (same tag; for USER, same key and value), with
// an id greater than After (0 from the start), in id order. After is 0
// with IDs.
type Withdraw struct {
	Name  []byte
	IDs   []uint64
	Match []byte // a headers block (without its u32 length), or nil
	After uint64
	Ext   []byte
}

func (m *Withdraw) Append(b []byte) []byte {
	b = AppendU32(AppendString(b, m.Name), uint32(len(m.IDs)))
	for _, id := range m.IDs {
		b = AppendU64(b, id)
	}
	b = AppendU64(AppendBytes(b, m.Match), m.After)
	return append(b, m.Ext...)
}

// Decode reads a WITHDRAW. Both or neither of IDs and Match, more than
// MaxWithdrawIDs ids, a match that is not one CORRELATION_ID or USER
// entry, or After with IDs is ErrInvalid.
func (m *Withdraw) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Name = d.String()
	n := d.U32()
	if d.Err() == nil && uint64(n)*8 > uint64(d.Len()) {
		return ErrMalformed
	}
	m.IDs = m.IDs[:0]
	for range n {
		m.IDs = append(m.IDs, d.U64())
	}
	m.Match = d.Bytes()
	m.After = d.U64()
	m.Ext = d.Ext()
	if err := d.Err(); err != nil {
		return err
	}
	if len(m.Match) == 0 {
		m.Match = nil
	}
	switch {
	case n > MaxWithdrawIDs:
		return ErrInvalid
	case (n == 0) == (m.Match == nil):
		return ErrInvalid
	case n > 0 && m.After != 0:
		return ErrInvalid
	case m.Match != nil:
		if err := ValidateHeaders(m.Match); err != nil {
			return err
		}
		it := NewExtIter(m.Match)
		f, ok := it.Next()
		if !ok || f.Tag != HeaderCorrelationID && f.Tag != HeaderUser {
			return ErrInvalid
		}
		if _, more := it.Next(); more {
			return ErrInvalid
		}
	}
	return nil
}

// MatchHeaders reports whether the headers block raw (validated) holds an
// entry equal to the single entry of match: the same tag and value bytes
// (for USER, key and value).
func MatchHeaders(match, raw []byte) bool {
	mi := NewExtIter(match)
	want, ok := mi.Next()
	if !ok {
		return false
	}
	it := NewExtIter(raw)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		if f.Tag == want.Tag && string(f.Value) == string(want.Value) {
			return true
		}
	}
	return false
}

// WithdrawOutcome is one message's outcome: `id u64 | outcome u8 |
// holder Identity`. Holder is who holds the message leased
// (OutcomeInProgress), zero otherwise.
type WithdrawOutcome struct {
	ID      uint64
	Outcome uint8
	Holder  Identity
}

// WithdrawOutcomeSize is the encoded size of a WithdrawOutcome.
const WithdrawOutcomeSize = 8 + 1 + IdentitySize

// WithdrawReply is WITHDRAW's OK reply: `u32 n | n × WithdrawOutcome |
// more u8 | ext`. With IDs it has one outcome per id, in the order given;
// with a match, one per message matched (OutcomeWithdrawn or
// OutcomeInProgress) in id order, at most MaxWithdrawIDs, and More = 1
// when more match after the last (ask again with After = its id).
type WithdrawReply struct {
	Outcomes []WithdrawOutcome
	More     bool
	Ext      []byte
}

func (m *WithdrawReply) Append(b []byte) []byte {
	b = AppendU32(b, uint32(len(m.Outcomes)))
	for i := range m.Outcomes {
		o := &m.Outcomes[i]
		b = append(AppendU64(b, o.ID), o.Outcome)
		b = o.Holder.Append(b)
	}
	more := uint8(0)
	if m.More {
		more = 1
	}
	return append(append(b, more), m.Ext...)
}

func (m *WithdrawReply) Decode(p []byte) error {
	d := NewDecoder(p)
	n := d.U32()
	if d.Err() == nil && uint64(n)*WithdrawOutcomeSize > uint64(d.Len()) {
		return ErrMalformed
	}
	m.Outcomes = m.Outcomes[:0]
	for range n {
		o := WithdrawOutcome{ID: d.U64(), Outcome: d.U8()}
		o.Holder = d.Identity()
		m.Outcomes = append(m.Outcomes, o)
	}
	more := d.U8()
	m.Ext = d.Ext()
	if err := d.Err(); err != nil {
		return err
	}
	if more > 1 {
		return ErrMalformed
	}
	m.More = more == 1
	return nil
}
