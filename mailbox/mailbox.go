package mailbox

import (
	"math"
	"slices"
)

// LeaseSource hands out lease ids. Ids must be non-zero and never repeat
// within the owner's lifetime (a broker shares one source among all its
// mailboxes so a lease id names one delivery broker-wide).
type LeaseSource interface{ NextLease() uint64 }

// Counter is a LeaseSource counting from 1. It is not safe for concurrent
// use; a broker uses an atomic counter instead.
type Counter struct{ n uint64 }

func (c *Counter) NextLease() uint64 { c.n++; return c.n }

// Config describes a mailbox.
type Config struct {
	// Capacity: -1 unbounded, 0 rendezvous, N > 0 at most N queued.
	Capacity int64
	// MaxBytes, if positive, also bounds the queued bytes (bodies and headers): a send
	// that would pass it waits (or fails with ErrFull) as for a full
	// mailbox. A message larger than MaxBytes still enters an empty queue,
	// so that it cannot block the mailbox for good.
	MaxBytes int64
	// Durable: emit journal effects.
	Durable bool
	// MaxDeliveries: a message whose Redeliveries reaches this leaves with
	// EffDeadLetter instead of returning to the queue. 0 = unlimited.
	MaxDeliveries uint32
	// TTL in nanoseconds: Expire removes queued messages older than this.
	// 0 = none.
	TTL    int64
	Leases LeaseSource
	// Charge, if set, is told every change in the bytes held for a
	// sender: +size when a message starts being held (queued, leased or
	// waiting to enter), -size when it stops (acked, withdrawn, expired,
	// dead-lettered, destroyed). It is called with the owner's lock held
	// and must be a leaf: count, never block or call back (a broker's
	// per-uid quotas).
	Charge func(sender Identity, bytes int64)
	// TryLease, if set, is asked before a message is leased to a
	// receiver (not one that auto-acks): true takes the lease from the
	// receiver's allowance, false leaves the receiver waiting as if
	// nothing matched (a broker's per-uid lease quota). Retry serves the
	// waiting receivers again once it would say yes. It is called with the
	// owner's lock held and must be a leaf.
	TryLease func(receiver Identity) bool
}

// Stats are a mailbox's live state and counters.
type Stats struct {
	Depth          int   // queued messages (including offers)
	Bytes          int64 // queued bytes (bodies and headers)
	HeldBytes      int64 // bytes (bodies and headers) of every message held: queued, leased, waiting to enter
	InFlight       int   // leased
	Receivers      int   // waiting one-shot receivers
	Consumers      int   // registered consumers
	BlockedSenders int   // waiting for space or for their offer to be taken
	Sent           uint64
	Received       uint64
	Redelivered    uint64
	DeadLettered   uint64
	Expired        uint64
	// Delivered counts deliveries (redeliveries included), Acked and
	// Nacked the leases ended by Ack and Nack.
	Delivered      uint64
	Acked, Nacked  uint64
	OldestUnixNano int64
}

// Mailbox is the delivery core of one mailbox. See the package comment.
type Mailbox struct {
	cfg     Config
	q       queue
	nextSeq uint64
	leases  map[uint64]*Message

	waiting receiverList // receivers with credit, in waiting order
	parked  receiverList // consumers with no credit left
	blocked senderList   // senders waiting for space
	// blockedUrgent counts the blocked senders of urgent messages.
	blockedUrgent int
	offers        senderList // senders whose message is offered in the queue

	held      int64
	destroyed bool
	closed    bool // closed for sending (eof.go)
	effects   []Effect
	st        Stats
}

// New returns an empty mailbox.
func New(cfg Config) *Mailbox {
	if cfg.Leases == nil {
		cfg.Leases = new(Counter)
	}
	return &Mailbox{cfg: cfg, nextSeq: 1, leases: make(map[uint64]*Message)}
}

// Config returns the mailbox's configuration.
func (m *Mailbox) Config() Config { return m.cfg }

// Effects returns the decisions made by the last call. The slice is reused
// by the next call: the owner must carry the effects out first.
func (m *Mailbox) Effects() []Effect { return m.effects }

func (m *Mailbox) begin() {
	clear(m.effects)
	m.effects = m.effects[:0]
}

func (m *Mailbox) emit(e Effect) { m.effects = append(m.effects, e) }

func (m *Mailbox) journal(k Kind, msg *Message) {
	if m.cfg.Durable {
		m.emit(Effect{Kind: k, Msg: msg})
	}
}

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

// Destroyed reports whether Destroy was called.
func (m *Mailbox) Destroyed() bool { return m.destroyed }

// Restore loads recovered messages (from a durable store) into an empty
// mailbox, and the next sequence number to assign. It emits nothing.
func (m *Mailbox) Restore(msgs []*Message, nextSeq uint64) {
	for _, msg := range msgs {
		m.q.push(msg)
		m.hold(msg, 1)
		if msg.Seq >= m.nextSeq {
			m.nextSeq = msg.Seq + 1
		}
	}
	if nextSeq > m.nextSeq {
		m.nextSeq = nextSeq
	}
}

// NextSeq is the sequence number the next accepted message will get.
func (m *Mailbox) NextSeq() uint64 { return m.nextSeq }

// HeldBytes is the bytes (bodies and headers) of every message the mailbox holds.
func (m *Mailbox) HeldBytes() int64 { return m.held }

// Stats returns the mailbox's live state and counters.
func (m *Mailbox) Stats() Stats {
	st := m.st
	st.Depth = m.q.n
	st.Bytes = m.q.bytes
	st.HeldBytes = m.held
	st.InFlight = len(m.leases)
	st.BlockedSenders = m.blocked.n + m.offers.n
	st.Consumers = m.parked.n
	for r := m.waiting.head; r != nil; r = r.next {
		if r.Consumer {
			st.Consumers++
		} else {
			st.Receivers++
		}
	}
	st.OldestUnixNano = m.q.oldest()
	return st
}
