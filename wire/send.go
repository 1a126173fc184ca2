package wire

// Sending: SEND (a batch of messages) and its reply.

// MaxBatch is the most messages in one SEND.
const MaxBatch = 1024

// sendMsgMin is the smallest encoding of one SendMsg.
const sendMsgMin = 8 + 1 + 4 + 4

// SendMsg is one message of a SEND.
type SendMsg struct {
	Type     int64  // >= 1 (the broker checks)
	Priority uint8  // higher first
	Headers  []byte // a headers block (see ValidateHeaders); nil for none
	Body     []byte
}

// Size is what the broker's max-message limit applies to: len(Body) +
// len(Headers).
func (s *SendMsg) Size() int { return len(s.Body) + len(s.Headers) }

// Send puts messages into a mailbox or an endpoint's inbox:
// `target string | timeout i64 | count u16 (1..MaxBatch) | count x {type
// i64 | priority u8 | headers | body bytes} | ext`.
//
// The broker admits the messages in order; if one cannot be admitted the
// error reply's DONE says how many were (they stay queued). FlagReceipt
// requires exactly one message (the broker's rule, not the decoder's).
type Send struct {
	Target  []byte // a mailbox name or "@id"
	Timeout int64  // nanoseconds: -1 wait forever, 0 do not wait
	Msgs    []SendMsg
	// AckLease is the ext tag TagAckLease (0: absent): with FlagReply,
	// a lease of the sender to ack once the reply is handled.
	AckLease uint64
	// Ext is the ext tail as decoded, ACK_LEASE included, so that a
	// decoded Send re-encodes byte for byte. Append writes it after
	// ACK_LEASE unless it already holds that tag.
	Ext []byte
}

func (m *Send) Append(b []byte) []byte {
	b = AppendString(b, m.Target)
	b = AppendI64(b, m.Timeout)
	b = AppendU16(b, uint16(len(m.Msgs)))
	for i := range m.Msgs {
		b = m.Msgs[i].append(b)
	}
	if m.AckLease != 0 && !hasTag(m.Ext, TagAckLease) {
		b = AppendU64(appendExtHead(b, TagAckLease, 8), m.AckLease)
	}
	return append(b, m.Ext...)
}

func (s *SendMsg) append(b []byte) []byte {
	b = AppendI64(b, s.Type)
	b = append(b, s.Priority)
	b = AppendBytes(b, s.Headers)
	return AppendBytes(b, s.Body)
}

// Decode reads a SEND, reusing Msgs' backing array: with a Send kept per
// connection, decoding allocates only when a batch is larger than any
// before it. Every message's headers are validated, so the error is
// ErrMalformed, ErrInvalidHeaders or ErrUnknownCritical.
func (m *Send) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Target, m.Timeout = d.String(), d.I64()
	n := int(d.U16())
	m.Msgs = m.Msgs[:0]
	m.Ext, m.AckLease = nil, 0
	if n == 0 || n > MaxBatch || n*sendMsgMin > d.Len() {
		d.Fail(ErrMalformed)
		return d.Err()
	}
	for range n {
		if d.err != nil {
			break
		}
		m.Msgs = append(m.Msgs, SendMsg{Type: d.I64(), Priority: d.U8(), Headers: d.Headers(), Body: d.Bytes()})
	}
	if d.err != nil {
		return d.err
	}
	tail := d.Rest()
	if len(tail) == 0 {
		return nil
	}
	return m.decodeExt(tail)
}

// decodeExt reads a SEND's tail: ACK_LEASE (8 bytes, at most once),
// FILES (one byte per message, at most once; read with FilesOf) and
// entries it does not know (an unknown critical one is
// ErrUnknownCritical). Ext keeps the whole tail.
func (m *Send) decodeExt(tail []byte) error {
	it := NewExtIter(tail)
	critical, seen, files := false, false, false
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		switch {
		case f.Tag == TagAckLease:
			if seen || len(f.Value) != 8 {
				return ErrMalformed
			}
			v := NewDecoder(f.Value)
			m.AckLease, seen = v.U64(), true
		case f.Tag == TagFiles:
			// One count per message, at most once (files.go).
			if files || len(f.Value) != len(m.Msgs) {
				return ErrMalformed
			}
			files = true
		case f.Critical():
			critical = true
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	if critical {
		return ErrUnknownCritical
	}
	m.Ext = tail
	return nil
}

// hasTag reports whether a well-formed ext tail holds tag.
func hasTag(tail []byte, tag uint16) bool {
	it := NewExtIter(tail)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		if f.Tag == tag {
			return true
		}
	}
	return false
}

// SendReply answers SEND once every message was admitted: `count u16 |
// count x id u64 | taken u8 | [receipt identity] | ext`. IDs are the
// messages' ids in order (not necessarily consecutive). Taken (with
// Receipt, who took it) is set when the one message was taken before the
// reply (rendezvous, or FlagReceipt).
type SendReply struct {
	IDs     []uint64
	Taken   bool
	Receipt Identity
	Ext     []byte
}

func (m *SendReply) Append(b []byte) []byte {
	b = AppendU16(b, uint16(len(m.IDs)))
	for _, id := range m.IDs {
		b = AppendU64(b, id)
	}
	if !m.Taken {
		b = append(b, 0)
	} else {
		b = m.Receipt.Append(append(b, 1))
	}
	return append(b, m.Ext...)
}

// Decode reads a SEND reply, reusing IDs' backing array.
func (m *SendReply) Decode(p []byte) error {
	d := NewDecoder(p)
	n := int(d.U16())
	m.IDs, m.Taken, m.Receipt, m.Ext = m.IDs[:0], false, Identity{}, nil
	if n > MaxBatch || n*8 > d.Len() {
		d.Fail(ErrMalformed)
		return d.Err()
	}
	for range n {
		m.IDs = append(m.IDs, d.U64())
	}
	switch d.U8() {
	case 0:
	case 1:
		m.Taken, m.Receipt = true, d.Identity()
	default:
		d.Fail(ErrMalformed)
	}
	m.Ext = d.Ext()
	return d.Err()
}
