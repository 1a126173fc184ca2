package wire

// This file holds the payload of every operation. Each type has an Append
// method that encodes it after a header and a Decode function that reads it
// from a payload. Byte fields of decoded values alias the frame buffer.

// Hello opens a connection (client to broker).
type Hello struct {
	MinVersion, MaxVersion uint16
	Client                 []byte // free-form client name for logs, <= 255 bytes
}

func (m *Hello) Append(b []byte) []byte {
	b = AppendU32(b, Magic)
	b = AppendU16(b, m.MinVersion)
	b = AppendU16(b, m.MaxVersion)
	return AppendString(b, m.Client)
}

func (m *Hello) Decode(p []byte) error {
	d := NewDecoder(p)
	if d.U32() != Magic {
		return ErrMalformed
	}
	m.MinVersion, m.MaxVersion, m.Client = d.U16(), d.U16(), d.String()
	return d.Finish()
}

// HelloReply tells the client who the broker thinks it is.
type HelloReply struct {
	Version    uint16
	Endpoint   uint64 // this connection's endpoint id; its inbox is "@<id>"
	UID, GID   uint32 // the peer credentials the broker read from the socket
	PID        int32
	MaxFrame   uint32
	MaxMessage uint32
	Server     []byte
}

func (m *HelloReply) Append(b []byte) []byte {
	b = AppendU16(b, m.Version)
	b = AppendU64(b, m.Endpoint)
	b = AppendU32(b, m.UID)
	b = AppendU32(b, m.GID)
	b = AppendI32(b, m.PID)
	b = AppendU32(b, m.MaxFrame)
	b = AppendU32(b, m.MaxMessage)
	return AppendString(b, m.Server)
}

func (m *HelloReply) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Version, m.Endpoint = d.U16(), d.U64()
	m.UID, m.GID, m.PID = d.U32(), d.U32(), d.I32()
	m.MaxFrame, m.MaxMessage, m.Server = d.U32(), d.U32(), d.String()
	return d.Finish()
}

// Option tags of CREATE. A broker rejects a tag it does not know with
// CodeInvalid rather than silently ignoring it.
const (
	TagDurable       uint16 = 1 // empty value
	TagMaxBytes      uint16 = 2 // i64
	TagTTL           uint16 = 3 // i64 nanoseconds
	TagMaxDeliveries uint16 = 4 // u32
	TagDeadLetter    uint16 = 5 // raw bytes: a mailbox name
)

// Create makes a mailbox.
type Create struct {
	Name          []byte
	Capacity      int64 // -1 unbounded, 0 rendezvous, N bounded
	Mode          uint32
	Durable       bool
	MaxBytes      int64
	TTL           int64
	MaxDeliveries uint32
	DeadLetter    []byte
}

func appendTag(b []byte, tag uint16, n int) []byte {
	return AppendU16(AppendU16(b, tag), uint16(n))
}

func (m *Create) Append(b []byte) []byte {
	b = AppendString(b, m.Name)
	b = AppendI64(b, m.Capacity)
	b = AppendU32(b, m.Mode)
	if m.Durable {
		b = appendTag(b, TagDurable, 0)
	}
	if m.MaxBytes != 0 {
		b = AppendI64(appendTag(b, TagMaxBytes, 8), m.MaxBytes)
	}
	if m.TTL != 0 {
		b = AppendI64(appendTag(b, TagTTL, 8), m.TTL)
	}
	if m.MaxDeliveries != 0 {
		b = AppendU32(appendTag(b, TagMaxDeliveries, 4), m.MaxDeliveries)
	}
	if dl := m.DeadLetter; len(dl) != 0 {
		if len(dl) > 0xffff { // as AppendString: the length must fit the u16
			dl = dl[:0xffff]
		}
		b = append(appendTag(b, TagDeadLetter, len(dl)), dl...)
	}
	return b
}

// ErrUnknownTag is returned by Create.Decode for an option tag it does not
// know. It wraps nothing: the frame is well-formed but asks for something
// unsupported.
var ErrUnknownTag = errorString("wire: unknown option tag")

