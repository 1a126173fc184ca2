package metrics

import (
	"math"
	"strconv"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/prometheus/client_golang/prometheus"
)

// Source is what the collector reads: a *broker.Broker.
type Source interface {
	Snapshot() broker.Snapshot
}

// Collector is a prometheus.Collector over a broker's Snapshot. It is
// safe for concurrent use (each Collect takes its own snapshot).
type Collector struct {
	src Source
}

// NewCollector returns a collector over src.
func NewCollector(src Source) *Collector { return &Collector{src: src} }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("postbox_"+name, help, labels, nil)
}

// The metrics, in docs/OPERATIONS.md's order.
var (
	descStart       = desc("start_time_seconds", "When the broker was opened, in seconds since the Unix epoch.")
	descConnections = desc("connections", "Live connections, counted against max_connections.")
	descMailboxes   = desc("mailboxes", "Named mailboxes (endpoints' inboxes are not counted).")
	descLatency     = desc("delivery_latency_seconds", "Time from the broker reading a message's SEND to its first delivery.")

	descQueued      = desc("mailbox_queued_messages", "Messages queued in the mailbox (its depth).", "mailbox")
	descQueuedBytes = desc("mailbox_queued_bytes", "Bytes (bodies and headers) of the messages queued in the mailbox.", "mailbox")
	descInFlight    = desc("mailbox_in_flight_messages", "Messages delivered and leased, not yet acked or nacked.", "mailbox")
	descConsumers   = desc("mailbox_consumers", "Registered consumers (CONSUME).", "mailbox")
	descReceivers   = desc("mailbox_waiting_receivers", "One-shot receivers (RECV) waiting for a message.", "mailbox")
	descBlocked     = desc("mailbox_blocked_senders", "Senders waiting for room or for their offer to be taken.", "mailbox")
	descCapacity    = desc("mailbox_capacity_messages", "The mailbox's capacity: +Inf unbounded, 0 rendezvous.", "mailbox")
	descSent        = desc("mailbox_sent_messages_total", "Messages the mailbox accepted.", "mailbox")
	descDelivered   = desc("mailbox_delivered_messages_total", "Deliveries to receivers, redeliveries included.", "mailbox")
	descConsumed    = desc("mailbox_consumed_messages_total", "Messages gone for good: acked, or delivered with auto-ack.", "mailbox")
	descAcks        = desc("mailbox_acks_total", "Leases ended by ACK.", "mailbox")
	descNacks       = desc("mailbox_nacks_total", "Leases ended by NACK.", "mailbox")
	descRedelivered = desc("mailbox_redeliveries_total", "Messages returned to the queue (NACK, or their holder's disconnect).", "mailbox")
	descDead        = desc("mailbox_dead_letters_total", "Messages dead-lettered at max deliveries.", "mailbox")
	descExpired     = desc("mailbox_expired_messages_total", "Messages removed by the mailbox's TTL.", "mailbox")

	descUseConns    = desc("account_connections", "Open connections of the account.", "account")
	descUseBoxes    = desc("account_mailboxes", "Named mailboxes the account created.", "account")
	descUseBytes    = desc("account_queued_bytes", "Bytes of messages the account sent that mailboxes still hold.", "account")
	descUseLeases   = desc("account_leases", "Deliveries the account's connections hold unsettled.", "account")
	descQuotaConns  = desc("account_connections_quota", "The account's connection quota (+Inf: unlimited).", "account")
	descQuotaBoxes  = desc("account_mailboxes_quota", "The account's mailbox quota (+Inf: unlimited).", "account")
	descQuotaBytes  = desc("account_queued_bytes_quota", "The account's queued-bytes quota (+Inf: unlimited).", "account")
	descQuotaLeases = desc("account_leases_quota", "The account's lease quota (+Inf: unlimited).", "account")

	descStoreSize     = desc("store_size_bytes", "Bytes of the store's segment files.")
	descStoreLive     = desc("store_live_bytes", "Bytes of the store's records of live messages.")
	descStoreSegments = desc("store_segments", "Segment files of the store.")
	descStoreFsyncs   = desc("store_fsyncs_total", "fdatasync calls of the store.")
	descStoreRecords  = desc("store_records_total", "Records the store wrote.")
	descStoreBatches  = desc("store_batches_total", "Group commits (batches of records) the store wrote.")
	descStoreFailed   = desc("store_failed", "1 once the store refuses writes (a failed fsync or write), else 0.")
	descFsyncLatency  = desc("store_fsync_duration_seconds", "Latency of the store's fdatasync calls.")

	descSubscribers    = desc("subject_subscribers", "Subscriptions with the pattern, queue-group members included.", "pattern")
	descSubjectQueues  = desc("subject_queue_groups", "Queue groups among the pattern's subscriptions.", "pattern")
	descSubjectEvents  = desc("subject_delivered_events_total", "Events handed to the pattern's subscribers (restarts when its last subscription goes).", "pattern")
	descSubjectDropped = desc("subject_dropped_events_total", "Events the pattern's subscriptions dropped by their overflow policy.", "pattern")
)

