package mailbox

import (
	"errors"
	"math"
)

// Errors returned by Mailbox methods and carried by EffFail.
var (
	ErrFull       = errors.New("mailbox: full")
	ErrEmpty      = errors.New("mailbox: empty")
	ErrDestroyed  = errors.New("mailbox: destroyed")
	ErrStaleLease = errors.New("mailbox: stale lease")
	ErrTimeout    = errors.New("mailbox: timed out")
	ErrCanceled   = errors.New("mailbox: canceled")
	ErrClosed     = errors.New("mailbox: closed")
)

// Identity is who sent a message (or took it), as the broker established
// it. Kind is the principal kind (wire.PrincipalUnix: UID, GID and PID
// come from the kernel; wire.PrincipalTLS: Name is the certificate's
// name; wire.PrincipalNone: nothing is known).
type Identity struct {
	Kind     uint8
	UID, GID uint32
	PID      int32
	Endpoint uint64
	Name     string // a TLS principal's name, else ""
}

// Message is a message held by a mailbox.
type Message struct {
	Seq          uint64 // assigned by the mailbox when accepted; 0 before
	Type         int64
	Priority     uint8
	Redeliveries uint32
	Sender       Identity
	SentUnixNano int64
	Body         []byte
	// Headers is the message's headers block (package wire), kept and
	// forwarded byte for byte; nil for none. Byte limits and held bytes count it with the body.
	Headers []byte
	// Reason is why the message was dead-lettered into this mailbox
	// (wire.ReasonMaxDeliveries, wire.ReasonExpired), 0 otherwise.
	Reason uint8
	// Flags are carried to receivers untouched (wire.DeliveryChannelOffer).
	Flags uint8
	// Urgent puts the message in the urgent lane: it is delivered ahead
	// of every message that is not urgent, whatever their priorities
	// (FIFO among urgent messages), and it may pass the capacity by
	// UrgentReserve (see urgent.go).
	Urgent bool
	// Hold is what the message holds beyond its bytes (descriptors), nil
	// for nothing: released once when the message leaves (release.go).
	Hold Releaser

	// Set while the message is leased.
	lease  uint64
	holder uint64 // endpoint holding the lease
	// offer is the sender waiting for this message to be taken
	// (rendezvous or receipt), nil otherwise.
	offer *Sender
	// taker is the receiver it was last delivered to (zero before).
	taker Identity
}

// Taker returns the receiver the message was last delivered to, and
// false if it was never delivered. (The broker names it in the outcome
// of an RPC request whose caller gave up.)
func (m *Message) Taker() (Identity, bool) { return m.taker, m.taker != Identity{} }

// size is what the message counts for in byte limits and held bytes: its
// body and its headers.
func (m *Message) size() int { return len(m.Body) + len(m.Headers) }

// Leased reports whether the message is currently leased, and the lease.
func (m *Message) Leased() (uint64, bool) { return m.lease, m.lease != 0 }

// matches reports whether a message satisfies a msgrcv type selector. For
// negative selectors it only says the message is a candidate; the caller
// picks the lowest type among candidates.
func matches(sel, typ int64) bool {
	switch {
	case sel == 0:
		return true
	case sel > 0:
		return typ == sel
	case sel == math.MinInt64:
		// -sel would overflow; msgrcv(2) on Linux takes it as "any type".
		return true
	default:
		return typ <= -sel
	}
}

// queue holds messages in queue order: 256 priority lanes, each sorted by
// Seq, and a bitmap of non-empty lanes so the highest one is found with a
// few word operations.
type queue struct {
	lanes  [256]lane
	bits   [4]uint64 // bit p set when lanes[p] is non-empty
	urgent lane      // urgent messages, ahead of every priority lane
	n      int
	bytes  int64
}

// urgentLane is the lane number pick and removeAt use for the urgent lane.
const urgentLane = -1

// lane returns lane p (urgentLane or a priority).
func (q *queue) lane(p int) *lane {
	if p == urgentLane {
		return &q.urgent
	}
	return &q.lanes[p]
}

// laneOf is the lane m belongs in.
func laneOf(m *Message) int {
	if m.Urgent {
		return urgentLane
	}
	return int(m.Priority)
}

// lane is one priority's messages sorted by Seq, stored in a slice whose
// live part is items[head:].
type lane struct {
	items []*Message
	head  int
}

func (l *lane) len() int { return len(l.items) - l.head }

func (l *lane) at(i int) *Message { return l.items[l.head+i] }

