package mailbox

import "errors"

// End of stream.
//
// A mailbox can be closed for sending (CloseSend): the producers are done.
// It is a state of the core, not of any connection:
//
//	open --CloseSend--> closed --ReopenSend--> open
//
// While closed:
//
//   - Send fails with ErrEndOfStream and changes nothing; senders that
//     were waiting for space fail with ErrEndOfStream too (their messages
//     were never accepted). Offers already in the queue (rendezvous,
//     receipt) stay: they are part of the stream and end when taken or
//     withdrawn.
//   - Receivers drain what is left. A receiver (one-shot or consumer,
//     with or without credit) reaches the end of the stream, and leaves
//     with ErrEndOfStream (EffFail, or Receive's result), once nothing it
//     could take is left: no queued message matches its selector, and no
//     leased message does either (a lease may still come back by NACK or
//     a disconnect, and must find someone to take it). So with one
//     receiver and no selector, end of stream comes after the last
//     message is acked.
//
// Reopening lets senders in again; receivers that already reached the
// end of the stream are gone, the others go on waiting. Closing and
// reopening emit no journal effects: the owner records the state in the
// mailbox's definition (a broker: mode bit 29 of the durable Def).

// ErrEndOfStream: the mailbox is closed for sending (and, for a receiver,
// nothing it could take is left).
var ErrEndOfStream = errors.New("mailbox: end of stream")

// CloseSend closes the mailbox for sending. Waiting senders fail with
// ErrEndOfStream, and receivers with nothing left to take end (EffFail
// with ErrEndOfStream). It reports whether the state changed.
func (m *Mailbox) CloseSend() bool {
	m.begin()
	if m.destroyed || m.closed {
		return false
	}
	m.closed = true
	for m.blocked.head != nil {
		s := m.blocked.head
		m.blocked.remove(s)
		m.hold(s.Msg, -1)
		m.emit(Effect{Kind: EffFail, Ref: s.Ref, Err: ErrEndOfStream})
	}
	m.endStreams()
	return true
}

// ReopenSend opens a closed mailbox for sending again. It emits nothing
// and reports whether the state changed.
func (m *Mailbox) ReopenSend() bool {
	m.begin()
	if m.destroyed || !m.closed {
		return false
	}
	m.closed = false
	return true
}

// Closed reports whether the mailbox is closed for sending.
func (m *Mailbox) Closed() bool { return m.closed }

// AtEnd reports whether a receiver with selector sel would reach the end
// of the stream now: the mailbox is closed and no queued or leased
// message matches sel.
func (m *Mailbox) AtEnd(sel int64) bool {
	if !m.closed || m.destroyed {
		return false
	}
	if _, _, ok := m.q.pick(sel); ok {
		return false
	}
	for _, msg := range m.leases {
		if matches(sel, msg.Type) {
			return false
		}
	}
	return true
}

// endStreams ends every registered receiver that reached the end of the
// stream, in waiting order. It is called at the end of each step that
// can take a message out of the mailbox (or register a receiver) and
// does nothing unless the mailbox is closed.
func (m *Mailbox) endStreams() {
	if !m.closed || m.destroyed {
		return
	}
	for _, l := range []*receiverList{&m.waiting, &m.parked} {
		for r := l.head; r != nil; {
			next := r.next
			if m.AtEnd(r.Type) {
				l.remove(r)
				m.emit(Effect{Kind: EffFail, Ref: r.Ref, Err: ErrEndOfStream})
			}
			r = next
		}
	}
}
