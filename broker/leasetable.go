package broker

import "slices"

// leaseTable maps the leases a connection holds to their mailbox: one put
// per delivery, one take per settlement, so it is on the hot path twice
// per message (as a Go map it was about 10 % of the broker's CPU at 64 B).
//
// Leases are numbered by one broker-wide counter, so a connection is
// handed its leases in increasing order (but for deliveries from two
// mailboxes racing to apply) and usually settles them in about that
// order. The table is therefore a slice sorted by lease: put appends at
// the tail, take finds the lease at the head or by binary search and
// blanks it, and blanks are trimmed from the head or, once they are most
// of the slice, compacted away (so a lease held forever costs its entry,
// not the entries of everything settled after it). A lease handed out of
// order goes to a small map beside it. Not safe for concurrent use (conn
// guards it with pmu).
type leaseTable struct {
	ents  []leaseEnt // sorted by id; bx == nil: settled
	head  int        // ents[:head] are settled
	live  int        // entries in ents[head:] not settled
	other map[uint64]*box
}

type leaseEnt struct {
	id uint64
	bx *box
}

// len is the number of leases held.
func (t *leaseTable) len() int { return t.live + len(t.other) }

// put records lease id of bx.
func (t *leaseTable) put(id uint64, bx *box) {
	if t.live == 0 {
		t.ents, t.head = t.ents[:0], 0
	}
	if n := len(t.ents); n == 0 || t.ents[n-1].id < id {
		t.ents = append(t.ents, leaseEnt{id, bx})
		t.live++
		return
	}
	if t.other == nil {
		t.other = make(map[uint64]*box)
	}
	t.other[id] = bx
}

// take removes lease id and returns its mailbox, or nil if the table does
// not hold it.
func (t *leaseTable) take(id uint64) *box {
	if i := t.find(id); i >= 0 {
		bx := t.ents[i].bx
		t.ents[i].bx = nil
		t.live--
		t.trim()
		return bx
	}
	if bx, ok := t.other[id]; ok {
		delete(t.other, id)
		return bx
	}
	return nil
}

// find is the index in ents of held lease id, or -1.
func (t *leaseTable) find(id uint64) int {
	held := t.ents[t.head:]
	if len(held) == 0 || id < held[0].id || id > held[len(held)-1].id {
		return -1
	}
	if held[0].id == id {
		return t.head
	}
	i, ok := slices.BinarySearchFunc(held, id, func(e leaseEnt, id uint64) int {
		switch {
		case e.id < id:
			return -1
		case e.id > id:
			return 1
		}
		return 0
	})
	if !ok || held[i].bx == nil {
		return -1
	}
	return t.head + i
}

// trim drops settled entries from the head, and compacts the slice once
// settled entries are most of it.
func (t *leaseTable) trim() {
	for t.head < len(t.ents) && t.ents[t.head].bx == nil {
		t.head++
	}
	if t.live == 0 {
		t.ents, t.head = t.ents[:0], 0
		return
	}
	if dead := len(t.ents) - t.live; dead > 64 && dead > t.live {
		kept := t.ents[:0]
		for _, e := range t.ents[t.head:] {
			if e.bx != nil {
				kept = append(kept, e)
			}
		}
		clear(t.ents[len(kept):])
		t.ents, t.head = kept, 0
	}
}

// removeBox removes every lease of bx and returns them, in no particular
// order.
func (t *leaseTable) removeBox(bx *box) []uint64 {
	var ids []uint64
	for i := t.head; i < len(t.ents); i++ {
		if t.ents[i].bx == bx {
			ids = append(ids, t.ents[i].id)
			t.ents[i].bx = nil
			t.live--
		}
	}
	for id, b := range t.other {
		if b == bx {
			ids = append(ids, id)
			delete(t.other, id)
		}
	}
	t.trim()
	return ids
}