type errorString string

func (e errorString) Error() string { return string(e) }

func (m *Create) Decode(p []byte) error {
	d := NewDecoder(p)
	*m = Create{Name: d.String(), Capacity: d.I64(), Mode: d.U32()}
	for d.Err() == nil && d.Len() > 0 {
		tag, n := d.U16(), int(d.U16())
		v := NewDecoder(d.take(n))
		if d.Err() != nil {
			break
		}
		switch tag {
		case TagDurable:
			m.Durable = true
		case TagMaxBytes:
			m.MaxBytes = v.I64()
		case TagTTL:
			m.TTL = v.I64()
		case TagMaxDeliveries:
			m.MaxDeliveries = v.U32()
		case TagDeadLetter:
			m.DeadLetter = v.Rest()
		default:
			return ErrUnknownTag
		}
		if v.Finish() != nil {
			return ErrMalformed
		}
	}
	return d.Finish()
}

// Name is the payload of DESTROY and STAT: one mailbox name.
type Name struct{ Name []byte }

func (m *Name) Append(b []byte) []byte { return AppendString(b, m.Name) }

func (m *Name) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Name = d.String()
	return d.Finish()
}

// Chmod changes a mailbox's mode bits.
type Chmod struct {
	Name []byte
	Mode uint32
}

func (m *Chmod) Append(b []byte) []byte { return AppendU32(AppendString(b, m.Name), m.Mode) }

func (m *Chmod) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Name, m.Mode = d.String(), d.U32()
	return d.Finish()
}

// Send puts a message into a mailbox ("name") or an endpoint's inbox ("@id").
type Send struct {
	Target   []byte
	Type     int64 // > 0
	Priority uint8 // higher first
	Timeout  int64 // nanoseconds: -1 wait forever, 0 do not wait
	Body     []byte
}

func (m *Send) Append(b []byte) []byte {
	b = AppendString(b, m.Target)
	b = AppendI64(b, m.Type)
	b = append(b, m.Priority)
	b = AppendI64(b, m.Timeout)
	return append(b, m.Body...)
}

func (m *Send) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Target, m.Type, m.Priority, m.Timeout = d.String(), d.I64(), d.U8(), d.I64()
	m.Body = d.Rest()
	return d.Err()
}

// Receipt says who took a message.
type Receipt struct {
	Endpoint uint64
	UID, GID uint32
	PID      int32
}

// SendReply answers SEND: the message id and, when the message was taken
// before the reply (rendezvous or FlagReceipt), who took it.
type SendReply struct {
	ID      uint64
	Taken   bool
	Receipt Receipt
}

func (m *SendReply) Append(b []byte) []byte {
	b = AppendU64(b, m.ID)
	if !m.Taken {
		return append(b, 0)
	}
	b = append(b, 1)
	b = AppendU64(b, m.Receipt.Endpoint)
	b = AppendU32(b, m.Receipt.UID)
	b = AppendU32(b, m.Receipt.GID)
	return AppendI32(b, m.Receipt.PID)
}

func (m *SendReply) Decode(p []byte) error {
	d := NewDecoder(p)
	m.ID = d.U64()
	switch d.U8() {
	case 0:
		m.Taken, m.Receipt = false, Receipt{}
	case 1:
		m.Taken = true
		m.Receipt = Receipt{Endpoint: d.U64(), UID: d.U32(), GID: d.U32(), PID: d.I32()}
	default:
		return ErrMalformed
	}
	return d.Finish()
}

// Recv asks for one message.
type Recv struct {
	Name    []byte
	Type    int64 // msgrcv rules: 0 any, > 0 exactly, < 0 lowest <= |Type|
	Timeout int64 // nanoseconds: -1 wait forever, 0 do not wait
}

func (m *Recv) Append(b []byte) []byte {
	return AppendI64(AppendI64(AppendString(b, m.Name), m.Type), m.Timeout)
}

func (m *Recv) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Name, m.Type, m.Timeout = d.String(), d.I64(), d.I64()
	return d.Finish()
}

