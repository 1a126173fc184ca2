package mailbox

import (
	"errors"
	"slices"
	"testing"
)

// Leases: ack, nack, redelivery, stale acks, disconnect, dead letters.

// lease receives one message on endpoint ep with selector 0 and returns
// its lease.
func lease(t *testing.T, m *Mailbox, ep uint64) uint64 {
	t.Helper()
	if err := m.Receive(oneShot("r", ep, 0), false); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, m)
	return deliveredLease(t, m)
}

func TestAckRemovesMessage(t *testing.T) {
	m := unbounded()
	mustSend(t, m, newMsg("abc", 1, 0))
	l := lease(t, m, 1)
	if st := m.Stats(); st.InFlight != 1 || st.HeldBytes != 3 || st.Received != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := m.Ack(1, l); err != nil {
		t.Fatal(err)
	}
	wantEffects(t, m)
	if st := m.Stats(); st.InFlight != 0 || st.HeldBytes != 0 || st.Received != 1 || st.Depth != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNackReturnsMessageToOriginalPosition(t *testing.T) {
	m := unbounded()
	mustSend(t, m, newMsg("a", 1, 0))
	mustSend(t, m, newMsg("b", 1, 0))
	mustSend(t, m, newMsg("c", 1, 0))
	la := lease(t, m, 1)
	lb := lease(t, m, 1)
	mustSend(t, m, newMsg("d", 1, 0))
	if err := m.Nack(1, lb); err != nil {
		t.Fatal(err)
	}
	wantQueue(t, m, "b", "c", "d")
	if err := m.Nack(1, la); err != nil {
		t.Fatal(err)
	}
	wantQueue(t, m, "a", "b", "c", "d")
	var redeliveries []uint32
	for range 4 {
		if err := m.Receive(oneShot("r", 2, 0), false); err != nil {
			t.Fatal(err)
		}
		redeliveries = append(redeliveries, m.Effects()[0].Msg.Redeliveries)
	}
	if want := []uint32{1, 1, 0, 0}; !slices.Equal(redeliveries, want) {
		t.Fatalf("redeliveries %v, want %v", redeliveries, want)
	}
	if st := m.Stats(); st.Redelivered != 2 {
		t.Fatalf("Redelivered = %d, want 2", st.Redelivered)
	}
}

func TestNackedMessageGoesToFirstWaitingReceiver(t *testing.T) {
	m := unbounded()
	mustSend(t, m, newMsg("a", 1, 0))
	l := lease(t, m, 1)
	if err := m.Receive(oneShot("w", 2, 0), true); err != nil {
		t.Fatal(err)
	}
	if err := m.Nack(1, l); err != nil {
		t.Fatal(err)
	}
	wantEffects(t, m, "deliver w a lease=2")
}

func TestStaleAckDoubleAckIsRejected(t *testing.T) {
	m := unbounded()
	mustSend(t, m, newMsg("a", 1, 0))
	l := lease(t, m, 1)
	if err := m.Ack(1, l); err != nil {
		t.Fatal(err)
	}
	before := m.Stats()
	if err := m.Ack(1, l); !errors.Is(err, ErrStaleLease) {
		t.Fatalf("second ack: %v, want ErrStaleLease", err)
	}
	if err := m.Nack(1, l); !errors.Is(err, ErrStaleLease) {
		t.Fatalf("nack after ack: %v, want ErrStaleLease", err)
	}
	wantEffects(t, m)
	if m.Stats() != before {
		t.Fatal("stale ack changed the mailbox")
	}
}

func TestStaleAckAfterNackIsRejected(t *testing.T) {
	m := unbounded()
	mustSend(t, m, newMsg("a", 1, 0))
	l := lease(t, m, 1)
	if err := m.Nack(1, l); err != nil {
		t.Fatal(err)
	}
	if err := m.Ack(1, l); !errors.Is(err, ErrStaleLease) {
		t.Fatalf("ack after nack: %v, want ErrStaleLease", err)
	}
	wantQueue(t, m, "a")
}

func TestStaleAckByAnotherEndpointIsRejected(t *testing.T) {
	m := unbounded()
	mustSend(t, m, newMsg("a", 1, 0))
	l := lease(t, m, 1)
	if err := m.Ack(2, l); !errors.Is(err, ErrStaleLease) {
		t.Fatalf("ack by endpoint 2: %v, want ErrStaleLease", err)
	}
	if err := m.Nack(2, l); !errors.Is(err, ErrStaleLease) {
		t.Fatalf("nack by endpoint 2: %v, want ErrStaleLease", err)
	}
	if st := m.Stats(); st.InFlight != 1 {
		t.Fatalf("InFlight = %d, want the lease still held", st.InFlight)
	}
	if err := m.Ack(1, l); err != nil {
		t.Fatalf("holder's ack: %v", err)
	}
}

func TestStaleAckAfterDisconnectIsRejected(t *testing.T) {
	m := unbounded()
	mustSend(t, m, newMsg("a", 1, 0))
	old := lease(t, m, 1)
	m.Disconnect(1)
	wantQueue(t, m, "a")
	// Re-leased to endpoint 2 under a new id, then even to endpoint 1
	// again: the old id names neither delivery.
	l2 := lease(t, m, 2)
	if l2 == old {
		t.Fatalf("re-lease reused id %d", old)
	}
	if err := m.Ack(1, old); !errors.Is(err, ErrStaleLease) {
		t.Fatalf("old ack: %v, want ErrStaleLease", err)
	}
	if err := m.Ack(2, old); !errors.Is(err, ErrStaleLease) {
		t.Fatalf("old ack by new holder: %v, want ErrStaleLease", err)
	}
	if err := m.Nack(2, l2); err != nil {
		t.Fatal(err)
	}
	l3 := lease(t, m, 1)
	if err := m.Ack(1, old); !errors.Is(err, ErrStaleLease) {
		t.Fatalf("old ack after re-lease to the same endpoint: %v", err)
	}
	if st := m.Stats(); st.InFlight != 1 {
		t.Fatalf("InFlight = %d, want 1", st.InFlight)
	}
	if err := m.Ack(1, l3); err != nil {
		t.Fatal(err)
	}
	if m.HeldBytes() != 0 {
		t.Fatalf("HeldBytes = %d", m.HeldBytes())
	}
}

func TestDisconnectReturnsLeasesInQueueOrder(t *testing.T) {
	m := New(Config{Capacity: -1, Durable: true})
	for _, s := range []struct {
		body string
		prio uint8
	}{{"a", 0}, {"b", 3}, {"c", 0}, {"d", 3}, {"e", 1}} {
		mustSend(t, m, newMsg(s.body, 1, s.prio))
	}
	c := consumer("c", 1, 0, 5)
	if err := m.Receive(c, false); err != nil {
		t.Fatal(err)
	}
	// Many leases, so map iteration order would show if it leaked out.
	mustSend(t, m, newMsg("f", 1, 2))
	w := consumer("w", 2, 0, 10)
	if err := m.Receive(w, true); err != nil {
		t.Fatal(err)
	}
	m.Disconnect(1)
	wantEffects(t, m,
		"returned b redeliveries=1", "leased b lease=7", "deliver w b lease=7",
		"returned d redeliveries=1", "leased d lease=8", "deliver w d lease=8",
		"returned e redeliveries=1", "leased e lease=9", "deliver w e lease=9",
		"returned a redeliveries=1", "leased a lease=10", "deliver w a lease=10",
		"returned c redeliveries=1", "leased c lease=11", "deliver w c lease=11",
	)
	if c.list != nil {
		t.Fatal("the disconnected consumer is still registered")
	}
}

func TestDisconnectReturnsLeasesToQueueInOrder(t *testing.T) {
	for range 20 { // map order varies between runs
		m := unbounded()
		for _, b := range []string{"a", "b", "c", "d", "e", "f"} {
			mustSend(t, m, newMsg(b, 1, 0))
		}
		if err := m.Receive(consumer("c", 1, 0, 4), false); err != nil {
			t.Fatal(err)
		}
		m.Disconnect(1)
		wantEffects(t, m)
		wantQueue(t, m, "a", "b", "c", "d", "e", "f")
	}
}

func TestDisconnectDropsWaitersAndWithdrawsOffers(t *testing.T) {
	m := New(Config{Capacity: 2, Durable: true})
	mustSend(t, m, newMsg("a", 1, 0))
	offer := sender("offer", 1)
	if _, _, err := m.Send(newMsg("b", 1, 0), true, offer); err != nil {
		t.Fatal(err)
	}
	blocked := sender("blocked", 1)
	if _, _, err := m.Send(newMsg("c", 1, 0), false, blocked); err != nil {
		t.Fatal(err)
	}
	other := sender("other", 2)
	if _, _, err := m.Send(newMsg("d", 1, 0), false, other); err != nil {
		t.Fatal(err)
	}
	if err := m.Receive(oneShot("r1", 1, 5), true); err != nil {
		t.Fatal(err)
	}
	if err := m.Receive(consumer("c1", 1, 0, 0), true); err != nil {
		t.Fatal(err)
	}
	if err := m.Receive(oneShot("r2", 2, 5), true); err != nil {
		t.Fatal(err)
	}
	m.Disconnect(1)
	// Nobody is told about endpoint 1's waiters; b's place goes to the
	// other endpoint's blocked sender.
	// b, an offer, was never journaled, so its withdrawal is not either.
	wantEffects(t, m, "enqueued d seq=3", "sent other d seq=3")
	wantQueue(t, m, "a", "d")
	if st := m.Stats(); st.Receivers != 1 || st.Consumers != 0 || st.BlockedSenders != 0 {
		t.Fatalf("stats %+v", st)
	}
	if m.HeldBytes() != 2 {
		t.Fatalf("HeldBytes = %d, want 2", m.HeldBytes())
	}
	m.CancelSend(offer, ErrCanceled) // already gone
	m.CancelSend(blocked, ErrCanceled)
	wantEffects(t, m)
}

func TestMaxDeliveriesDeadLetters(t *testing.T) {
	m := New(Config{Capacity: -1, MaxDeliveries: 3, Durable: true})
	mustSend(t, m, newMsg("a", 1, 0))
	for i := 1; i <= 2; i++ {
		l := lease(t, m, 1)
		if err := m.Nack(1, l); err != nil {
			t.Fatal(err)
		}
		wantQueue(t, m, "a")
	}
	l := lease(t, m, 1)
	if err := m.Nack(1, l); err != nil {
		t.Fatal(err)
	}
	wantEffects(t, m, "deadletter a (max deliveries reached)")
	wantQueue(t, m)
	if st := m.Stats(); st.DeadLettered != 1 || st.HeldBytes != 0 || st.InFlight != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestMaxDeliveriesCountsDisconnects(t *testing.T) {
	m := New(Config{Capacity: -1, MaxDeliveries: 1})
	mustSend(t, m, newMsg("a", 1, 0))
	lease(t, m, 1)
	m.Disconnect(1)
	wantEffects(t, m, "deadletter a (max deliveries reached)")
	if m.HeldBytes() != 0 {
		t.Fatalf("HeldBytes = %d", m.HeldBytes())
	}
}

func TestAutoAckCreatesNoLease(t *testing.T) {
	m := unbounded()
	mustSend(t, m, newMsg("a", 1, 0))
	r := oneShot("r", 1, 0)
	r.AutoAck = true
	if err := m.Receive(r, false); err != nil {
		t.Fatal(err)
	}
	wantEffects(t, m, "deliver r a lease=0")
	if st := m.Stats(); st.InFlight != 0 || st.Received != 1 || st.HeldBytes != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := m.Ack(1, 0); !errors.Is(err, ErrStaleLease) {
		t.Fatalf("ack of lease 0: %v", err)
	}
}

func TestStatsCountDeliveriesAcksAndNacks(t *testing.T) {
	m := unbounded()
	mustSend(t, m, newMsg("a", 1, 0))
	l := lease(t, m, 1)
	if err := m.Nack(1, l); err != nil {
		t.Fatal(err)
	}
	l = lease(t, m, 1)
	if err := m.Ack(1, l); err != nil {
		t.Fatal(err)
	}
	if err := m.Ack(1, l); err == nil {
		t.Fatal("a stale ack succeeded")
	}
	st := m.Stats()
	if st.Delivered != 2 || st.Acked != 1 || st.Nacked != 1 || st.Redelivered != 1 || st.Received != 1 {
		t.Fatalf("delivered %d acked %d nacked %d redelivered %d received %d; want 2 1 1 1 1",
			st.Delivered, st.Acked, st.Nacked, st.Redelivered, st.Received)
	}
}
