package mailbox

import (
	"errors"
	"testing"
)

// Destroy, Expire, journal effects and byte accounting.

func TestDestroyFailsEveryWaiter(t *testing.T) {
	m := New(Config{Capacity: 1})
	mustSend(t, m, newMsg("a", 1, 0))
	l := lease(t, m, 1)
	mustSend(t, m, newMsg("b", 1, 0))
	if _, _, err := m.Send(newMsg("c", 1, 0), false, sender("blocked", 2)); err != nil {
		t.Fatal(err)
	}
	if err := m.Receive(oneShot("r", 3, 9), true); err != nil {
		t.Fatal(err)
	}
	if err := m.Receive(consumer("parked", 3, 0, 0), true); err != nil {
		t.Fatal(err)
	}
	if err := m.Receive(consumer("cons", 3, 9, 2), true); err != nil {
		t.Fatal(err)
	}
	cause := errors.New("mailbox removed")
	m.Destroy(cause)
	wantEffects(t, m,
		"fail blocked: mailbox removed",
		"fail r: mailbox removed", "fail cons: mailbox removed",
		"fail parked: mailbox removed")
	if !m.Destroyed() {
		t.Fatal("not destroyed")
	}
	if st := m.Stats(); st.Depth != 0 || st.HeldBytes != 0 || st.InFlight != 0 || st.BlockedSenders != 0 ||
		st.Receivers != 0 || st.Consumers != 0 {
		t.Fatalf("stats after destroy %+v", st)
	}
	m.Destroy(nil) // idempotent
	wantEffects(t, m)
	if _, _, err := m.Send(newMsg("d", 1, 0), false, nil); !errors.Is(err, ErrDestroyed) {
		t.Fatalf("send: %v", err)
	}
	if err := m.Receive(oneShot("r", 1, 0), true); !errors.Is(err, ErrDestroyed) {
		t.Fatalf("receive: %v", err)
	}
	if err := m.Ack(1, l); !errors.Is(err, ErrStaleLease) {
		t.Fatalf("ack: %v", err)
	}
	if next := m.Expire(1 << 62); next != 0 {
		t.Fatalf("Expire = %d", next)
	}
}

func TestDestroyFailsOffersWithDefaultError(t *testing.T) {
	m := New(Config{Capacity: 0})
	if _, _, err := m.Send(newMsg("a", 1, 0), false, sender("s", 1)); err != nil {
		t.Fatal(err)
	}
	m.Destroy(nil)
	wantEffects(t, m, "fail s: mailbox: destroyed")
}

func TestExpireRemovesOldMessages(t *testing.T) {
	m := New(Config{Capacity: -1, TTL: 100, Durable: true})
	at := func(body string, sent int64, prio uint8) {
		msg := newMsg(body, 1, prio)
		msg.SentUnixNano = sent
		mustSend(t, m, msg)
	}
	at("a", 1000, 0)
	at("b", 1050, 5)
	at("c", 1010, 0)
	at("d", 1200, 0)
	if next := m.Expire(1099); next != 1100 {
		t.Fatalf("Expire(1099) = %d, want 1100", next)
	}
	// TTL reached exactly counts as expired; removed in queue order.
	if next := m.Expire(1110); next != 1150 {
		t.Fatalf("Expire(1110) = %d, want 1150", next)
	}
	wantEffects(t, m, "deadletter a (expired)", "deadletter c (expired)")
	wantQueue(t, m, "b", "d")
	if st := m.Stats(); st.Expired != 2 || st.HeldBytes != 2 || st.OldestUnixNano != 1050 {
		t.Fatalf("stats %+v", st)
	}
	if next := m.Expire(1 << 40); next != 0 {
		t.Fatalf("Expire(all) = %d, want 0", next)
	}
	wantQueue(t, m)
}

