package mailbox

// Sending: a message offered to the mailbox, admitted, queued or handed
// to a waiting receiver, and a sender withdrawing what it offered.

// Result is the outcome of a send that completed at once.
type Result struct {
	Seq     uint64
	Taken   bool // a receiver took it already
	Receipt Identity
}

// Send offers msg to the mailbox. receipt asks that the send complete only
// when a receiver takes the message (capacity 0 implies it).
//
// If the send can complete now, Send returns done=true and its Result. If
// it would have to wait and s is nil, it returns ErrFull and changes
// nothing. If s is non-nil, s waits (for space, or for its offered message
// to be taken) and its completion arrives later as EffSendDone or EffFail
// for s.Ref; Send returns done=false.
func (m *Mailbox) Send(msg *Message, receipt bool, s *Sender) (res Result, done bool, err error) {
	m.begin()
	if m.destroyed {
		return res, false, ErrDestroyed
	}
	if m.closed {
		return res, false, ErrEndOfStream
	}
	receipt = receipt || m.cfg.Capacity == 0
	if m.cfg.Capacity != 0 && !m.hasRoom(msg) {
		if s == nil {
			return res, false, ErrFull
		}
		s.Msg, s.Receipt, s.offered = msg, receipt, false
		m.blocked.push(s)
		if msg.Urgent {
			m.blockedUrgent++
		}
		m.hold(msg, 1)
		return res, false, nil
	}
	r := m.firstWaiter(msg)
	if r == nil && receipt && s == nil {
		return res, false, ErrFull
	}
	m.accept(msg, r != nil || !receipt)
	if r != nil {
		m.deliver(r, msg)
		return Result{Seq: msg.Seq, Taken: true, Receipt: r.Who()}, true, nil
	}
	if receipt {
		s.Msg, s.Receipt = msg, true
		m.offer(s)
		return res, false, nil
	}
	m.q.push(msg)
	return Result{Seq: msg.Seq}, true, nil
}

// hasRoom reports whether msg fits in the queue. An urgent message that
// does not fits all the same while fewer than UrgentReserve urgent
// messages are queued.
func (m *Mailbox) hasRoom(msg *Message) bool {
	if msg.Urgent && m.q.urgent.len() < UrgentReserve {
		return true
	}
	if m.cfg.Capacity > 0 && int64(m.q.n) >= m.cfg.Capacity {
		return false
	}
	return m.cfg.MaxBytes <= 0 || m.q.n == 0 || m.q.bytes+int64(msg.size()) <= m.cfg.MaxBytes
}

// accept gives msg its sequence number and counts it as held. An offered
// message (rendezvous, receipt) is journaled only when it is taken: until
// then its send may still be withdrawn, and a crash must not turn it into
// a plain queued message that its sender was never told about.
func (m *Mailbox) accept(msg *Message, journal bool) {
	msg.Seq = m.nextSeq
	m.nextSeq++
	m.st.Sent++
	m.hold(msg, 1)
	if journal {
		m.journal(EffEnqueued, msg)
	}
}

func (m *Mailbox) offer(s *Sender) {
	s.offered = true
	s.Msg.offer = s
	m.offers.push(s)
	m.q.push(s.Msg)
}

// firstWaiter returns the first waiting receiver that would take msg.
// Waiting receivers have no matching message in the queue (every arrival
// is offered to them first), so for a negative selector the new message is
// the lowest candidate whenever it matches at all.
func (m *Mailbox) firstWaiter(msg *Message) *Receiver {
	for r := m.waiting.head; r != nil; r = r.next {
		if matches(r.Type, msg.Type) && m.mayLease(r) {
			return r
		}
	}
	return nil
}

// mayLease asks Config.TryLease whether r may take a lease now; a true
// answer has taken it, so a delivery must follow.
func (m *Mailbox) mayLease(r *Receiver) bool {
	return r.AutoAck || m.cfg.TryLease == nil || m.cfg.TryLease(r.Ident)
}

