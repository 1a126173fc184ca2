package mailbox

import (
	"errors"
	"slices"
)

// The urgent lane and withdrawal by the sender.
//
// An urgent message (Message.Urgent) is queued in a lane of its own that
// every receiver looks at first: it is delivered ahead of every message
// that is not urgent, whatever their priorities, and urgent messages
// among themselves go in the order they were accepted (Seq). A receiver's
// selector still applies: a typed receiver takes an urgent message only
// if its type matches, and for a negative selector the lowest matching
// type in the urgent lane wins over any type outside it.
//
// So that an urgent message is never stuck behind a full mailbox, it
// enters a bounded mailbox that is full (by Capacity or MaxBytes) while
// fewer than UrgentReserve urgent messages are queued: a mailbox holds at
// most Capacity + UrgentReserve messages. Blocked senders of urgent
// messages are admitted ahead of the other blocked senders.
//
// A sender may take back messages it sent that nobody has taken yet
// (WithdrawIDs, WithdrawMatching). Each message named gets an Outcome:
//
//	Withdrawn   it was queued (or offered, its send still waiting: that
//	            send fails with ErrCanceled); it is removed, journaled
//	InProgress  a receiver holds it leased (Holder, Lease say who)
//	Gone        it was accepted once but is no longer held: delivered
//	            (acked or auto-acked), expired, dead-lettered, withdrawn
//	Unknown     no message with that id was ever accepted

// UrgentReserve is how many urgent messages may be queued beyond a
// bounded mailbox's Capacity (or MaxBytes).
const UrgentReserve = 64

// ErrNotSender is WithdrawIDs' refusal: an id names a message held by the
// mailbox that the withdrawing principal did not send.
var ErrNotSender = errors.New("mailbox: not the sender")

// Outcome is what a withdrawal found for one message.
type Outcome uint8

const (
	Withdrawn Outcome = iota + 1
	InProgress
	Gone
	Unknown
)

var outcomeNames = [...]string{Withdrawn: "withdrawn", InProgress: "in progress", Gone: "gone", Unknown: "unknown"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) && outcomeNames[o] != "" {
		return outcomeNames[o]
	}
	return "outcome?"
}

// Withdrawal is the outcome for one message.
type Withdrawal struct {
	Seq     uint64
	Outcome Outcome
	// Holder and Lease: who holds the message, under which lease
	// (InProgress only).
	Holder Identity
	Lease  uint64
}

// SameSender reports whether a and b are the same principal for
// withdrawal: the same uid for Unix peers, the same name for TLS ones, the
// same endpoint for peers nothing is known of.
func SameSender(a, b Identity) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case 1: // wire.PrincipalUnix
		return a.UID == b.UID
	case 2: // wire.PrincipalTLS
		return a.Name != "" && a.Name == b.Name
	}
	return a.Endpoint != 0 && a.Endpoint == b.Endpoint
}

