package store

import (
	"encoding/binary"
	"hash/crc32"
	"math"
)

// This file is the on-disk format in code: segment header, record framing
// and every payload codec. It does no I/O; doc.go describes the same bytes
// in prose and the two must change together.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const (
	segMagic      = "PBOXWAL1"
	segHeaderSize = 24
	recHeaderSize = 9 // crc32c u32 | payload length u32 | type u8

	// maxPayload bounds a record's payload so a corrupt length field is
	// recognised as garbage rather than as an enormous record.
	maxPayload = 1 << 30
	// maxName is the longest mailbox name, dead-letter reason, etc. that a
	// u16 length prefix can carry.
	maxName = math.MaxUint16
)

// Record types (byte 8 of a record).
const (
	recSnapshot      = 1
	recPutMailbox    = 2
	recDeleteMailbox = 3
	recAppend        = 4
	recAck           = 5
	recLease         = 6
	recReturn        = 7
	recDeadLetter    = 8
	recMaxType       = recDeadLetter
)

// Bits of an Append record's flags byte. flagLeased marks a
// copied-forward message that was leased when it was copied. flagHeaders:
// the body is followed by the message's headers block (u32 n + n bytes).
// flagKind: then by one byte, the sender's principal kind (without it the
// sender was a Unix peer, as every sender was before kinds existed). The
// two later bits keep records written before them decoding as they were.
const (
	flagLeased  = 1 << 0
	flagHeaders = 1 << 1
	flagKind    = 1 << 2
	flagName    = 1 << 3 // then a str, the sender's principal name
	flagUrgent  = 1 << 4 // the message is urgent (Message.Urgent); no field follows
)

// defAccess, in a Def's mode word, says that the Def ends with its
// owner's kind and name and its access entries (a mailbox created by a
// remote principal, or with access entries). Without it the owner is a
// Unix uid and there are no entries, as before they existed. The broker
// uses bit 31 (a service mailbox) and bit 29 (closed for sending,
// broker/shut.go).
const defAccess = 1 << 30

// kindUnix is the principal kind a record without flagKind means
// (wire.PrincipalUnix; the store does not import wire).
const kindUnix = 1

func encodeSegHeader(id uint64) []byte {
	h := make([]byte, segHeaderSize)
	copy(h, segMagic)
	binary.LittleEndian.PutUint64(h[8:], id)
	binary.LittleEndian.PutUint32(h[20:], crc32.Checksum(h[:20], castagnoli))
	return h
}

// decodeSegHeader returns the segment id, or ok=false if b is not a valid
// header.
func decodeSegHeader(b []byte) (id uint64, ok bool) {
	if len(b) < segHeaderSize || string(b[:8]) != segMagic {
		return 0, false
	}
	if crc32.Checksum(b[:20], castagnoli) != binary.LittleEndian.Uint32(b[20:]) {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[8:]), true
}

// beginRecord appends a record header with a zero checksum and returns the
// buffer and the offset of the header; endRecord fills in length and CRC.
func beginRecord(b []byte, typ byte) ([]byte, int) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, typ)
	return b, start
}

func endRecord(b []byte, start int) {
	n := len(b) - start - recHeaderSize
	binary.LittleEndian.PutUint32(b[start+4:], uint32(n))
	binary.LittleEndian.PutUint32(b[start:], crc32.Checksum(b[start+4:], castagnoli))
}

// parseRecord checks the record at the start of b. It returns the record's
// type, payload and total size, or ok=false when b does not start with a
// complete record whose checksum matches.
func parseRecord(b []byte) (typ byte, payload []byte, size int, ok bool) {
	if len(b) < recHeaderSize {
		return 0, nil, 0, false
	}
	n := binary.LittleEndian.Uint32(b[4:])
	typ = b[8]
	if typ == 0 || typ > recMaxType || n > maxPayload || uint64(n) > uint64(len(b)-recHeaderSize) {
		return 0, nil, 0, false
	}
	size = recHeaderSize + int(n)
	if crc32.Checksum(b[4:size], castagnoli) != binary.LittleEndian.Uint32(b) {
		return 0, nil, 0, false
	}
	return typ, b[recHeaderSize:size], size, true
}

// Little-endian append helpers.

func putU16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func putU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func putU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }
func putStr(b []byte, s string) []byte { return append(putU16(b, uint16(len(s))), s...) }

func appendDef(b []byte, d *MailboxDef) []byte {
	ext := d.OwnerKind > kindUnix || d.OwnerName != "" || len(d.Access) > 0
	mode := d.Mode &^ defAccess
	if ext {
		mode |= defAccess
	}
	b = putStr(b, d.Name)
	b = putU32(b, d.OwnerUID)
	b = putU32(b, d.OwnerGID)
	b = putU32(b, mode)
	b = putU64(b, uint64(d.Capacity))
	b = putU64(b, uint64(d.MaxBytes))
	b = putU64(b, uint64(d.TTL))
	b = putU32(b, d.MaxDeliveries)
	b = putStr(b, d.DeadLetter)
	b = putU64(b, uint64(d.CreatedUnixNano))
	if ext {
		b = append(b, d.OwnerKind)
		b = putStr(b, d.OwnerName)
		b = putU16(b, uint16(len(d.Access)))
		for _, e := range d.Access {
			b = append(putStr(b, e.Pattern), e.Perms)
		}
	}
	return b
}