// deliver hands a message that is not in the queue to r.
func (m *Mailbox) deliver(r *Receiver, msg *Message) {
	if s := msg.offer; s != nil {
		msg.offer, s.offered = nil, false
		m.offers.remove(s)
		m.journal(EffEnqueued, msg) // the offer becomes a message now
		m.emit(Effect{Kind: EffSendDone, Ref: s.Ref, Msg: msg, Taken: true, Receipt: r.Who()})
	}
	msg.taker = r.Ident
	m.st.Delivered++
	var lease uint64
	if r.AutoAck {
		m.st.Received++
		m.journal(EffRemoved, msg)
	} else {
		lease = m.cfg.Leases.NextLease()
		msg.lease, msg.holder = lease, r.Ident.Endpoint
		m.leases[lease] = msg
		m.journal(EffLeased, msg)
	}
	m.emit(Effect{Kind: EffDeliver, Ref: r.Ref, Msg: msg, Lease: lease})
	if r.AutoAck {
		// After EffDeliver: its EffRelease follows the delivery. The
		// message keeps Hold, so that the owner can deliver what it
		// holds; it is gone from the mailbox, so nothing releases it
		// again.
		h := msg.Hold
		m.hold(msg, -1)
		msg.Hold = h
	}
	if !r.Consumer {
		r.Credit = 0
		if r.list != nil {
			r.list.remove(r)
		}
		return
	}
	r.Credit--
	if r.list != nil {
		r.list.remove(r)
	}
	if r.Credit == 0 {
		m.parked.push(r)
	} else {
		m.waiting.push(r) // round-robin among consumers
	}
}

// arrive places a message that is entering (or re-entering) the queue:
// to the first matching waiter, else into the queue.
func (m *Mailbox) arrive(msg *Message) {
	if r := m.firstWaiter(msg); r != nil {
		m.deliver(r, msg)
		return
	}
	m.q.push(msg)
}

// admit lets blocked senders in while there is space: first urgent ones
// the reserve lets past the others (an urgent message never waits behind
// a full mailbox's ordinary senders), then in order.
func (m *Mailbox) admit() {
	if m.cfg.Capacity == 0 {
		return
	}
	for s := m.blocked.head; s != nil && m.blockedUrgent > 0; {
		next := s.next
		if s.Msg.Urgent && m.hasRoom(s.Msg) {
			m.admitOne(s)
		}
		s = next
	}
	for m.blocked.head != nil && m.hasRoom(m.blocked.head.Msg) {
		m.admitOne(m.blocked.head)
	}
}

// unblock takes s off the blocked list.
func (m *Mailbox) unblock(s *Sender) {
	m.blocked.remove(s)
	if s.Msg.Urgent {
		m.blockedUrgent--
	}
}

// admitOne lets the blocked sender s in.
func (m *Mailbox) admitOne(s *Sender) {
	m.unblock(s)
	msg := s.Msg
	m.hold(msg, -1) // accept counts it again
	r := m.firstWaiter(msg)
	m.accept(msg, r != nil || !s.Receipt)
	if r != nil {
		// Not an offer yet, so deliver does not complete the send.
		m.deliver(r, msg)
		m.emit(Effect{Kind: EffSendDone, Ref: s.Ref, Msg: msg, Taken: true, Receipt: r.Who()})
		return
	}
	if s.Receipt {
		m.offer(s)
		return
	}
	m.q.push(msg)
	m.emit(Effect{Kind: EffSendDone, Ref: s.Ref, Msg: msg})
}

// CancelSend ends a waiting send with err (EffFail), withdrawing its
// offered message. It does nothing if the send is no longer waiting.
func (m *Mailbox) CancelSend(s *Sender, err error) {
	m.begin()
	switch {
	case s.list == &m.blocked:
		m.unblock(s)
		m.hold(s.Msg, -1)
	case s.list == &m.offers:
		m.offers.remove(s)
		m.q.remove(s.Msg)
		s.Msg.offer, s.offered = nil, false
		m.hold(s.Msg, -1) // never journaled: nothing to remove
		m.admit()
	default:
		return
	}
	m.emit(Effect{Kind: EffFail, Ref: s.Ref, Err: err})
	m.endStreams()
}

// Discard takes a queued message back out without a trace, as if it had
// never been accepted: the owner could not make it durable, and its
// sender is told so. It does nothing (and reports false) if the message
// is no longer simply queued: leased, taken or offered.
func (m *Mailbox) Discard(msg *Message) bool {
	m.begin()
	if m.destroyed || msg.offer != nil || msg.lease != 0 || !m.q.remove(msg) {
		return false
	}
	m.hold(msg, -1)
	m.admit()
	m.endStreams()
	return true
}

// Withdraw takes a queued message back out because its sender no longer
// wants it (an RPC request whose caller gave up): unlike Discard it is
// journaled (EffRemoved), since its arrival was. It does nothing and
// reports false if the message is not simply queued (leased, taken,
// offered, or the mailbox destroyed); Message.Leased and Message.Taker
// then say where it went.
func (m *Mailbox) Withdraw(msg *Message) bool {
	m.begin()
	if m.destroyed || msg.offer != nil || msg.lease != 0 || msg.Seq == 0 || !m.q.remove(msg) {
		return false
	}
	m.hold(msg, -1)
	m.journal(EffRemoved, msg)
	m.admit()
	m.endStreams()
	return true
}