// WithdrawIDs withdraws the messages with the ids seqs, on behalf of by:
// only messages by sent (SameSender) unless anySender (the mailbox's
// owner). If an id names a message the mailbox holds (queued, offered or
// leased) that by may not withdraw, it returns ErrNotSender and changes
// nothing. Otherwise it returns one Withdrawal per id, in the order
// given, appended to dst. Withdrawn messages are journaled (EffRemoved);
// room they free admits blocked senders.
func (m *Mailbox) WithdrawIDs(by Identity, anySender bool, seqs []uint64, dst []Withdrawal) ([]Withdrawal, error) {
	m.begin()
	if m.destroyed {
		return dst, ErrDestroyed
	}
	var leased map[uint64]*Message // by Seq, built when first needed
	find := func(seq uint64) *Message {
		if msg := m.queuedSeq(seq); msg != nil {
			return msg
		}
		if leased == nil {
			leased = make(map[uint64]*Message, len(m.leases))
			for _, msg := range m.leases {
				leased[msg.Seq] = msg
			}
		}
		return leased[seq]
	}
	msgs := make([]*Message, len(seqs))
	for i, seq := range seqs {
		msgs[i] = find(seq)
		if msgs[i] != nil && !anySender && !SameSender(by, msgs[i].Sender) {
			return dst, ErrNotSender
		}
	}
	freed := false
	for i, seq := range seqs {
		w := Withdrawal{Seq: seq}
		switch msg := msgs[i]; {
		case msg == nil && seq != 0 && seq < m.nextSeq:
			w.Outcome = Gone
		case msg == nil:
			w.Outcome = Unknown
		case msg.lease != 0:
			w.Outcome, w.Holder, w.Lease = InProgress, msg.taker, msg.lease
		case m.q.has(msg): // not withdrawn already by an earlier duplicate id
			m.withdrawQueued(msg)
			w.Outcome, freed = Withdrawn, true
		default:
			w.Outcome = Gone
		}
		dst = append(dst, w)
	}
	if freed {
		m.admit()
	}
	return dst, nil
}

// WithdrawMatching withdraws the messages held by the mailbox (queued,
// offered or leased) that by sent (or anybody, with anySender), whose Seq
// is after after, and for which match reports true: at most limit of
// them, in Seq order. It returns their Withdrawals (Withdrawn or
// InProgress) appended to dst, and whether more messages match past the
// last one returned. match must not call m.
func (m *Mailbox) WithdrawMatching(by Identity, anySender bool, after uint64, limit int, match func(*Message) bool, dst []Withdrawal) ([]Withdrawal, bool, error) {
	m.begin()
	if m.destroyed {
		return dst, false, ErrDestroyed
	}
	var found []*Message
	consider := func(msg *Message) {
		if msg.Seq > after && (anySender || SameSender(by, msg.Sender)) && match(msg) {
			found = append(found, msg)
		}
	}
	m.q.all(func(l *lane) bool {
		for i := range l.len() {
			consider(l.at(i))
		}
		return true
	})
	for _, msg := range m.leases {
		consider(msg)
	}
	slices.SortFunc(found, func(a, b *Message) int {
		if a.Seq < b.Seq {
			return -1
		}
		return 1
	})
	more := false
	if limit > 0 && len(found) > limit {
		found, more = found[:limit], true
	}
	freed := false
	for _, msg := range found {
		w := Withdrawal{Seq: msg.Seq}
		if msg.lease != 0 {
			w.Outcome, w.Holder, w.Lease = InProgress, msg.taker, msg.lease
		} else {
			m.withdrawQueued(msg)
			w.Outcome, freed = Withdrawn, true
		}
		dst = append(dst, w)
	}
	if freed {
		m.admit()
	}
	return dst, more, nil
}

// queuedSeq returns the queued message with Seq seq, or nil.
func (m *Mailbox) queuedSeq(seq uint64) *Message {
	if seq == 0 || m.q.n == 0 {
		return nil
	}
	if i := m.q.urgent.find(seq); i >= 0 {
		return m.q.urgent.at(i)
	}
	var msg *Message
	m.q.each(func(_ uint8, l *lane) bool {
		if i := l.find(seq); i >= 0 {
			msg = l.at(i)
			return false
		}
		return true
	})
	return msg
}

// withdrawQueued takes a queued message out: an offered one ends its
// waiting send with ErrCanceled (it was never journaled), a plain one is
// journaled as removed. The caller admits blocked senders afterwards.
func (m *Mailbox) withdrawQueued(msg *Message) {
	m.q.remove(msg)
	m.hold(msg, -1)
	if s := msg.offer; s != nil {
		m.offers.remove(s)
		msg.offer, s.offered = nil, false
		m.emit(Effect{Kind: EffFail, Ref: s.Ref, Err: ErrCanceled})
		return
	}
	m.journal(EffRemoved, msg)
}