// Consume asks for a stream of messages, at most Credit before more credit
// is granted with CREDIT frames.
type Consume struct {
	Name   []byte
	Type   int64
	Credit uint32
}

func (m *Consume) Append(b []byte) []byte {
	return AppendU32(AppendI64(AppendString(b, m.Name), m.Type), m.Credit)
}

func (m *Consume) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Name, m.Type, m.Credit = d.String(), d.I64(), d.U32()
	return d.Finish()
}

// Credit grants a consumer more deliveries. The frame's request id is the
// CONSUME request's id.
type Credit struct{ N uint32 }

func (m *Credit) Append(b []byte) []byte { return AppendU32(b, m.N) }

func (m *Credit) Decode(p []byte) error {
	d := NewDecoder(p)
	m.N = d.U32()
	return d.Finish()
}

// MaxLeasesPerFrame bounds the lease ids in one ACK or NACK.
const MaxLeasesPerFrame = 4096

// Leases is the payload of ACK and NACK: lease ids. Decode reuses IDs'
// backing array.
type Leases struct{ IDs []uint64 }

func (m *Leases) Append(b []byte) []byte {
	b = AppendU32(b, uint32(len(m.IDs)))
	for _, id := range m.IDs {
		b = AppendU64(b, id)
	}
	return b
}

func (m *Leases) Decode(p []byte) error {
	d := NewDecoder(p)
	n := d.U32()
	if n > MaxLeasesPerFrame || int(n)*8 != d.Len() {
		return ErrMalformed
	}
	m.IDs = m.IDs[:0]
	for range n {
		m.IDs = append(m.IDs, d.U64())
	}
	return d.Finish()
}

// AckReply answers ACK and NACK: how many leading leases were applied. On
// failure the status names why lease Done failed; the rest were not tried.
type AckReply struct{ Done uint32 }

func (m *AckReply) Append(b []byte) []byte { return AppendU32(b, m.Done) }

func (m *AckReply) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Done = d.U32()
	return d.Finish()
}

// Dead-letter reasons, in Delivery.Reason.
const (
	ReasonNone          uint8 = 0
	ReasonMaxDeliveries uint8 = 1 // delivered MaxDeliveries times without an ack
	ReasonExpired       uint8 = 2 // older than the mailbox's TTL
)

// DeliveryChannelOffer (Delivery.Flags): the message is a shared-memory
// channel offer made with CHANNEL; its body is the 16-byte token to ATTACH
// with.
const DeliveryChannelOffer uint8 = 1 << 0

// Channel asks the broker to create a shared-memory channel and offer its
// other end to whoever receives the offer message from Target (a mailbox
// or "@id"). The offer travels like a SEND with these fields.
type Channel struct {
	Target   []byte
	Type     int64
	Priority uint8
	Timeout  int64
	// RingSize is the bytes of each direction's ring (0: the default).
	RingSize uint32
}

func (m *Channel) Append(b []byte) []byte {
	b = AppendString(b, m.Target)
	b = AppendI64(b, m.Type)
	b = append(b, m.Priority)
	b = AppendI64(b, m.Timeout)
	return AppendU32(b, m.RingSize)
}

func (m *Channel) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Target, m.Type, m.Priority, m.Timeout, m.RingSize = d.String(), d.I64(), d.U8(), d.I64(), d.U32()
	return d.Finish()
}

// TokenSize is the size of a channel offer's token.
const TokenSize = 16

// Attach takes the other end of an offered channel.
type Attach struct{ Token [TokenSize]byte }

func (m *Attach) Append(b []byte) []byte { return append(b, m.Token[:]...) }

func (m *Attach) Decode(p []byte) error {
	if len(p) != TokenSize {
		return ErrMalformed
	}
	copy(m.Token[:], p)
	return nil
}

// DeliveryFixed is the size of a Delivery before its body.
const DeliveryFixed = 60

