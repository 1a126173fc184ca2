package wire

// Shared-memory channels: CHANNEL and ATTACH. Both need CapDescriptors:
// their replies carry descriptors (SCM_RIGHTS).

// Channel asks the broker to create a shared-memory channel and offer its
// other end to whoever receives the offer message from Target (a mailbox
// or "@id"): `target string | type i64 | priority u8 | timeout i64 |
// ring_size u32 | ext`. The offer travels like a SEND with these fields.
type Channel struct {
	Target   []byte
	Type     int64
	Priority uint8
	Timeout  int64
	// RingSize is the bytes of each direction's ring (0: the default).
	RingSize uint32
	Ext      []byte
}

func (m *Channel) Append(b []byte) []byte {
	b = AppendString(b, m.Target)
	b = AppendI64(b, m.Type)
	b = append(b, m.Priority)
	b = AppendI64(b, m.Timeout)
	b = AppendU32(b, m.RingSize)
	return append(b, m.Ext...)
}

func (m *Channel) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Target, m.Type, m.Priority, m.Timeout, m.RingSize = d.String(), d.I64(), d.U8(), d.I64(), d.U32()
	m.Ext = d.Ext()
	return d.Err()
}

// TokenSize is the size of a channel offer's token.
const TokenSize = 16

// Attach takes the other end of an offered channel: `token id16 | ext`.
type Attach struct {
	Token [TokenSize]byte
	Ext   []byte
}

func (m *Attach) Append(b []byte) []byte { return append(append(b, m.Token[:]...), m.Ext...) }

func (m *Attach) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Token, m.Ext = d.ID16(), d.Ext()
	return d.Err()
}
