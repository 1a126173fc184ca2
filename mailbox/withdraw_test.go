package mailbox

import "testing"

// TestWithdrawTakesBackAQueuedRequestAndJournalsIt: a request whose caller
// gave up leaves the queue, its removal journaled, and room it frees
// admits a blocked sender.
func TestWithdrawTakesBackAQueuedRequestAndJournalsIt(t *testing.T) {
	m := New(Config{Capacity: 1, Durable: true})
	a := newMsg("a", 1, 0)
	mustSend(t, m, a)
	if _, _, err := m.Send(newMsg("b", 1, 0), false, sender("s", 1)); err != nil {
		t.Fatal(err)
	}
	if !m.Withdraw(a) {
		t.Fatal("a queued message was not withdrawn")
	}
	wantEffects(t, m, "removed a", "enqueued b seq=2", "sent s b seq=2")
	if st := m.Stats(); st.Depth != 1 || st.BlockedSenders != 0 || st.HeldBytes != 1 {
		t.Fatalf("after withdraw: %+v", st)
	}
	if m.Withdraw(a) {
		t.Fatal("withdrawn twice")
	}
}

// TestWithdrawLeavesALeasedOrSettledMessageAndTakerSaysWho: a message a
// receiver holds or took is not withdrawn; Taker names that receiver.
func TestWithdrawLeavesALeasedOrSettledMessageAndTakerSaysWho(t *testing.T) {
	m := New(Config{Capacity: -1})
	a := newMsg("a", 1, 0)
	mustSend(t, m, a)
	if _, ok := a.Taker(); ok {
		t.Fatal("a queued message has a taker")
	}
	r := oneShot("r", 7, 0)
	if err := m.Receive(r, false); err != nil {
		t.Fatal(err)
	}
	lease := m.Effects()[0].Lease
	if m.Withdraw(a) {
		t.Fatal("a leased message was withdrawn")
	}
	if who, ok := a.Taker(); !ok || who.Endpoint != 7 {
		t.Fatalf("taker %+v %v, want endpoint 7", who, ok)
	}
	if l, ok := a.Leased(); !ok || l != lease {
		t.Fatalf("leased %d %v, want %d", l, ok, lease)
	}
	if err := m.Ack(7, lease); err != nil {
		t.Fatal(err)
	}
	if m.Withdraw(a) {
		t.Fatal("an acked message was withdrawn")
	}
	if _, ok := a.Leased(); ok {
		t.Fatal("acked but still leased")
	}
	// A message never accepted (Seq 0) is no queued message.
	if m.Withdraw(newMsg("x", 1, 0)) {
		t.Fatal("withdrew a message never sent")
	}
}
