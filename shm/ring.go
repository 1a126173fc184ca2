package shm

import (
	"encoding/binary"
	"sync/atomic"
)

// A ring carries records one way. Its indices are byte counts that only
// grow (they wrap at 2^64, which no channel reaches); a record lives at
// index & mask and never straddles the end of the data area: a record
// that would is preceded by a padding record running to the end.
//
// Memory ordering. The producer writes a record's header and body with
// plain stores, then publishes the new tail with an atomic store; the
// consumer atomically loads tail before reading anything below it. The
// consumer releases space by atomically storing head; the producer
// atomically loads head before reusing anything below it. Nothing else
// orders the data. Go's sync/atomic operations are sequentially
// consistent, which the wait protocol (wait.go) relies on.
//
// Record format: an 8-byte little-endian header, then the body, padded to
// 8 bytes.
//
//	bits  0..31  body length in bytes
//	bits 32..39  kind (recInline, recPad, recPool, recMemfd)
//	bits 40..63  recMagic, so stray bytes are caught early
const (
	recHeader = 8
	recMagic  = 0x5042b7

	recInline = 1 // body is the message
	recPad    = 2 // filler up to the end of the data area
	recPool   = 3 // body is poolDesc: length u64, first block u32, block word u32
	recMemfd  = 4 // body is memfdDesc: length u64, id u64

	poolDescSize  = 16
	memfdDescSize = 16
)

func recordSize(n uint64) uint64 { return (recHeader + n + 7) &^ 7 }

func recordHeader(n uint64, kind uint8) uint64 {
	return n | uint64(kind)<<32 | recMagic<<40
}

// ring is one direction's view of the shared control words and data.
type ring struct {
	data     []byte         // the data area, size bytes
	size     uint64         // a power of two
	mask     uint64         // size-1
	tail     *atomic.Uint64 // producer publishes: every record below tail is complete
	head     *atomic.Uint64 // consumer publishes: every byte below head may be reused
	dataWait *atomic.Uint32 // futex word: 1 while the consumer sleeps for data
	roomWait *atomic.Uint32 // futex word: 1 while the producer sleeps for room
}

func ringAt(mem []byte, g geometry, r int) ring {
	ctl := uint64(offRings + r*ringCtlSize)
	start := g.ringData(r)
	return ring{
		data:     mem[start : start+g.ringSize : start+g.ringSize],
		size:     g.ringSize,
		mask:     g.ringSize - 1,
		tail:     u64At(mem, ctl+ctlTail),
		head:     u64At(mem, ctl+ctlHead),
		dataWait: u32At(mem, ctl+ctlDataWait),
		roomWait: u32At(mem, ctl+ctlRoomWait),
	}
}

// maxInline is the largest body that may go inline: a record of at most
// half the ring always fits once the consumer drains, wherever the tail is.
func (r *ring) maxInline() uint64 { return r.size/2 - recHeader }

// inlineLimit is the largest message a sender puts inline: at most half
// the ring, and less than half a pool block when there is a pool. Bigger
// messages go to the pool even when the ring could hold them, because the
// pool hands its blocks out round-robin over N×B bytes (64 × 64 KiB by
// default) while the ring reuses its space every R bytes: space reused
// soon after the consumer read it is still in the consumer's cache, and
// the producer's every write has to take the line back. For 64 KiB copies
// that was the difference between about 6 and about 30 GB/s. A receiver
// takes inline records of any size that fits its ring, so this is the
// sender's choice alone and needs no change to the layout.
func inlineLimit(g geometry) uint64 {
	n := min(g.ringSize/2-recHeader, g.maxMessage)
	if g.blocks > 0 {
		n = min(n, g.blockSize/2-1)
	}
	return n
}

// producer is the writing side's local state. Only the sending goroutine
// (under Chan.sendMu) touches it.
type producer struct {
	ring
	tail      uint64 // next free index, including staged (unpublished) records
	published uint64 // the last value stored to ring.tail
	headCache uint64 // the last head loaded; re-read only when the ring looks full
}

// reserve finds room for a record with an n-byte body (n <= maxInline),
// writing a padding record first if it would cross the end. It returns the
// offset of the record's header in data. Nothing is visible to the peer
// until publish.
func (p *producer) reserve(n uint64) (uint64, error) {
	total := recordSize(n)
	pos := p.tail & p.mask
	need := total
	if total > p.size-pos {
		need += p.size - pos
	}
	if p.tail+need-p.headCache > p.size {
		h := p.head.Load()
		if p.published-h > p.size { // also catches h > published
			return 0, ErrCorrupt
		}
		p.headCache = h
		if p.tail+need-h > p.size {
			return 0, ErrFull
		}
	}
	if total > p.size-pos {
		binary.LittleEndian.PutUint64(p.data[pos:], recordHeader(p.size-pos-recHeader, recPad))
		p.tail += p.size - pos
		pos = 0
	}
	return pos, nil
}

// stageInline is the hot loop of SendBatch: it stages msgs as inline
// records for as long as each is at most max bytes, fits before the end of
// the data area and fits below the cached head, and returns how many it
// staged. Whatever stops it (a wrap, a stale head cache, a large message)
// is left to reserve and the general path. Per message it costs a header
// store and the copy; the tail is published by the caller.
func (p *producer) stageInline(msgs [][]byte, max uint64) int {
	data, tail := p.data, p.tail
	room := p.headCache + p.size // tail may reach room
	for i, m := range msgs {
		n := uint64(len(m))
		total := recordSize(n)
		pos := tail & p.mask
		if n > max || total > uint64(len(data))-pos || total > room-tail {
			p.tail = tail
			return i
		}
		binary.LittleEndian.PutUint64(data[pos:], recordHeader(n, recInline))
		copy(data[pos+recHeader:], m)
		tail += total
	}
	p.tail = tail
	return len(msgs)
}

