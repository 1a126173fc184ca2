package wire

// Mailbox flags in MailboxInfo.
const (
	MailboxDurable uint32 = 1 << 0
	MailboxInbox   uint32 = 1 << 1 // an endpoint's private inbox
	MailboxService uint32 = 1 << 2 // created with SERVICE: an RPC service's mailbox
)

// MailboxInfo is the reply to STAT and each entry of LIST's reply: the v1
// fields in order, then an ext tail (so an entry can grow; decoders skip
// the tags they do not know).
type MailboxInfo struct {
	Name           []byte
	UID, GID       uint32 // owner
	Mode           uint32
	Capacity       int64
	Flags          uint32
	Depth          uint64 // queued messages
	Bytes          uint64 // queued body bytes
	Receivers      uint32 // waiting one-shot receivers
	Consumers      uint32 // streaming consumers
	InFlight       uint32 // leased, not yet acked
	BlockedSenders uint32
	Sent           uint64 // messages accepted since creation (or restart)
	Received       uint64 // messages acked or auto-acked
	Redelivered    uint64
	CreatedUnix    int64 // nanoseconds
	DiskBytes      uint64
	OldestUnix     int64 // sent time of the oldest queued message, 0 if none
	DeadLettered   uint64
	MaxBytes       int64
	TTL            int64
	MaxDeliveries  uint32
	DeadLetter     []byte
	Ext            []byte
}

// mailboxInfoMin is the smallest encoding of a MailboxInfo.
const mailboxInfoMin = 2 + 4*3 + 8 + 4 + 8*2 + 4*4 + 8*3 + 8 + 8 + 8 + 8 + 8 + 8 + 4 + 2

func (m *MailboxInfo) Append(b []byte) []byte {
	b = AppendString(b, m.Name)
	b = AppendU32(b, m.UID)
	b = AppendU32(b, m.GID)
	b = AppendU32(b, m.Mode)
	b = AppendI64(b, m.Capacity)
	b = AppendU32(b, m.Flags)
	b = AppendU64(b, m.Depth)
	b = AppendU64(b, m.Bytes)
	b = AppendU32(b, m.Receivers)
	b = AppendU32(b, m.Consumers)
	b = AppendU32(b, m.InFlight)
	b = AppendU32(b, m.BlockedSenders)
	b = AppendU64(b, m.Sent)
	b = AppendU64(b, m.Received)
	b = AppendU64(b, m.Redelivered)
	b = AppendI64(b, m.CreatedUnix)
	b = AppendU64(b, m.DiskBytes)
	b = AppendI64(b, m.OldestUnix)
	b = AppendU64(b, m.DeadLettered)
	b = AppendI64(b, m.MaxBytes)
	b = AppendI64(b, m.TTL)
	b = AppendU32(b, m.MaxDeliveries)
	b = AppendString(b, m.DeadLetter)
	return append(b, m.Ext...)
}

func (m *MailboxInfo) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Name, m.UID, m.GID, m.Mode = d.String(), d.U32(), d.U32(), d.U32()
	m.Capacity, m.Flags, m.Depth, m.Bytes = d.I64(), d.U32(), d.U64(), d.U64()
	m.Receivers, m.Consumers, m.InFlight, m.BlockedSenders = d.U32(), d.U32(), d.U32(), d.U32()
	m.Sent, m.Received, m.Redelivered, m.CreatedUnix = d.U64(), d.U64(), d.U64(), d.I64()
	m.DiskBytes, m.OldestUnix, m.DeadLettered = d.U64(), d.I64(), d.U64()
	m.MaxBytes, m.TTL, m.MaxDeliveries, m.DeadLetter = d.I64(), d.I64(), d.U32(), d.String()
	m.Ext = d.Ext()
	return d.Err()
}
