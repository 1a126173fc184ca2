package mailbox

import "slices"

// Position is a place in a mailbox's queue order: the key of a message
// (its Priority, Type and Seq never change while it is held). Browse
// continues after it whether or not that message is still queued. The
// zero Position (Seq 0, which no message has) is the start.
type Position struct {
	Priority uint8
	Type     int64
	Seq      uint64
}

// PositionOf returns msg's position.
func PositionOf(msg *Message) Position {
	return Position{Priority: msg.Priority, Type: msg.Type, Seq: msg.Seq}
}

// Browse returns up to limit queued messages that selector sel matches,
// after position after, in the order a succession of receivers with sel
// would take them, and whether more follow. It is a query: it changes
// nothing (no lease, no delivery counted, no effects), so a browsed
// message is not a delivery.
//
// The order is the queue order (priority high to low, then Seq) for
// sel >= 0. For sel < 0 it is the lowest Type first and queue order
// within a type: each receiver takes the lowest type <= |sel|, so that is
// the order they come out in.
//
// Urgent messages are listed in their priority's place, as if they were
// not urgent (a Position carries no urgency to continue after).
//
// Leased messages are not queued and are not listed; neither are offered
// messages (a rendezvous or receipted send still waiting), which may yet
// be withdrawn and have not been accepted as plain queued messages.
//
// The messages are the mailbox's own: the caller must read them before
// its next call on m and must not modify them. dst is reused.
func (m *Mailbox) Browse(sel int64, after Position, limit int, dst []*Message) (msgs []*Message, more bool, err error) {
	msgs = dst[:0]
	if m.destroyed {
		return msgs, false, ErrDestroyed
	}
	if limit <= 0 {
		return msgs, false, nil
	}
	if sel < 0 {
		return m.browseLowest(sel, after, limit, msgs)
	}
	// Urgent messages are listed in their priority's place, not ahead: a
	// Position (and a wire cursor) carries no urgency to continue from.
	var urgent []*Message
	for i := range m.q.urgent.len() {
		msg := m.q.urgent.at(i)
		if msg.offer == nil && matches(sel, msg.Type) && (after.Seq == 0 || queueOrder(PositionOf(msg), after) > 0) {
			urgent = append(urgent, msg)
		}
	}
	slices.SortFunc(urgent, func(a, b *Message) int { return queueOrder(PositionOf(a), PositionOf(b)) })
	add := func(msg *Message) bool {
		if len(msgs) == limit {
			more = true
			return false
		}
		msgs = append(msgs, msg)
		return true
	}
	m.q.each(func(p uint8, l *lane) bool {
		i := 0
		if after.Seq != 0 {
			switch {
			case p > after.Priority:
				return true // listed already
			case p == after.Priority:
				i = l.firstAfter(after.Seq)
			}
		}
		for ; i < l.len(); i++ {
			msg := l.at(i)
			if msg.offer != nil || !matches(sel, msg.Type) {
				continue
			}
			for len(urgent) > 0 && queueOrder(PositionOf(urgent[0]), PositionOf(msg)) < 0 {
				if !add(urgent[0]) {
					return false
				}
				urgent = urgent[1:]
			}
			if !add(msg) {
				return false
			}
		}
		return true
	})
	for _, msg := range urgent {
		if more || !add(msg) {
			break
		}
	}
	return msgs, more, nil
}

// queueOrder compares positions in queue order: priority descending,
// then Seq ascending.
func queueOrder(a, b Position) int {
	switch {
	case a.Priority != b.Priority:
		return int(b.Priority) - int(a.Priority)
	case a.Seq < b.Seq:
		return -1
	case a.Seq > b.Seq:
		return 1
	}
	return 0
}

// browseLowest is Browse for a negative selector: candidates sorted by
// (Type, queue order).
func (m *Mailbox) browseLowest(sel int64, after Position, limit int, msgs []*Message) ([]*Message, bool, error) {
	m.q.all(func(l *lane) bool {
		for i := range l.len() {
			msg := l.at(i)
			if msg.offer == nil && matches(sel, msg.Type) && (after.Seq == 0 || lowestOrder(PositionOf(msg), after) > 0) {
				msgs = append(msgs, msg)
			}
		}
		return true
	})
	slices.SortFunc(msgs, func(a, b *Message) int { return lowestOrder(PositionOf(a), PositionOf(b)) })
	if len(msgs) > limit {
		clear(msgs[limit:])
		return msgs[:limit], true, nil
	}
	return msgs, false, nil
}

// lowestOrder compares positions in the order of a negative selector:
// type ascending, then priority descending, then Seq ascending.
func lowestOrder(a, b Position) int {
	switch {
	case a.Type != b.Type:
		if a.Type < b.Type {
			return -1
		}
		return 1
	case a.Priority != b.Priority:
		return int(b.Priority) - int(a.Priority)
	case a.Seq < b.Seq:
		return -1
	case a.Seq > b.Seq:
		return 1
	}
	return 0
}

// firstAfter returns the index of the first live message with a Seq
// greater than seq.
func (l *lane) firstAfter(seq uint64) int {
	live := l.items[l.head:]
	i, _ := slices.BinarySearchFunc(live, seq+1, func(m *Message, s uint64) int {
		switch {
		case m.Seq < s:
			return -1
		case m.Seq > s:
			return 1
		}
		return 0
	})
	return i
}
