package mailbox

import "slices"

// Leases: a delivered message held by its receiver until acked, nacked,
// expired or given back when the receiver disconnects; destroying the
// mailbox.

// Ack ends the lease: the message is gone.
func (m *Mailbox) Ack(endpoint, lease uint64) error {
	m.begin()
	msg, err := m.unlease(endpoint, lease)
	if err != nil {
		return err
	}
	m.st.Received++
	m.st.Acked++
	m.hold(msg, -1)
	m.journal(EffRemoved, msg)
	m.endStreams()
	return nil
}

// Nack ends the lease and returns the message to its place in the queue.
func (m *Mailbox) Nack(endpoint, lease uint64) error {
	m.begin()
	msg, err := m.unlease(endpoint, lease)
	if err != nil {
		return err
	}
	m.st.Nacked++
	m.giveBack(msg)
	m.endStreams()
	return nil
}

func (m *Mailbox) unlease(endpoint, lease uint64) (*Message, error) {
	msg, ok := m.leases[lease]
	if !ok || msg.holder != endpoint {
		return nil, ErrStaleLease
	}
	delete(m.leases, lease)
	msg.lease, msg.holder = 0, 0
	return msg, nil
}

// giveBack returns an unleased message to the queue, or dead-letters it.
func (m *Mailbox) giveBack(msg *Message) {
	msg.Redeliveries++
	m.st.Redelivered++
	if m.cfg.MaxDeliveries > 0 && msg.Redeliveries >= m.cfg.MaxDeliveries {
		m.st.DeadLettered++
		m.hold(msg, -1)
		m.emit(Effect{Kind: EffDeadLetter, Msg: msg, Reason: "max deliveries reached"})
		return
	}
	m.journal(EffReturned, msg)
	m.arrive(msg)
}

// Disconnect forgets an endpoint: its waiting receivers and senders are
// dropped without effects (nobody is left to tell), its offered messages
// withdrawn, and every lease it holds returned to the queue with its
// redelivery count incremented.
func (m *Mailbox) Disconnect(endpoint uint64) {
	m.begin()
	for _, l := range []*receiverList{&m.waiting, &m.parked} {
		for r := l.head; r != nil; {
			next := r.next
			if r.Ident.Endpoint == endpoint {
				l.remove(r)
			}
			r = next
		}
	}
	for s := m.blocked.head; s != nil; {
		next := s.next
		if s.Endpoint == endpoint {
			m.unblock(s)
			m.hold(s.Msg, -1)
		}
		s = next
	}
	freed := false
	for s := m.offers.head; s != nil; {
		next := s.next
		if s.Endpoint == endpoint {
			m.offers.remove(s)
			m.q.remove(s.Msg)
			s.Msg.offer, s.offered = nil, false
			m.hold(s.Msg, -1)
			freed = true
		}
		s = next
	}
	var back []*Message
	for id, msg := range m.leases {
		if msg.holder == endpoint {
			delete(m.leases, id)
			msg.lease, msg.holder = 0, 0
			back = append(back, msg)
		}
	}
	// Map order is random; return in queue order so the outcome is
	// deterministic.
	slices.SortFunc(back, func(a, b *Message) int {
		if a.Priority != b.Priority {
			return int(b.Priority) - int(a.Priority)
		}
		if a.Seq < b.Seq {
			return -1
		}
		return 1
	})
	for _, msg := range back {
		m.giveBack(msg)
	}
	if freed || len(back) > 0 {
		m.admit()
	}
	m.endStreams()
}

// Expire removes queued messages whose age reached the TTL at now
// (nanoseconds since the epoch). Each leaves with EffDeadLetter (reason
// "expired"). Offered messages (their sender still waiting) are left to
// their sender's own timeout. It returns when the next message will
// expire, or 0.
//
// Removing messages admits blocked senders, whose messages may have waited
// past the TTL themselves, so Expire repeats until a pass finds nothing: no
// expired message is left queued, and next covers the admitted ones.
func (m *Mailbox) Expire(now int64) (next int64) {
	m.begin()
	if m.cfg.TTL <= 0 || m.destroyed {
		return 0
	}
	var dead []*Message
	for {
		next, dead = 0, dead[:0]
		m.q.all(func(l *lane) bool {
			for i := range l.len() {
				msg := l.at(i)
				if msg.offer != nil {
					continue
				}
				at := msg.SentUnixNano + m.cfg.TTL
				if at <= now {
					dead = append(dead, msg)
				} else if next == 0 || at < next {
					next = at
				}
			}
			return true
		})
		if len(dead) == 0 {
			m.endStreams()
			return next
		}
		for _, msg := range dead {
			m.q.remove(msg)
			m.st.Expired++
			m.hold(msg, -1)
			m.emit(Effect{Kind: EffDeadLetter, Msg: msg, Reason: "expired"})
		}
		m.admit()
	}
}

// Destroy ends the mailbox: every waiting sender, receiver and consumer
// fails with ErrDestroyed (or err, if non-nil), and every message is
// dropped. Later calls fail with ErrDestroyed; acks get ErrStaleLease.
func (m *Mailbox) Destroy(err error) {
	m.begin()
	if m.destroyed {
		return
	}
	if err == nil {
		err = ErrDestroyed
	}
	m.destroyed = true
	if m.cfg.Charge != nil {
		m.releaseAll()
	}
	m.releaseHolds()
	for _, l := range []*senderList{&m.blocked, &m.offers} {
		for l.head != nil {
			s := l.head
			l.remove(s)
			m.emit(Effect{Kind: EffFail, Ref: s.Ref, Err: err})
		}
	}
	for _, l := range []*receiverList{&m.waiting, &m.parked} {
		for l.head != nil {
			r := l.head
			l.remove(r)
			m.emit(Effect{Kind: EffFail, Ref: r.Ref, Err: err})
		}
	}
	m.q = queue{}
	m.blockedUrgent = 0
	clear(m.leases)
	m.held = 0
}

// hold counts msg as held (sign 1) or no longer held (sign -1), and tells
// Config.Charge its sender's share.
//
// A message no longer held is released (release.go): every path by which
// a message leaves goes through here, except Destroy (releaseHolds).
func (m *Mailbox) hold(msg *Message, sign int64) {
	n := sign * int64(msg.size())
	m.held += n
	if m.cfg.Charge != nil {
		m.cfg.Charge(msg.Sender, n)
	}
	if sign < 0 {
		m.release(msg)
	}
}

// releaseAll tells Config.Charge that every held message is gone
// (Destroy): the waiting senders' messages, the queue (offers included)
// and the leased ones.
func (m *Mailbox) releaseAll() {
	for s := m.blocked.head; s != nil; s = s.next {
		m.cfg.Charge(s.Msg.Sender, -int64(s.Msg.size()))
	}
	m.q.all(func(l *lane) bool {
		for i := range l.len() {
			msg := l.at(i)
			m.cfg.Charge(msg.Sender, -int64(msg.size()))
		}
		return true
	})
	for _, msg := range m.leases {
		m.cfg.Charge(msg.Sender, -int64(msg.size()))
	}
}
