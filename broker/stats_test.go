package broker_test

import (
	"os"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/wire"
)

func TestSnapshotCountsSendsDeliveriesAcksAndNacks(t *testing.T) {
	tb := startBroker(t, func(c *broker.Config) { c.DataDir = t.TempDir() })
	rc := dialRaw(t, tb.socket)
	rc.create(t, wire.Create{Name: []byte("b"), Capacity: -1})
	rc.create(t, wire.Create{Name: []byte("a"), Capacity: 2, Durable: true})
	rc.sendOK(t, "a", "one", "two")
	d := rc.recv(t, "a", 0)
	hd, p := rc.roundTrip(t, wire.OpNack, 0, leases(wire.LeaseRange{First: d.Lease, N: 1}))
	must(t, "NACK", hd, p, wire.OK)
	for range 2 {
		d := rc.recv(t, "a", 0)
		hd, p := rc.roundTrip(t, wire.OpAck, 0, leases(wire.LeaseRange{First: d.Lease, N: 1}))
		must(t, "ACK", hd, p, wire.OK)
	}

	s := tb.Snapshot()
	if len(s.Mailboxes) != 2 || s.Mailboxes[0].Name != "a" || s.Mailboxes[1].Name != "b" {
		t.Fatalf("mailboxes %+v, want a then b (no inboxes)", s.Mailboxes)
	}
	a := s.Mailboxes[0]
	want := broker.MailboxStats{Name: "a", Durable: true, Capacity: 2,
		Sent: 2, Delivered: 3, Consumed: 2, Acked: 2, Nacked: 1, Redelivered: 1}
	if a != want {
		t.Errorf("a: %+v\nwant %+v", a, want)
	}
	if s.Connections != 1 {
		t.Errorf("connections %d, want 1", s.Connections)
	}
	if s.DeliveryLatency.Count != 2 {
		t.Errorf("delivery latency count %d, want 2 (first deliveries only)", s.DeliveryLatency.Count)
	}
	if s.Store == nil || s.Store.Fsyncs == 0 || s.Store.FsyncLatency.Count == 0 || s.Store.FsyncLatency.Count > s.Store.Fsyncs {
		t.Errorf("store %+v: want fsyncs, each timed", s.Store)
	}
	if len(s.Usage) == 0 {
		t.Errorf("no usage buckets")
	}
	if s.Started.IsZero() || s.Time.Before(s.Started) {
		t.Errorf("started %v, taken %v", s.Started, s.Time)
	}
}

func TestSnapshotWithoutDataDirectoryHasNoStore(t *testing.T) {
	tb := startBroker(t, nil)
	if s := tb.Snapshot(); s.Store != nil || len(s.Mailboxes) != 0 {
		t.Fatalf("snapshot %+v", s)
	}
}

func TestInfoAnswersWhatTheBrokerIs(t *testing.T) {
	dir := t.TempDir()
	tb := startBroker(t, func(c *broker.Config) { c.DataDir = dir; c.MaxMailboxes = 77 })
	rc := dialRaw(t, tb.socket)
	rc.create(t, wire.Create{Name: []byte("jobs"), Capacity: -1, Durable: true})
	hd, p := rc.roundTrip(t, wire.OpInfo, 0, nil)
	must(t, "INFO", hd, p, wire.OK)
	if hd.Op != wire.OpInfo|wire.OpReply {
		t.Fatalf("reply op %s", hd.Op)
	}
	var in wire.InfoReply
	if err := in.Decode(p); err != nil {
		t.Fatal(err)
	}
	switch {
	case in.PID != uint32(os.Getpid()):
		t.Errorf("pid %d, want %d", in.PID, os.Getpid())
	case string(in.DataDir) != dir:
		t.Errorf("data dir %q, want %q", in.DataDir, dir)
	case in.Connections != 1 || in.Mailboxes != 1:
		t.Errorf("connections %d mailboxes %d, want 1 1", in.Connections, in.Mailboxes)
	case in.Limits.MaxMailboxes != 77 || in.Limits.MaxFrame != int64(tb.cfg.MaxFrame):
		t.Errorf("limits %+v", in.Limits)
	case len(in.Listeners) != 1 || string(in.Listeners[0].Network) != "unix" || string(in.Listeners[0].Address) != tb.socket:
		t.Errorf("listeners %q, want unix %s", in.Listeners, tb.socket)
	case in.StoreBytes <= 0 || in.HeapBytes <= 0 || in.Goroutines == 0 || len(in.Version) == 0 || len(in.GoVersion) == 0:
		t.Errorf("store %d heap %d goroutines %d version %q %q", in.StoreBytes, in.HeapBytes, in.Goroutines, in.Version, in.GoVersion)
	case in.UptimeNano <= 0 || in.StartedUnixNano <= 0:
		t.Errorf("uptime %d started %d", in.UptimeNano, in.StartedUnixNano)
	}
	// A payload that is not an empty ext tail is MALFORMED.
	hd, p = rc.roundTrip(t, wire.OpInfo, 0, []byte{1})
	must(t, "INFO with a stray byte", hd, p, wire.CodeMalformed)
}

func TestInfoWithoutDataDirectory(t *testing.T) {
	tb := startBroker(t, nil)
	in := tb.Info()
	if in.DataDir != "" || in.StoreBytes != -1 || in.Mailboxes != 0 {
		t.Fatalf("info %+v", in)
	}
}

// The send-to-delivery histogram counts the time a message waited
// queued: from its SEND's read to the read of the RECV that took it.
func TestDeliveryLatencyCountsTheTimeQueued(t *testing.T) {
	tb := startBroker(t, nil)
	rc := dialRaw(t, tb.socket)
	rc.create(t, wire.Create{Name: []byte("q"), Capacity: -1})
	rc.sendOK(t, "q", "waits")
	const queued = 50 * time.Millisecond
	time.Sleep(queued)
	rc.recv(t, "q", wire.FlagAutoAck)
	h := tb.Snapshot().DeliveryLatency
	if h.Count != 1 || h.Sum < queued {
		t.Fatalf("latency count %d sum %v, want 1 observation of at least %v", h.Count, h.Sum, queued)
	}
	if q := h.Quantile(1); q < queued {
		t.Fatalf("its bucket's bound %v is below %v", q, queued)
	}
}
