package mailbox

// Releasing what a message holds.
//
// A message may hold something beyond its bytes that must be given back
// exactly once when it leaves the mailbox for good: open descriptors
// passed with it (the broker's copies), say. The owner puts it in
// Message.Hold. Whenever the mailbox stops holding the message by any
// path (ack, auto-ack after its delivery, withdrawal, expiry, dead
// letter, an offer or a blocked send given up, destroy), it emits
// EffRelease for it and clears Hold, so the message (or a dead-letter
// copy of it) holds nothing any more. (An auto-acked message keeps Hold
// for its EffDeliver: the owner delivers what it holds, then releases
// it.) A nack or a disconnect keeps it:
// the message comes back, and its next delivery still has what it holds.
// The owner calls Release outside its lock, after the step's deliveries
// (an auto-acked message's release follows its EffDeliver).
//
// The mailbox never releases a message it did not take: one whose Send
// failed (ErrFull, ErrDestroyed) is still its caller's.

// Releaser is what a message holds beyond its bytes (see Message.Hold).
type Releaser interface {
	// Release gives it back. The mailbox asks once per message.
	Release()
}

// release emits EffRelease for msg if it holds anything, and clears Hold.
func (m *Mailbox) release(msg *Message) {
	if msg.Hold == nil {
		return
	}
	h := msg.Hold
	msg.Hold = nil
	m.emit(Effect{Kind: EffRelease, Msg: msg, Ref: h})
}

// releaseHolds releases every message the mailbox holds (Destroy).
func (m *Mailbox) releaseHolds() {
	for _, l := range []*senderList{&m.blocked, &m.offers} {
		for s := l.head; s != nil; s = s.next {
			m.release(s.Msg) // an offer is also in the queue: released once
		}
	}
	m.q.each(func(_ uint8, l *lane) bool {
		for i := range l.len() {
			m.release(l.at(i))
		}
		return true
	})
	for _, msg := range m.leases {
		m.release(msg)
	}
}