var allDescs = []*prometheus.Desc{
	descStart, descConnections, descMailboxes, descLatency,
	descQueued, descQueuedBytes, descInFlight, descConsumers, descReceivers, descBlocked, descCapacity,
	descSent, descDelivered, descConsumed, descAcks, descNacks, descRedelivered, descDead, descExpired,
	descUseConns, descUseBoxes, descUseBytes, descUseLeases, descQuotaConns, descQuotaBoxes, descQuotaBytes, descQuotaLeases,
	descStoreSize, descStoreLive, descStoreSegments, descStoreFsyncs, descStoreRecords, descStoreBatches, descStoreFailed,
	descFsyncLatency,
	descSubscribers, descSubjectQueues, descSubjectEvents, descSubjectDropped,
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect takes one snapshot and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descStart, float64(s.Started.UnixNano())/1e9)
	gauge(descConnections, float64(s.Connections))
	gauge(descMailboxes, float64(len(s.Mailboxes)))
	ch <- histogram(descLatency, &s.DeliveryLatency)

	for i := range s.Mailboxes {
		m := &s.Mailboxes[i]
		gauge(descQueued, float64(m.Depth), m.Name)
		gauge(descQueuedBytes, float64(m.Bytes), m.Name)
		gauge(descInFlight, float64(m.InFlight), m.Name)
		gauge(descConsumers, float64(m.Consumers), m.Name)
		gauge(descReceivers, float64(m.Receivers), m.Name)
		gauge(descBlocked, float64(m.BlockedSenders), m.Name)
		gauge(descCapacity, unlimited(m.Capacity), m.Name)
		counter(descSent, m.Sent, m.Name)
		counter(descDelivered, m.Delivered, m.Name)
		counter(descConsumed, m.Consumed, m.Name)
		counter(descAcks, m.Acked, m.Name)
		counter(descNacks, m.Nacked, m.Name)
		counter(descRedelivered, m.Redelivered, m.Name)
		counter(descDead, m.DeadLettered, m.Name)
		counter(descExpired, m.Expired, m.Name)
	}

	for i := range s.Subjects {
		p := &s.Subjects[i]
		gauge(descSubscribers, float64(p.Subscribers), p.Pattern)
		gauge(descSubjectQueues, float64(p.QueueGroups), p.Pattern)
		counter(descSubjectEvents, p.Delivered, p.Pattern)
		counter(descSubjectDropped, p.Dropped, p.Pattern)
	}

	for i := range s.Usage {
		u := &s.Usage[i]
		a := Account(u)
		gauge(descUseConns, float64(u.Used.Connections), a)
		gauge(descUseBoxes, float64(u.Used.Mailboxes), a)
		gauge(descUseBytes, float64(u.Used.QueuedBytes), a)
		gauge(descUseLeases, float64(u.Used.Leases), a)
		gauge(descQuotaConns, unlimited(u.Quota.Connections), a)
		gauge(descQuotaBoxes, unlimited(u.Quota.Mailboxes), a)
		gauge(descQuotaBytes, unlimited(u.Quota.QueuedBytes), a)
		gauge(descQuotaLeases, unlimited(u.Quota.Leases), a)
	}

	if st := s.Store; st != nil {
		gauge(descStoreSize, float64(st.Bytes))
		gauge(descStoreLive, float64(st.LiveBytes))
		gauge(descStoreSegments, float64(st.Segments))
		counter(descStoreFsyncs, st.Fsyncs)
		counter(descStoreRecords, st.Records)
		counter(descStoreBatches, st.Batches)
		failed := 0.0
		if st.Failed != nil {
			failed = 1
		}
		gauge(descStoreFailed, failed)
		ch <- histogram(descFsyncLatency, &st.FsyncLatency)
	}
}

// Account is the account label of a usage bucket: "uid:N",
// "principal:NAME" or "anonymous".
func Account(u *broker.UsageEntry) string {
	switch {
	case u.Principal != "":
		return "principal:" + u.Principal
	case u.Anonymous:
		return "anonymous"
	}
	return "uid:" + strconv.FormatUint(uint64(u.UID), 10)
}

// unlimited is v, or +Inf for a negative v (broker.Unlimited, a capacity
// of -1).
func unlimited(v int64) float64 {
	if v < 0 {
		return math.Inf(1)
	}
	return float64(v)
}

// histogram turns a broker histogram into a constant Prometheus one:
// cumulative buckets with upper bounds in seconds.
func histogram(d *prometheus.Desc, h *broker.HistogramSnapshot) prometheus.Metric {
	buckets := make(map[float64]uint64, broker.HistogramBuckets)
	var cum uint64
	for i := range broker.HistogramBuckets {
		cum += h.Counts[i]
		buckets[broker.HistogramBound(i).Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum.Seconds(), buckets)
}
