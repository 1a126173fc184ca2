package wire

// The handshake: HELLO and its reply, and the Identity encoding the broker
// uses wherever it says who a peer is.

// Principal kinds, in Identity.Kind.
const (
	PrincipalNone uint8 = 0 // unknown
	PrincipalUnix uint8 = 1 // SO_PEERCRED / pidfd: UID, GID and PID are meaningful
	PrincipalTLS  uint8 = 2 // reserved: the certificate subject will go in an ext tag
)

// IdentitySize is the encoded size of an Identity.
const IdentitySize = 21

// Identity says who a peer is, as the broker established it: in
// HelloReply (the client itself), SendReply's receipt (who took the
// message) and Delivery (who sent it). The broker stamps it; a sender
// cannot forge it. Encoded `kind u8 | uid u32 | gid u32 | pid i32 |
// endpoint u64`.
type Identity struct {
	Kind     uint8
	UID, GID uint32
	PID      int32
	Endpoint uint64
}

// Append appends the 21-byte encoding of id.
func (id *Identity) Append(b []byte) []byte {
	b = append(b, id.Kind)
	b = AppendU32(b, id.UID)
	b = AppendU32(b, id.GID)
	b = AppendI32(b, id.PID)
	return AppendU64(b, id.Endpoint)
}

// Identity reads an Identity.
func (d *Decoder) Identity() Identity {
	return Identity{Kind: d.U8(), UID: d.U32(), GID: d.U32(), PID: d.I32(), Endpoint: d.U64()}
}

// Session identifies a client across reconnections. All zero in a Hello
// asks the broker to assign one.
type Session [16]byte

// MaxClientName is the longest Hello.Client; longer is malformed.
const MaxClientName = 255

// Hello opens a connection (client to broker):
// `magic u32 | min_version u16 | max_version u16 | client string | caps u64
// | session id16 | ext`.
type Hello struct {
	MinVersion, MaxVersion uint16
	Client                 []byte // free-form client name for logs, <= 255 bytes
	Caps                   uint64 // capabilities asked for (CapDescriptors)
	Session                Session
	Ext                    []byte
}

func (m *Hello) Append(b []byte) []byte {
	b = AppendU32(b, Magic)
	b = AppendU16(b, m.MinVersion)
	b = AppendU16(b, m.MaxVersion)
	b = AppendString(b, m.Client)
	b = AppendU64(b, m.Caps)
	b = append(b, m.Session[:]...)
	return append(b, m.Ext...)
}

// PeekVersion reads only the magic and the version range of a HELLO
// payload, which every version's HELLO starts with. ErrMalformed if the
// magic is wrong or the payload is shorter than 8 bytes.
func PeekVersion(p []byte) (min, max uint16, err error) {
	d := NewDecoder(p)
	if d.U32() != Magic {
		return 0, 0, ErrMalformed
	}
	min, max = d.U16(), d.U16()
	return min, max, d.Err()
}

// Decode reads a HELLO. If the version range does not include Version it
// returns ErrVersion with only MinVersion and MaxVersion set, without
// reading further: a v1 HELLO (which ends after the client name) gets a
// clean CodeVersion answer, not CodeMalformed.
func (m *Hello) Decode(p []byte) error {
	min, max, err := PeekVersion(p)
	*m = Hello{MinVersion: min, MaxVersion: max}
	if err != nil {
		return err
	}
	if Version < min || Version > max {
		return ErrVersion
	}
	d := NewDecoder(p[8:])
	m.Client = d.String()
	if len(m.Client) > MaxClientName {
		d.Fail(ErrMalformed)
	}
	m.Caps, m.Session, m.Ext = d.U64(), d.ID16(), d.Ext()
	return d.Err()
}

// HelloReply answers HELLO: `version u16 | endpoint u64 | caps u64 | epoch
// u64 | session id16 | principal identity | max_frame u32 | max_message u32
// | server string | ext`.
type HelloReply struct {
	Version   uint16
	Endpoint  uint64 // this connection's endpoint id (Epoch<<32 | n); its inbox is "@<id>"
	Caps      uint64 // capabilities granted
	Epoch     uint64 // random, non-zero, 32-bit: picked when the broker started
	Session   Session
	Principal Identity // who the broker thinks the client is
	// MaxFrame bounds every frame's size field, both ways. MaxMessage
	// bounds a message's len(body) + len(headers).
	MaxFrame   uint32
	MaxMessage uint32
	Server     []byte
	// Keepalive is the ext tag TagKeepalive (0: absent): the client
	// should send a frame (PING if it has nothing else) whenever this
	// many nanoseconds pass without one.
	Keepalive int64
	// DeadPeer is the ext tag TagDeadPeer (0: absent): the broker closes
	// the connection once it has read nothing from it for this many
	// nanoseconds.
	DeadPeer int64
	// Ext is the tail's other entries (Append writes them after
	// KEEPALIVE and DEAD_PEER).
	Ext []byte
}

// Tags of HelloReply's ext tail, both non-critical: a client that does
// not know them keeps working where it is never silent for long.
const (
	// TagKeepalive (i64 nanoseconds): how often the client should send
	// something on an otherwise idle connection.
	TagKeepalive uint16 = 0x0010
	// TagDeadPeer (i64 nanoseconds): after this long without reading a
	// byte from the client the broker closes the connection, returning
	// its leases.
	TagDeadPeer uint16 = 0x0011
)

func (m *HelloReply) Append(b []byte) []byte {
	b = AppendU16(b, m.Version)
	b = AppendU64(b, m.Endpoint)
	b = AppendU64(b, m.Caps)
	b = AppendU64(b, m.Epoch)
	b = append(b, m.Session[:]...)
	b = m.Principal.Append(b)
	b = AppendU32(b, m.MaxFrame)
	b = AppendU32(b, m.MaxMessage)
	b = AppendString(b, m.Server)
	if m.Keepalive != 0 {
		b = AppendI64(appendExtHead(b, TagKeepalive, 8), m.Keepalive)
	}
	if m.DeadPeer != 0 {
		b = AppendI64(appendExtHead(b, TagDeadPeer, 8), m.DeadPeer)
	}
	return append(b, m.Ext...)
}

func (m *HelloReply) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Version, m.Endpoint, m.Caps, m.Epoch = d.U16(), d.U64(), d.U64(), d.U64()
	m.Session, m.Principal = d.ID16(), d.Identity()
	m.MaxFrame, m.MaxMessage, m.Server = d.U32(), d.U32(), d.String()
	m.Keepalive, m.DeadPeer, m.Ext = 0, 0, nil
	if d.Err() != nil {
		return d.Err()
	}
	var err error
	m.Ext, err = decodeOwnExt(d.Rest(), func(f ExtField) (bool, error) {
		var v uint64
		var err error
		switch f.Tag {
		case TagKeepalive:
			v, err = u64Value(f)
			m.Keepalive = int64(v)
		case TagDeadPeer:
			v, err = u64Value(f)
			m.DeadPeer = int64(v)
		default:
			return false, nil
		}
		return true, err
	})
	return err
}
