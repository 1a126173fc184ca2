package mailbox

import "math"

// Receiving: receivers and consumers waiting, served and given credit.

// Who returns the identity of the receiver, for receipts.
func (r *Receiver) Who() Identity { return r.Ident }

// Receive registers r. It delivers what r can take now (as EffDeliver
// effects for r.Ref); a one-shot receiver that got nothing, or a consumer
// with credit left, then waits. With wait=false a one-shot receiver that
// got nothing returns ErrEmpty and is not registered.
func (m *Mailbox) Receive(r *Receiver, wait bool) error {
	m.begin()
	if m.destroyed {
		return ErrDestroyed
	}
	if !r.Consumer {
		r.Credit = 1
	}
	if r.Credit == 0 {
		if m.AtEnd(r.Type) {
			return ErrEndOfStream
		}
		m.parked.push(r)
		return nil
	}
	if m.serve(r) {
		m.endStreams()
		return nil
	}
	if m.AtEnd(r.Type) {
		return ErrEndOfStream
	}
	if !wait && !r.Consumer {
		return ErrEmpty
	}
	m.waiting.push(r)
	return nil
}

// serve delivers queued messages to r, which is on no list, while it has
// credit and something matches. deliver puts a consumer back on a list; a
// one-shot receiver is done after one. It reports whether r took anything.
func (m *Mailbox) serve(r *Receiver) (took bool) {
	for r.Credit > 0 {
		p, i, ok := m.q.pick(r.Type)
		if !ok || !m.mayLease(r) {
			break
		}
		msg := m.q.removeAt(p, i)
		took = true
		m.deliver(r, msg)
		if !r.Consumer || r.list == &m.parked {
			break
		}
		m.waiting.remove(r) // keep serving from the backlog
	}
	if took {
		if r.Consumer && r.list == nil {
			m.waiting.push(r)
		}
		m.admit()
	}
	return took
}

// Retry serves the waiting receivers again, in order: Config.TryLease
// refused some of them a lease and may now allow it. One that still gets
// nothing waits on, behind the others.
func (m *Mailbox) Retry() {
	m.begin()
	if m.destroyed {
		return
	}
	var rs []*Receiver
	for r := m.waiting.head; r != nil; r = r.next {
		rs = append(rs, r)
	}
	for _, r := range rs {
		if r.list != &m.waiting {
			continue // served meanwhile
		}
		m.waiting.remove(r)
		if !m.serve(r) && r.list == nil {
			m.waiting.push(r)
		}
	}
	m.endStreams()
}

// AddCredit grants a consumer n more deliveries.
func (m *Mailbox) AddCredit(r *Receiver, n uint32) {
	m.begin()
	if m.destroyed || !r.Consumer || n == 0 {
		return
	}
	n = min(n, math.MaxUint32-r.Credit) // saturate: a wrapped credit would be near zero
	switch r.list {
	case &m.waiting:
		r.Credit += n
	case &m.parked:
		m.parked.remove(r)
		r.Credit += n
		if !m.serve(r) {
			m.waiting.push(r)
		}
	}
	m.endStreams()
}

// Stall takes away a waiting consumer's credit and parks it (the broker
// does this while the consumer's connection has too much unread output);
// it returns the credit taken, which AddCredit gives back. It emits no
// effects and may follow another call's effects before they are read.
func (m *Mailbox) Stall(r *Receiver) uint32 {
	if m.destroyed || !r.Consumer || r.list != &m.waiting {
		return 0
	}
	m.waiting.remove(r)
	n := r.Credit
	r.Credit = 0
	m.parked.push(r)
	return n
}

// CancelReceive ends a waiting receiver or consumer with err (EffFail). It
// does nothing if r is not registered.
func (m *Mailbox) CancelReceive(r *Receiver, err error) {
	m.begin()
	if r.list != &m.waiting && r.list != &m.parked {
		return
	}
	r.list.remove(r)
	m.emit(Effect{Kind: EffFail, Ref: r.Ref, Err: err})
}
