package broker

import (
	"slices"
	"strings"
	"time"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/store"
)

// Statistics: what a metrics exporter (package metrics) or `postbox
// info` reads, at the moment it asks.
//
// The data path pays nothing new for them but two atomic adds per first
// delivery (the send-to-delivery histogram) and an atomic store per
// socket read (the connection's read time, its clock): every
// mailbox counter is the mailbox core's own (mailbox.Stats), kept under
// the box lock the data path already holds; the connection count and
// the per-uid usage are the ones the limits and quotas keep; the store
// counts its fsyncs on its writer goroutine. Snapshot takes each box's
// lock in turn, briefly, as LIST does: the cost is the reader's.

// stats are the broker's own statistics, beyond what it already counts
// for its limits.
type stats struct {
	// started is when Open returned (with its monotonic reading: now
	// reads only the monotonic clock); startedUnix the same in Unix ns.
	started     time.Time
	startedUnix int64
	// delivery is the time a message spent queued before its first
	// delivery (delivered).
	delivery Histogram
	// fsync is the latency of the store's fdatasync calls.
	fsync Histogram
}

func (s *stats) start() {
	s.started = time.Now()
	s.startedUnix = s.started.UnixNano()
}

// now is the time in Unix ns from one monotonic clock read.
func (s *stats) now() int64 { return s.startedUnix + int64(time.Since(s.started)) }

// delivered counts a delivery of msg at now (Unix ns) in the
// send-to-delivery histogram if it is the message's first (a
// redelivery's latency would count the lease it returned from).
//
// now is not a clock read, which would cost more than the rest of the
// statistics together (about 20 to 60 ns, every delivery): it is the
// receiving connection's last read from its socket. A delivery caused
// by the receiver's own request (its RECV, CREDIT or ACK) is timed from
// that request's read; one caused by the send itself, to a receiver
// already waiting, finds the receiver's last read older than the send
// (or at most as new as a frame it read meanwhile) and counts 0 or
// about it, which is what the message spent queued. A durable mailbox's deliveries wait for their record:
// they pass a clock read (now()), so the fsync counts.
func (s *stats) delivered(msg *mailbox.Message, now int64) {
	if msg.Redeliveries != 0 || msg.SentUnixNano == 0 {
		return
	}
	s.delivery.Observe(time.Duration(max(now-msg.SentUnixNano, 0)))
}

// Snapshot is the broker's statistics at one moment (each part read at
// its own moment: the whole is not atomic).
type Snapshot struct {
	Time    time.Time // when it was taken
	Started time.Time // when the broker was opened
	// Connections is the live connections counted against
	// MaxConnections (from accept on).
	Connections int64
	// Mailboxes is every named mailbox (not endpoints' inboxes), by name.
	Mailboxes []MailboxStats
	// Usage is every per-uid (and TLS principal's, and the anonymous)
	// bucket used in this run, with its quotas (as Usage).
	Usage []UsageEntry
	// Store is the durable store's statistics, nil without a data
	// directory.
	Store *StoreStats
	// DeliveryLatency is the time messages spent queued before their
	// first delivery, over every mailbox since Open: from the broker
	// reading a message's SEND to its reading the request that let it be
	// delivered (0 for a receiver already waiting); for a durable
	// mailbox, to the delivery after its record is on disk (see
	// stats.delivered).
	DeliveryLatency HistogramSnapshot
	// Subjects is every subscribed pattern (as TOPICS lists them:
	// bindings' own subscriptions left out), sorted, the broker's $SYS.
	// ones last. A pattern's counters start again when its last
	// subscription goes.
	Subjects []SubjectStats
}

// SubjectStats are one subscribed pattern's subscriptions and counters.
type SubjectStats struct {
	Pattern     string
	Subscribers int    // subscriptions with this pattern, queue members included
	QueueGroups int    // distinct queue groups among them
	Delivered   uint64 // events handed to the subscribers' connections
	Dropped     uint64 // events dropped by the overflow policies (drop-oldest, drop-newest, disconnect)
}

// MailboxStats are one mailbox's state and counters since the broker
// opened (or since it was created).
type MailboxStats struct {
	Name                  string
	Durable, Pipe, Closed bool
	Depth                 int   // queued messages
	Bytes                 int64 // queued bytes (bodies and headers)
	InFlight              int   // leased, not yet settled
	Consumers, Receivers  int   // registered consumers; waiting one-shot receivers
	BlockedSenders        int
	Capacity              int64 // -1 unbounded, 0 rendezvous

	Sent         uint64 // accepted messages
	Delivered    uint64 // deliveries, redeliveries included
	Consumed     uint64 // messages gone for good: acked, or delivered with auto-ack
	Acked        uint64 // leases ended by ACK
	Nacked       uint64 // leases ended by NACK
	Redelivered  uint64 // returns to the queue: NACK, a holder's disconnect
	DeadLettered uint64 // moved to the dead-letter mailbox or dropped at MaxDeliveries
	Expired      uint64 // removed by the TTL
}

// StoreStats are the durable store's statistics.
type StoreStats struct {
	store.DiskStats
	// FsyncLatency is the latency of every fdatasync since Open.
	FsyncLatency HistogramSnapshot
}

// Snapshot reads the broker's statistics. It is safe to call at any
// time, also after Close.
func (b *Broker) Snapshot() Snapshot {
	s := Snapshot{Time: time.Now(), Started: b.stats.started, Connections: b.nconns.Load()}
	b.mu.RLock()
	boxes := make([]*box, 0, b.named)
	for _, bx := range b.boxes {
		if bx.inbox == 0 {
			boxes = append(boxes, bx)
		}
	}
	b.mu.RUnlock()
	slices.SortFunc(boxes, func(x, y *box) int { return strings.Compare(x.name, y.name) })
	s.Mailboxes = make([]MailboxStats, 0, len(boxes))
	for _, bx := range boxes {
		s.Mailboxes = append(s.Mailboxes, bx.stats())
	}
	s.Usage = b.Usage()
	if ds, ok := b.DiskStats(); ok {
		s.Store = &StoreStats{DiskStats: ds, FsyncLatency: b.stats.fsync.Snapshot()}
	}
	s.DeliveryLatency = b.stats.delivery.Snapshot()
	if ps := b.ps; ps != nil {
		ps.mu.Lock()
		subjects := ps.subjectsLocked()
		ps.mu.Unlock()
		s.Subjects = make([]SubjectStats, len(subjects))
		for i, st := range subjects {
			s.Subjects[i] = SubjectStats{Pattern: st.Pattern, Subscribers: st.Subscribers, QueueGroups: st.QueueGroups,
				Delivered: st.Delivered, Dropped: st.Dropped}
		}
	}
	return s
}

// stats reads a box's counters under its lock.
func (bx *box) stats() MailboxStats {
	bx.mu.Lock()
	st := bx.core.Stats()
	capacity := bx.core.Config().Capacity
	closed := bx.core.Closed()
	bx.mu.Unlock()
	return MailboxStats{
		Name: bx.name, Durable: bx.durable, Pipe: bx.pipe != nil, Closed: closed,
		Depth: st.Depth, Bytes: st.Bytes, InFlight: st.InFlight, Consumers: st.Consumers, Receivers: st.Receivers,
		BlockedSenders: st.BlockedSenders, Capacity: capacity,
		Sent: st.Sent, Delivered: st.Delivered, Consumed: st.Received, Acked: st.Acked, Nacked: st.Nacked,
		Redelivered: st.Redelivered, DeadLettered: st.DeadLettered, Expired: st.Expired,
	}
}
