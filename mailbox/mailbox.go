package mailbox

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
