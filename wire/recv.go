package wire

import "encoding/binary"

// Receiving: RECV, CONSUME, CREDIT and the Delivery that carries a message
// to a receiver (RECV's reply, and every pushed DELIVER).

// Recv asks for one message: `name string | type i64 | timeout i64 | ext`.
// Its reply is a Delivery.
type Recv struct {
	Name    []byte
	Type    int64 // msgrcv rules: 0 any, > 0 exactly, < 0 lowest <= |Type|
	Timeout int64 // nanoseconds: -1 wait forever, 0 do not wait
	Ext     []byte
}

func (m *Recv) Append(b []byte) []byte {
	b = AppendI64(AppendI64(AppendString(b, m.Name), m.Type), m.Timeout)
	return append(b, m.Ext...)
}

func (m *Recv) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Name, m.Type, m.Timeout, m.Ext = d.String(), d.I64(), d.I64(), d.Ext()
	return d.Err()
}

// Consume asks for a stream of messages, pushed as DELIVER frames, at most
// Credit before more is granted with CREDIT: `name string | type i64 |
// credit u32 | ext`. The final CONSUME reply (never OK) ends the stream.
type Consume struct {
	Name   []byte
	Type   int64
	Credit uint32
	Ext    []byte
}

func (m *Consume) Append(b []byte) []byte {
	b = AppendU32(AppendI64(AppendString(b, m.Name), m.Type), m.Credit)
	return append(b, m.Ext...)
}

func (m *Consume) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Name, m.Type, m.Credit, m.Ext = d.String(), d.I64(), d.U32(), d.Ext()
	return d.Err()
}

// Credit grants a consumer more deliveries: `n u32 | ext`. The frame's
// request id is the CONSUME request's id. It has no reply.
type Credit struct {
	N   uint32
	Ext []byte
}

func (m *Credit) Append(b []byte) []byte { return append(AppendU32(b, m.N), m.Ext...) }

func (m *Credit) Decode(p []byte) error {
	d := NewDecoder(p)
	m.N, m.Ext = d.U32(), d.Ext()
	return d.Err()
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

// DeliveryFixed is the size of a Delivery's fields other than its headers
// and body contents and its ext tail (the two u32 lengths included).
const DeliveryFixed = 8 + 8 + 8 + 3 + 4 + IdentitySize + 8 + 4 + 4

// DeliveryOverhead is what a DELIVER or RECV reply frame adds to a
// message's len(body) + len(headers) when its ext tail is empty. A client
// that reads frames up to HelloReply.MaxFrame + DeliveryOverhead can take
// every message the broker admits.
const DeliveryOverhead = HeaderSize + DeliveryFixed

// Delivery is one message handed to a receiver: `lease u64 | id u64 | type
// i64 | priority u8 | reason u8 | flags u8 | redeliveries u32 | sender
// identity | sent_unix_nano i64 | headers | body bytes | ext`.
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
	Sender       Identity // stamped by the broker
	SentUnixNano int64
	Headers      []byte // the sender's headers block, byte for byte
	Body         []byte
	Ext          []byte
}

func (m *Delivery) Append(b []byte) []byte {
	b = AppendU64(b, m.Lease)
	b = AppendU64(b, m.ID)
	b = AppendI64(b, m.Type)
	b = append(b, m.Priority, m.Reason, m.Flags)
	b = AppendU32(b, m.Redeliveries)
	b = m.Sender.Append(b)
	b = AppendI64(b, m.SentUnixNano)
	b = AppendBytes(b, m.Headers)
	b = AppendBytes(b, m.Body)
	return append(b, m.Ext...)
}

// deliveryPrefix is the size of a Delivery's fixed fields before its
// headers: decoded from one bounds check on every received message.
const deliveryPrefix = 8 + 8 + 8 + 3 + 4 + IdentitySize + 8

func (m *Delivery) Decode(p []byte) error {
	if len(p) < deliveryPrefix {
		m.decodeSlow(p)
		return ErrMalformed
	}
	le := binary.LittleEndian
	f := p[:deliveryPrefix]
	m.Lease, m.ID, m.Type = le.Uint64(f), le.Uint64(f[8:]), int64(le.Uint64(f[16:]))
	m.Priority, m.Reason, m.Flags = f[24], f[25], f[26]
	m.Redeliveries = le.Uint32(f[27:])
	s := f[31:]
	m.Sender = Identity{Kind: s[0], UID: le.Uint32(s[1:]), GID: le.Uint32(s[5:]), PID: int32(le.Uint32(s[9:])), Endpoint: le.Uint64(s[13:])}
	m.SentUnixNano = int64(le.Uint64(f[31+IdentitySize:]))
	d := NewDecoder(p[deliveryPrefix:])
	m.Headers, m.Body, m.Ext = d.Headers(), d.Bytes(), d.Ext()
	return d.Err()
}

// decodeSlow is Decode field by field, for a payload too short for the
// fixed fields: it sets what is there, as Decode always did.
func (m *Delivery) decodeSlow(p []byte) {
	d := NewDecoder(p)
	m.Lease, m.ID, m.Type = d.U64(), d.U64(), d.I64()
	m.Priority, m.Reason, m.Flags = d.U8(), d.U8(), d.U8()
	m.Redeliveries, m.Sender, m.SentUnixNano = d.U32(), d.Identity(), d.I64()
	m.Headers, m.Body, m.Ext = d.Headers(), d.Bytes(), d.Ext()
}