// appendMessage encodes an Append payload. mailbox and seq are passed
// separately so a copied-forward, dead-lettered message can be written
// under its new name without building a new Message.
func appendMessage(b []byte, m *Message, mailbox string, seq uint64, flags byte) []byte {
	flags &^= flagHeaders | flagKind | flagName | flagUrgent
	if m.Urgent {
		flags |= flagUrgent
	}
	if len(m.Headers) > 0 {
		flags |= flagHeaders
	}
	if m.SenderKind != kindUnix {
		flags |= flagKind
	}
	if m.SenderName != "" {
		flags |= flagName
	}
	b = putStr(b, mailbox)
	b = putU64(b, seq)
	b = append(b, flags, m.Priority)
	b = putU64(b, uint64(m.Type))
	b = putU32(b, m.SenderUID)
	b = putU32(b, m.SenderGID)
	b = putU32(b, uint32(m.SenderPID))
	b = putU64(b, m.SenderEndpoint)
	b = putU64(b, uint64(m.SentUnixNano))
	b = putU32(b, m.Redeliveries)
	b = putStr(b, m.DeadReason)
	b = putU32(b, uint32(len(m.Body)))
	b = append(b, m.Body...)
	if flags&flagHeaders != 0 {
		b = putU32(b, uint32(len(m.Headers)))
		b = append(b, m.Headers...)
	}
	if flags&flagKind != 0 {
		b = append(b, m.SenderKind)
	}
	if flags&flagName != 0 {
		b = putStr(b, m.SenderName)
	}
	return b
}

// decoder reads little-endian fields; after any short read ok is false and
// every later read returns zero values.
type decoder struct {
	b  []byte
	ok bool
}

func newDecoder(b []byte) decoder { return decoder{b: b, ok: true} }

func (d *decoder) take(n int) []byte {
	if !d.ok || len(d.b) < n {
		d.ok = false
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() byte {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

// str returns a u16-length-prefixed byte string, aliasing the input.
func (d *decoder) str() []byte {
	v := d.take(2)
	if v == nil {
		return nil
	}
	return d.take(int(binary.LittleEndian.Uint16(v)))
}

// done reports whether every field was present and nothing is left over.
func (d *decoder) done() bool { return d.ok && len(d.b) == 0 }

func decodeDef(d *decoder) MailboxDef {
	var m MailboxDef
	m.Name = string(d.str())
	m.OwnerUID = d.u32()
	m.OwnerGID = d.u32()
	m.Mode = d.u32()
	m.Capacity = int64(d.u64())
	m.MaxBytes = int64(d.u64())
	m.TTL = durationOf(d.u64())
	m.MaxDeliveries = d.u32()
	m.DeadLetter = string(d.str())
	m.CreatedUnixNano = int64(d.u64())
	if m.Mode&defAccess != 0 {
		m.Mode &^= defAccess
		m.OwnerKind = d.u8()
		m.OwnerName = string(d.str())
		n := int(d.u16())
		for range n {
			if !d.ok {
				break
			}
			m.Access = append(m.Access, AccessEntry{Pattern: string(d.str()), Perms: d.u8()})
		}
	}
	return m
}

// msgHead is the part of an Append payload the live index needs; decoding
// it allocates nothing (mailbox aliases the payload).
type msgHead struct {
	mailbox      []byte
	seq          uint64
	flags        byte
	priority     byte
	sent         int64
	redeliveries uint32
}

// decodeMessage decodes an Append payload. If full is false only the head
// is filled and m is left untouched.
func decodeMessage(p []byte, m *Message, full bool) (h msgHead, ok bool) {
	d := newDecoder(p)
	h.mailbox = d.str()
	h.seq = d.u64()
	h.flags = d.u8()
	h.priority = d.u8()
	typ := int64(d.u64())
	uid, gid, pid := d.u32(), d.u32(), int32(d.u32())
	ep := d.u64()
	h.sent = int64(d.u64())
	h.redeliveries = d.u32()
	reason := d.str()
	body := d.take(int(d.u32()))
	var headers []byte
	if h.flags&flagHeaders != 0 {
		headers = d.take(int(d.u32()))
	}
	kind := byte(kindUnix)
	if h.flags&flagKind != 0 {
		kind = d.u8()
	}
	var name []byte
	if h.flags&flagName != 0 {
		name = d.str()
	}
	if !d.done() {
		return h, false
	}
	if full {
		*m = Message{
			Mailbox: string(h.mailbox), Seq: h.seq, Type: typ, Priority: h.priority,
			SenderKind: kind, SenderUID: uid, SenderGID: gid, SenderPID: pid, SenderEndpoint: ep,
			SentUnixNano: h.sent, Redeliveries: h.redeliveries,
			DeadReason: string(reason), SenderName: string(name), Urgent: h.flags&flagUrgent != 0,
		}
		// Body and headers share one allocation, as in the broker.
		buf := make([]byte, len(body)+len(headers))
		copy(buf, body)
		copy(buf[len(body):], headers)
		m.Body = buf[:len(body):len(body)]
		if len(headers) > 0 {
			m.Headers = buf[len(body):]
		}
	}
	return h, true
}