func TestExpireLeavesLeasedAndOfferedMessages(t *testing.T) {
	m := New(Config{Capacity: 0, TTL: 10})
	leased := newMsg("leased", 1, 0)
	if err := m.Receive(oneShot("r", 1, 0), true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Send(leased, false, sender("s0", 2)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Send(newMsg("offered", 1, 0), false, sender("s", 2)); err != nil {
		t.Fatal(err)
	}
	if next := m.Expire(1000); next != 0 {
		t.Fatalf("Expire = %d", next)
	}
	wantEffects(t, m)
	wantQueue(t, m, "offered")
}

func TestExpireAdmitsBlockedSenders(t *testing.T) {
	m := New(Config{Capacity: 1, TTL: 100})
	old := newMsg("old", 1, 0)
	old.SentUnixNano = 1000
	mustSend(t, m, old)
	young := newMsg("young", 1, 0)
	young.SentUnixNano = 1150
	if _, _, err := m.Send(young, false, sender("s", 1)); err != nil {
		t.Fatal(err)
	}
	next := m.Expire(1100)
	wantEffects(t, m, "deadletter old (expired)", "sent s young seq=2")
	wantQueue(t, m, "young")
	if next != 1250 {
		t.Fatalf("Expire = %d, want 1250 (the admitted message's expiry)", next)
	}
}

// A sender may wait for space longer than the TTL: once admitted its
// message is already too old, and Expire must not leave it queued.
func TestExpireLeavesNoExpiredMessageQueued(t *testing.T) {
	m := New(Config{Capacity: 1, TTL: 100})
	for i, sent := range []int64{1000, 1010, 1020} {
		msg := newMsg(string(rune('a'+i)), 1, 0)
		msg.SentUnixNano = sent
		if _, _, err := m.Send(msg, false, sender(string(rune('a'+i)), 1)); err != nil {
			t.Fatal(err)
		}
	}
	m.Expire(2000)
	wantQueue(t, m)
	if st := m.Stats(); st.Expired != 3 || st.HeldBytes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDurableMailboxJournalsEveryChange(t *testing.T) {
	m := New(Config{Capacity: -1, Durable: true, MaxDeliveries: 2})
	var journal []string
	step := func(f func()) {
		t.Helper()
		f()
		checkInvariants(t, m)
		for _, e := range m.Effects() {
			if e.Kind >= EffEnqueued || e.Kind == EffDeadLetter {
				journal = append(journal, effString(e))
			}
		}
	}
	step(func() { mustSend(t, m, newMsg("a", 1, 0)) })
	step(func() { mustSend(t, m, newMsg("b", 1, 0)) })
	var la, lb uint64
	step(func() { la = lease(t, m, 1) })
	step(func() {
		if err := m.Nack(1, la); err != nil {
			t.Fatal(err)
		}
	})
	step(func() { la = lease(t, m, 1) })
	step(func() { lb = lease(t, m, 1) })
	step(func() {
		if err := m.Ack(1, lb); err != nil {
			t.Fatal(err)
		}
	})
	step(func() { m.Ack(1, lb) }) // stale: nothing journaled
	step(func() {
		if err := m.Nack(1, la); err != nil {
			t.Fatal(err)
		}
	})
	step(func() { mustSend(t, m, newMsg("c", 1, 0)) })
	step(func() {
		r := oneShot("auto", 2, 0)
		r.AutoAck = true
		if err := m.Receive(r, false); err != nil {
			t.Fatal(err)
		}
	})
	s := sender("s", 3)
	step(func() { m.Send(newMsg("d", 1, 0), true, s) })
	step(func() { m.CancelSend(s, ErrTimeout) })
	want := []string{
		"enqueued a seq=1",
		"enqueued b seq=2",
		"leased a lease=1",
		"returned a redeliveries=1",
		"leased a lease=2",
		"leased b lease=3",
		"removed b",
		"deadletter a (max deliveries reached)", // second nack: the removal
		"enqueued c seq=3",
		"removed c", // auto-acked
		// d, offered and withdrawn, is never journaled.
	}
	if len(journal) != len(want) {
		t.Fatalf("journal:\n%q\nwant\n%q", journal, want)
	}
	for i := range want {
		if journal[i] != want[i] {
			t.Fatalf("journal[%d] = %q, want %q\nall: %q", i, journal[i], want[i], journal)
		}
	}
	if m.HeldBytes() != 0 {
		t.Fatalf("HeldBytes = %d", m.HeldBytes())
	}
}

func TestNonDurableMailboxJournalsNothing(t *testing.T) {
	m := unbounded()
	mustSend(t, m, newMsg("a", 1, 0))
	wantEffects(t, m)
	l := lease(t, m, 1)
	if err := m.Nack(1, l); err != nil {
		t.Fatal(err)
	}
	wantEffects(t, m)
}

func TestHeldBytesBalance(t *testing.T) {
	m := New(Config{Capacity: 2})
	mustSend(t, m, newMsg("aaaa", 1, 0))      // queued 4
	mustSend(t, m, newMsg("bb", 1, 0))        // queued 2
	s := sender("s", 1)                       //
	m.Send(newMsg("cccccccc", 1, 0), true, s) // blocked 8
	if got := m.HeldBytes(); got != 14 {
		t.Fatalf("HeldBytes = %d, want 14", got)
	}
	la := lease(t, m, 1) // a leased; c admitted as an offer
	if st := m.Stats(); st.HeldBytes != 14 || st.Bytes != 10 {
		t.Fatalf("stats %+v", st)
	}
	lb := lease(t, m, 1)
	lease(t, m, 2) // takes the offer
	if m.HeldBytes() != 14 || m.Stats().Bytes != 0 {
		t.Fatalf("HeldBytes = %d", m.HeldBytes())
	}
	if err := m.Nack(1, lb); err != nil {
		t.Fatal(err)
	}
	m.Disconnect(2) // c back to the queue
	if m.HeldBytes() != 14 || m.Stats().Bytes != 10 {
		t.Fatalf("HeldBytes = %d bytes = %d", m.HeldBytes(), m.Stats().Bytes)
	}
	if err := m.Ack(1, la); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		l := lease(t, m, 3)
		if err := m.Ack(3, l); err != nil {
			t.Fatal(err)
		}
	}
	if st := m.Stats(); st.HeldBytes != 0 || st.Bytes != 0 || st.Depth != 0 || st.InFlight != 0 || st.Received != 3 {
		t.Fatalf("stats %+v, want everything gone", st)
	}
}

func TestRestoreKeepsSeqAndQueueOrder(t *testing.T) {
	m := unbounded()
	msgs := []*Message{
		{Seq: 7, Priority: 0, Body: []byte("s7")},
		{Seq: 3, Priority: 0, Body: []byte("s3")},
		{Seq: 5, Priority: 2, Body: []byte("s5")},
	}
	m.Restore(msgs, 4)
	wantEffects(t, m)
	wantQueue(t, m, "s5", "s3", "s7")
	if m.NextSeq() != 8 {
		t.Fatalf("NextSeq = %d, want 8", m.NextSeq())
	}
	if res := mustSend(t, m, newMsg("new", 1, 0)); res.Seq != 8 {
		t.Fatalf("Seq = %d", res.Seq)
	}
	if m.HeldBytes() != 9 {
		t.Fatalf("HeldBytes = %d", m.HeldBytes())
	}
}

// TestDiscardTakesBackOnlyAQueuedMessage: a message whose record could not
// be written is taken back out without a trace, unless a receiver already
// has it.
func TestDiscardTakesBackOnlyAQueuedMessage(t *testing.T) {
	m := New(Config{Capacity: 1, Durable: true})
	a := &Message{Type: 1, Body: []byte("a")}
	if _, done, err := m.Send(a, false, nil); !done || err != nil {
		t.Fatalf("send: %v %v", done, err)
	}
	blocked := &Sender{Ref: "s", Endpoint: 1}
	if _, _, err := m.Send(&Message{Type: 1, Body: []byte("b")}, false, blocked); err != nil {
		t.Fatal(err)
	}
	if !m.Discard(a) {
		t.Fatal("a queued message was not discarded")
	}
	// Discarding made room: the blocked sender is admitted.
	if st := m.Stats(); st.Depth != 1 || st.BlockedSenders != 0 || st.HeldBytes != 1 {
		t.Fatalf("after discard: %+v", st)
	}
	r := &Receiver{Ref: "r", Ident: Identity{Endpoint: 2}}
	if err := m.Receive(r, false); err != nil {
		t.Fatal(err)
	}
	var got *Message
	for _, e := range m.Effects() {
		if e.Kind == EffDeliver {
			got = e.Msg
		}
	}
	if got == nil || string(got.Body) != "b" {
		t.Fatalf("delivered %v, want b", got)
	}
	if m.Discard(got) {
		t.Fatal("a leased message was discarded")
	}
}
