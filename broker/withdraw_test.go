package broker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/wire"
)

// TestUrgentDeliveryOvertakesAConsumersQueuedOutput: a consumer that does
// not read has 10,000 DELIVERs (10 MB) queued at the broker; an urgent
// message's DELIVER is written ahead of them (the urgent lane), not
// behind.
func TestUrgentDeliveryOvertakesAConsumersQueuedOutput(t *testing.T) {
	b := startBroker(t, func(c *broker.Config) { c.MaxConnBacklog = 64 << 20 })
	admin := dialRaw(t, b.socket)
	admin.create(t, wire.Create{Name: []byte("work"), Capacity: -1})
	const n = 10_000
	body := strings.Repeat("x", 1000)
	for i := 0; i < n; i += 1000 {
		bodies := make([]string, 1000)
		for j := range bodies {
			bodies[j] = body
		}
		admin.sendOK(t, "work", bodies...)
	}
	cons := dialRaw(t, b.socket)
	f, id := cons.frame(wire.OpConsume, wire.FlagAutoAck, (&wire.Consume{Name: []byte("work"), Credit: 2 * n}).Append(nil))
	cons.write(t, f)
	// Auto-acked deliveries leave the mailbox as they are queued for the
	// consumer: wait until every one is, without reading.
	deadline := time.Now().Add(hangGuard)
	for {
		hd, p := admin.roundTrip(t, wire.OpStat, 0, (&wire.Name{Name: []byte("work")}).Append(nil))
		must(t, "STAT", hd, p, wire.OK)
		var info wire.MailboxInfo
		if err := info.Decode(p); err != nil {
			t.Fatal(err)
		}
		if info.Depth == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still queued", info.Depth)
		}
		time.Sleep(5 * time.Millisecond)
	}
	m := wire.Send{Target: []byte("work"), Msgs: []wire.SendMsg{{Type: 1, Body: []byte("stop")}}}
	hd, p := admin.send(t, wire.FlagUrgentMsg|wire.FlagUrgent, m)
	must(t, "urgent SEND", hd, p, wire.OK)
	if !hd.Urgent() {
		t.Fatal("the reply to an URGENT SEND is not URGENT")
	}
	for i := range n + 1 {
		hd, p, err := cons.next(t)
		if err != nil {
			t.Fatal(err)
		}
		if hd.Op != wire.OpDeliver || hd.Request != id {
			t.Fatalf("frame %d: %s to %d", i, hd.Op, hd.Request)
		}
		var d wire.Delivery
		if err := d.Decode(p); err != nil {
			t.Fatal(err)
		}
		if d.Flags&wire.DeliveryUrgent != 0 {
			if string(d.Body) != "stop" || !hd.Urgent() || i > n/2 {
				t.Fatalf("urgent %q (URGENT frame %v) came %d-th of %d", d.Body, hd.Urgent(), i+1, n+1)
			}
			t.Logf("the urgent DELIVER came %d-th of %d (an ordinary one: last)", i+1, n+1)
			return
		}
	}
	t.Fatal("the urgent DELIVER never came")
}
