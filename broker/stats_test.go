package broker_test

import (
	"testing"

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