// Delivery is one message handed to a receiver: the reply to RECV, and the
// payload of every DELIVER.
type Delivery struct {
	Lease    uint64 // 0 when auto-acked
	ID       uint64 // the message's id within its mailbox
	Type     int64
	Priority uint8
	// Reason is why a message is in a dead-letter mailbox (ReasonNone
	// otherwise).
	Reason uint8
	// Flags describe the message (DeliveryChannelOffer).
	Flags        uint8
	Redeliveries uint32
	UID, GID     uint32 // sender identity, stamped by the broker
	PID          int32
	Endpoint     uint64
	SentUnixNano int64
	Body         []byte
}

func (m *Delivery) Append(b []byte) []byte {
	b = AppendU64(b, m.Lease)
	b = AppendU64(b, m.ID)
	b = AppendI64(b, m.Type)
	b = append(b, m.Priority, m.Reason, m.Flags, 0)
	b = AppendU32(b, m.Redeliveries)
	b = AppendU32(b, m.UID)
	b = AppendU32(b, m.GID)
	b = AppendI32(b, m.PID)
	b = AppendU64(b, m.Endpoint)
	b = AppendI64(b, m.SentUnixNano)
	return append(b, m.Body...)
}

func (m *Delivery) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Lease, m.ID, m.Type = d.U64(), d.U64(), d.I64()
	m.Priority, m.Reason, m.Flags = d.U8(), d.U8(), d.U8()
	d.take(1)
	m.Redeliveries, m.UID, m.GID, m.PID = d.U32(), d.U32(), d.U32(), d.I32()
	m.Endpoint, m.SentUnixNano = d.U64(), d.I64()
	m.Body = d.Rest()
	return d.Err()
}

// Mailbox flags in MailboxInfo.
const (
	MailboxDurable uint32 = 1 << 0
	MailboxInbox   uint32 = 1 << 1 // an endpoint's private inbox
)

// MailboxInfo is the reply to STAT and each entry of LIST's reply.
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
}

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
	return AppendString(b, m.DeadLetter)
}

func (m *MailboxInfo) decode(d *Decoder) {
	m.Name, m.UID, m.GID, m.Mode = d.String(), d.U32(), d.U32(), d.U32()
	m.Capacity, m.Flags, m.Depth, m.Bytes = d.I64(), d.U32(), d.U64(), d.U64()
	m.Receivers, m.Consumers, m.InFlight, m.BlockedSenders = d.U32(), d.U32(), d.U32(), d.U32()
	m.Sent, m.Received, m.Redelivered, m.CreatedUnix = d.U64(), d.U64(), d.U64(), d.I64()
	m.DiskBytes, m.OldestUnix, m.DeadLettered = d.U64(), d.I64(), d.U64()
	m.MaxBytes, m.TTL, m.MaxDeliveries, m.DeadLetter = d.I64(), d.I64(), d.U32(), d.String()
}

func (m *MailboxInfo) Decode(p []byte) error {
	d := NewDecoder(p)
	m.decode(&d)
	return d.Finish()
}

// AppendList encodes LIST's reply.
func AppendList(b []byte, infos []MailboxInfo) []byte {
	b = AppendU32(b, uint32(len(infos)))
	for i := range infos {
		b = infos[i].Append(b)
	}
	return b
}

// DecodeList decodes LIST's reply.
func DecodeList(p []byte) ([]MailboxInfo, error) {
	d := NewDecoder(p)
	n := d.U32()
	if int(n) > len(p)/64+1 { // each entry is at least 64 bytes
		return nil, ErrMalformed
	}
	infos := make([]MailboxInfo, n)
	for i := range infos {
		infos[i].decode(&d)
	}
	return infos, d.Finish()
}

// AppendError encodes an error reply's payload: a human-readable message.
func AppendError(b []byte, msg string) []byte { return AppendString(b, msg) }

// DecodeError decodes an error reply's payload. A payload that does not
// decode yields an empty message: the status alone still says what failed.
func DecodeError(p []byte) string {
	d := NewDecoder(p)
	s := d.String()
	if d.Err() != nil {
		return ""
	}
	return string(s)
}