// commit completes the record reserved at pos; publish makes it visible.
func (p *producer) commit(pos, n uint64, kind uint8) {
	binary.LittleEndian.PutUint64(p.data[pos:], recordHeader(n, kind))
	p.tail += recordSize(n)
}

// publish stores the tail, then wakes the consumer if it sleeps. The
// store-then-load order pairs with the consumer's flag-then-recheck order
// in wait.go, so a wake-up is never lost.
func (p *producer) publish() {
	if p.tail == p.published {
		return
	}
	p.ring.tail.Store(p.tail)
	p.published = p.tail
	if p.dataWait.Load() != 0 && p.dataWait.CompareAndSwap(1, 0) {
		futexWake(p.dataWait)
	}
}

// hasRoom reports whether the consumer released anything since headCache;
// waiters poll it.
func (p *producer) hasRoom() bool { return p.head.Load() != p.headCache }

// record is one record found by the consumer.
type record struct {
	kind uint8
	body uint64 // offset of the body in data
	n    uint64 // body length
	end  uint64 // ring index just past the record
}

// consumer is the reading side's local state. Only receiving goroutines
// (under Chan.recvMu) touch it.
type consumer struct {
	ring
	read      uint64 // index of the next record to view
	head      uint64 // every record below head is released
	published uint64 // the last value stored to ring.head
	tailCache uint64 // the last tail loaded; re-read only when read reaches it
}

// peek returns the next record without consuming it, skipping padding.
// Every word read from shared memory is read once into a local and
// checked before use: a hostile or broken peer gets ErrCorrupt, never an
// out-of-range access.
func (c *consumer) peek() (record, error) {
	for {
		if c.read == c.tailCache {
			t := c.tail.Load()
			if t-c.read > c.size || t-c.published > c.size {
				return record{}, ErrCorrupt
			}
			c.tailCache = t
			if t == c.read {
				return record{}, ErrEmpty
			}
		}
		pos := c.read & c.mask
		avail := c.tailCache - c.read
		if avail < recHeader || pos&7 != 0 {
			return record{}, ErrCorrupt
		}
		h := binary.LittleEndian.Uint64(c.data[pos:])
		n, kind := h&0xffffffff, uint8(h>>32)
		total := recordSize(n)
		if h>>40 != recMagic || total > c.size-pos || total > avail {
			return record{}, ErrCorrupt
		}
		switch kind {
		case recPad:
			if total != c.size-pos {
				return record{}, ErrCorrupt
			}
			if c.head == c.read { // no loan outstanding: release the padding now
				c.head += total
			}
			c.read += total
			continue
		case recInline:
		case recPool:
			if n != poolDescSize {
				return record{}, ErrCorrupt
			}
		case recMemfd:
			if n != memfdDescSize {
				return record{}, ErrCorrupt
			}
		default:
			return record{}, ErrCorrupt
		}
		return record{kind: kind, body: pos + recHeader, n: n, end: c.read + total}, nil
	}
}

// takeInline is the hot loop of ReceiveBatch: it calls fn on consecutive
// inline records, up to max, consuming each (read and head move together;
// the caller has checked that no loan is outstanding), and skips padding.
// It stops at anything else: an empty ring, another kind, or a header that
// fails a check, all of which peek deals with and reports. Each header is
// loaded once and checked before use, as in peek. When it has consumed
// everything it last saw published it stores head before it loads tail
// again, so the producer gets room back once per run it published.
func (c *consumer) takeInline(max int, fn func([]byte)) int {
	const inlineTag = recMagic<<8 | recInline // header bits 32..63
	data := c.data
	n := 0
	for n < max {
		read := c.read
		if read == c.tailCache {
			c.publish()
			t := c.tail.Load()
			if t == read || t-read > c.size || t-c.published > c.size {
				return n // empty, or corrupt: peek reports it
			}
			c.tailCache = t
		}
		pos := read & c.mask
		if pos&7 != 0 || c.tailCache-read < recHeader {
			return n
		}
		h := binary.LittleEndian.Uint64(data[pos:])
		size := h & 0xffffffff
		total := recordSize(size)
		if total > uint64(len(data))-pos || total > c.tailCache-read {
			return n
		}
		if h>>32 != inlineTag {
			if h>>32 != recMagic<<8|recPad || total != uint64(len(data))-pos {
				return n
			}
			c.read, c.head = read+total, read+total
			continue
		}
		c.read, c.head = read+total, read+total
		fn(data[pos+recHeader : pos+recHeader+size : pos+recHeader+size])
		n++
	}
	return n
}

// publish stores head, then wakes the producer if it sleeps for room.
func (c *consumer) publish() {
	if c.head == c.published {
		return
	}
	c.ring.head.Store(c.head)
	c.published = c.head
	c.wakeProducer()
}

func (c *consumer) wakeProducer() {
	if c.roomWait.Load() != 0 && c.roomWait.CompareAndSwap(1, 0) {
		futexWake(c.roomWait)
	}
}

// hasData reports whether the producer published anything past read;
// waiters poll it.
func (c *consumer) hasData() bool { return c.tail.Load() != c.read }