// insert places m in Seq order. Appending is the common case.
func (l *lane) insert(m *Message) {
	live := l.items[l.head:]
	if len(live) == 0 || live[len(live)-1].Seq < m.Seq {
		if l.head > 0 && len(l.items) == cap(l.items) {
			// Reclaim the consumed prefix before growing.
			n := copy(l.items, live)
			clear(l.items[n:])
			l.items, l.head = l.items[:n], 0
		}
		l.items = append(l.items, m)
		return
	}
	lo, hi := 0, len(live)
	for lo < hi {
		mid := (lo + hi) / 2
		if live[mid].Seq < m.Seq {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	l.items = append(l.items, nil)
	live = l.items[l.head:]
	copy(live[lo+1:], live[lo:])
	live[lo] = m
}

// removeAt removes the i-th live message.
func (l *lane) removeAt(i int) {
	if i == 0 {
		l.items[l.head] = nil
		l.head++
		if l.head == len(l.items) {
			l.items, l.head = l.items[:0], 0
		}
		return
	}
	live := l.items[l.head:]
	copy(live[i:], live[i+1:])
	live[len(live)-1] = nil
	l.items = l.items[:len(l.items)-1]
}

// find returns the index of the message with seq, or -1.
func (l *lane) find(seq uint64) int {
	live := l.items[l.head:]
	lo, hi := 0, len(live)
	for lo < hi {
		mid := (lo + hi) / 2
		if live[mid].Seq < seq {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(live) && live[lo].Seq == seq {
		return lo
	}
	return -1
}

func (q *queue) push(m *Message) {
	if m.Urgent {
		q.urgent.insert(m)
	} else {
		p := m.Priority
		q.lanes[p].insert(m)
		q.bits[p>>6] |= 1 << (p & 63)
	}
	q.n++
	q.bytes += int64(m.size())
}

// removeAt removes the i-th message of lane p (urgentLane or a priority).
func (q *queue) removeAt(p int, i int) *Message {
	l := q.lane(p)
	m := l.at(i)
	l.removeAt(i)
	if p != urgentLane && l.len() == 0 {
		q.bits[p>>6] &^= 1 << (p & 63)
	}
	q.n--
	q.bytes -= int64(m.size())
	return m
}

// has reports whether m is queued.
func (q *queue) has(m *Message) bool {
	l := q.lane(laneOf(m))
	i := l.find(m.Seq)
	return i >= 0 && l.at(i) == m
}

// remove takes m out of the queue; it reports false if m is not queued.
func (q *queue) remove(m *Message) bool {
	p := laneOf(m)
	l := q.lane(p)
	i := l.find(m.Seq)
	if i < 0 || l.at(i) != m {
		return false
	}
	q.removeAt(p, i)
	return true
}

// all calls fn for every non-empty lane in queue order (the urgent lane,
// then the priorities from the highest down) until fn returns false.
func (q *queue) all(fn func(l *lane) bool) {
	if q.urgent.len() > 0 && !fn(&q.urgent) {
		return
	}
	q.each(func(_ uint8, l *lane) bool { return fn(l) })
}

// each calls fn for non-empty priority lanes (not the urgent lane) from
// the highest priority down until fn returns false.
func (q *queue) each(fn func(p uint8, l *lane) bool) {
	for w := 3; w >= 0; w-- {
		bits := q.bits[w]
		for bits != 0 {
			b := 63 - leadingZeros(bits)
			bits &^= 1 << b
			if !fn(uint8(w*64+b), &q.lanes[w*64+b]) {
				return
			}
		}
	}
}

// pick finds the message a receiver with selector sel would take, without
// removing it. It returns the lane (urgentLane or a priority) and index,
// or ok=false. The urgent lane is searched first, with the selector's own
// rule; only if nothing there matches do the priority lanes count (so for
// a negative selector an urgent message beats a lower type that is not
// urgent).
func (q *queue) pick(sel int64) (p int, idx int, ok bool) {
	if q.n == 0 {
		return 0, 0, false
	}
	if q.urgent.len() > 0 {
		if i, found := pickIn(&q.urgent, sel); found {
			return urgentLane, i, true
		}
	}
	if sel == 0 {
		for w := 3; w >= 0; w-- {
			if q.bits[w] != 0 {
				return w*64 + 63 - leadingZeros(q.bits[w]), 0, true
			}
		}
	}
	best := int64(0)
	q.each(func(lp uint8, l *lane) bool {
		for i := range l.len() {
			t := l.at(i).Type
			if !matches(sel, t) {
				continue
			}
			if sel >= 0 {
				p, idx, ok = int(lp), i, true
				return false
			}
			// Lowest type wins; the first in queue order among equals.
			if !ok || t < best {
				p, idx, ok, best = int(lp), i, true, t
			}
		}
		return true
	})
	return p, idx, ok
}

// pickIn is pick within one lane.
func pickIn(l *lane, sel int64) (idx int, ok bool) {
	best := int64(0)
	for i := range l.len() {
		t := l.at(i).Type
		if !matches(sel, t) {
			continue
		}
		if sel >= 0 {
			return i, true
		}
		if !ok || t < best {
			idx, ok, best = i, true, t
		}
	}
	return idx, ok
}

// oldest returns the smallest SentUnixNano among queued messages, or 0.
func (q *queue) oldest() int64 {
	var o int64
	q.all(func(l *lane) bool {
		for i := range l.len() {
			if t := l.at(i).SentUnixNano; o == 0 || t < o {
				o = t
			}
		}
		return true
	})
	return o
}
