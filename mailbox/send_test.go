package mailbox

import (
	"errors"
	"testing"
)

// Bounded mailboxes, blocked senders, rendezvous and receipts.

func TestBoundedNonBlockingSendFullChangesNothing(t *testing.T) {
	m := New(Config{Capacity: 2})
	mustSend(t, m, newMsg("a", 1, 0))
	mustSend(t, m, newMsg("b", 1, 0))
	before := m.Stats()
	next := m.NextSeq()
	_, done, err := m.Send(newMsg("c", 1, 0), false, nil)
	if done || !errors.Is(err, ErrFull) {
		t.Fatalf("done=%v err=%v, want ErrFull", done, err)
	}
	wantEffects(t, m)
	if m.Stats() != before || m.NextSeq() != next {
		t.Fatalf("a refused send changed the mailbox: %+v -> %+v", before, m.Stats())
	}
}

func TestLeasedMessagesDoNotCountTowardCapacity(t *testing.T) {
	m := New(Config{Capacity: 1})
	mustSend(t, m, newMsg("a", 1, 0))
	if err := m.Receive(oneShot("r", 1, 0), false); err != nil {
		t.Fatal(err)
	}
	mustSend(t, m, newMsg("b", 1, 0))
	if st := m.Stats(); st.Depth != 1 || st.InFlight != 1 {
		t.Fatalf("stats %+v, want 1 queued and 1 in flight", st)
	}
}

func TestBlockedSendersAdmittedInWaitOrder(t *testing.T) {
	m := New(Config{Capacity: 2})
	mustSend(t, m, newMsg("a", 1, 0))
	mustSend(t, m, newMsg("b", 1, 0))
	for _, ref := range []string{"s1", "s2", "s3"} {
		_, done, err := m.Send(newMsg(ref+"msg", 1, 0), false, sender(ref, 9))
		if done || err != nil {
			t.Fatalf("%s: done=%v err=%v, want waiting", ref, done, err)
		}
		wantEffects(t, m)
	}
	if st := m.Stats(); st.BlockedSenders != 3 || st.Depth != 2 || st.HeldBytes != 2+3*5 {
		t.Fatalf("stats %+v", st)
	}
	// An auto-acked receive frees one place: the first blocked sender enters.
	r := oneShot("r1", 1, 0)
	r.AutoAck = true
	if err := m.Receive(r, false); err != nil {
		t.Fatal(err)
	}
	wantEffects(t, m, "deliver r1 a lease=0", "sent s1 s1msg seq=3")
	wantQueue(t, m, "b", "s1msg")
	// A leased (not acked) receive frees a place too.
	if err := m.Receive(oneShot("r2", 1, 0), false); err != nil {
		t.Fatal(err)
	}
	wantEffects(t, m, "deliver r2 b lease=1", "sent s2 s2msg seq=4")
	wantQueue(t, m, "s1msg", "s2msg")
	if st := m.Stats(); st.BlockedSenders != 1 {
		t.Fatalf("BlockedSenders = %d, want 1", st.BlockedSenders)
	}
}

func TestConsumerDrainsBacklogAndBlockedSenders(t *testing.T) {
	m := New(Config{Capacity: 1})
	mustSend(t, m, newMsg("a", 1, 0))
	if _, _, err := m.Send(newMsg("b", 1, 0), false, sender("sb", 9)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Send(newMsg("c", 1, 0), false, sender("sc", 9)); err != nil {
		t.Fatal(err)
	}
	c := consumer("c", 1, 0, 10)
	c.AutoAck = true
	if err := m.Receive(c, true); err != nil {
		t.Fatal(err)
	}
	// Admitted senders whose message goes straight to a waiter complete
	// with a receipt naming it.
	wantEffects(t, m,
		"deliver c a lease=0",
		"deliver c b lease=0", "sent sb b seq=2 taken by ep1",
		"deliver c c lease=0", "sent sc c seq=3 taken by ep1")
	if c.Credit != 7 {
		t.Fatalf("credit %d, want 7", c.Credit)
	}
	if m.HeldBytes() != 0 {
		t.Fatalf("HeldBytes = %d, want 0", m.HeldBytes())
	}
}

func TestCancelBlockedSendReleasesItsBytes(t *testing.T) {
	m := New(Config{Capacity: 1})
	mustSend(t, m, newMsg("a", 1, 0))
	s := sender("s", 9)
	if _, _, err := m.Send(newMsg("bbbb", 1, 0), false, s); err != nil {
		t.Fatal(err)
	}
	if m.HeldBytes() != 5 {
		t.Fatalf("HeldBytes = %d, want 5", m.HeldBytes())
	}
	m.CancelSend(s, ErrTimeout)
	wantEffects(t, m, "fail s: mailbox: timed out")
	if m.HeldBytes() != 1 {
		t.Fatalf("HeldBytes = %d, want 1", m.HeldBytes())
	}
	m.CancelSend(s, ErrTimeout) // no longer waiting: nothing
	wantEffects(t, m)
}

func TestRendezvousWithWaitingReceiverCompletesAtOnce(t *testing.T) {
	m := New(Config{Capacity: 0})
	if err := m.Receive(oneShot("r", 7, 0), true); err != nil {
		t.Fatal(err)
	}
	res, done, err := m.Send(newMsg("a", 1, 0), false, sender("s", 9))
	if err != nil || !done || !res.Taken || res.Receipt.Endpoint != 7 || res.Seq != 1 {
		t.Fatalf("res=%+v done=%v err=%v, want taken by endpoint 7", res, done, err)
	}
	wantEffects(t, m, "deliver r a lease=1")
}

func TestRendezvousSendCompletesOnlyWhenTaken(t *testing.T) {
	m := New(Config{Capacity: 0})
	s := sender("s", 9)
	_, done, err := m.Send(newMsg("a", 1, 0), false, s)
	if done || err != nil {
		t.Fatalf("done=%v err=%v, want the send to wait", done, err)
	}
	wantEffects(t, m)
	wantQueue(t, m, "a")
	if st := m.Stats(); st.BlockedSenders != 1 || st.Depth != 1 || st.Sent != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A receiver for another type does not take it.
	if err := m.Receive(oneShot("r2", 6, 2), false); !errors.Is(err, ErrEmpty) {
		t.Fatalf("err = %v, want ErrEmpty", err)
	}
	if err := m.Receive(oneShot("r", 7, 0), false); err != nil {
		t.Fatal(err)
	}
	wantEffects(t, m, "sent s a seq=1 taken by ep7", "deliver r a lease=1")
	wantQueue(t, m)
	if st := m.Stats(); st.BlockedSenders != 0 {
		t.Fatalf("BlockedSenders = %d, want 0", st.BlockedSenders)
	}
}

func TestRendezvousNonBlockingWithoutReceiverIsFull(t *testing.T) {
	m := New(Config{Capacity: 0})
	if err := m.Receive(oneShot("r", 7, 2), true); err != nil { // wrong type
		t.Fatal(err)
	}
	before := m.Stats()
	next := m.NextSeq()
	_, done, err := m.Send(newMsg("a", 1, 0), false, nil)
	if done || !errors.Is(err, ErrFull) {
		t.Fatalf("done=%v err=%v, want ErrFull", done, err)
	}
	wantEffects(t, m)
	if m.Stats() != before || m.NextSeq() != next {
		t.Fatalf("refused rendezvous changed the mailbox: %+v -> %+v", before, m.Stats())
	}
}

func TestRendezvousOfferWithdrawnOnCancel(t *testing.T) {
	m := New(Config{Capacity: 0, Durable: true})
	s := sender("s", 9)
	if _, _, err := m.Send(newMsg("a", 1, 0), false, s); err != nil {
		t.Fatal(err)
	}
	wantEffects(t, m) // an offer is journaled only when taken
	m.CancelSend(s, ErrCanceled)
	wantEffects(t, m, "fail s: mailbox: canceled")
	wantQueue(t, m)
	if m.HeldBytes() != 0 {
		t.Fatalf("HeldBytes = %d, want 0", m.HeldBytes())
	}
	// A receiver arriving later finds nothing.
	if err := m.Receive(oneShot("r", 7, 0), false); !errors.Is(err, ErrEmpty) {
		t.Fatalf("err = %v, want ErrEmpty", err)
	}
}

func TestReceiptSendWithdrawnOnCancel(t *testing.T) {
	m := New(Config{Capacity: 3})
	mustSend(t, m, newMsg("a", 1, 0))
	s := sender("s", 9)
	_, done, err := m.Send(newMsg("b", 1, 0), true, s)
	if done || err != nil {
		t.Fatalf("done=%v err=%v, want waiting for a taker", done, err)
	}
	wantQueue(t, m, "a", "b")
	m.CancelSend(s, ErrTimeout)
	wantEffects(t, m, "fail s: mailbox: timed out")
	wantQueue(t, m, "a")
}

func TestReceiptOnBoundedMailboxWaitsForSpaceThenTaker(t *testing.T) {
	m := New(Config{Capacity: 1})
	mustSend(t, m, newMsg("a", 1, 0))
	s := sender("s", 9)
	if _, done, err := m.Send(newMsg("b", 1, 0), true, s); done || err != nil {
		t.Fatalf("done=%v err=%v", done, err)
	}
	r := oneShot("r1", 1, 0)
	r.AutoAck = true
	if err := m.Receive(r, false); err != nil {
		t.Fatal(err)
	}
	// Space opened: b enters as an offer; the send still waits.
	wantEffects(t, m, "deliver r1 a lease=0")
	wantQueue(t, m, "b")
	if err := m.Receive(oneShot("r2", 4, 0), false); err != nil {
		t.Fatal(err)
	}
	wantEffects(t, m, "sent s b seq=2 taken by ep4", "deliver r2 b lease=1")
}

func TestReceiptNonBlockingWithoutReceiverIsFull(t *testing.T) {
	m := unbounded()
	if _, done, err := m.Send(newMsg("a", 1, 0), true, nil); done || !errors.Is(err, ErrFull) {
		t.Fatalf("done=%v err=%v, want ErrFull", done, err)
	}
	wantQueue(t, m)
	if err := m.Receive(oneShot("r", 3, 0), true); err != nil {
		t.Fatal(err)
	}
	res, done, err := m.Send(newMsg("b", 1, 0), true, nil)
	if !done || err != nil || !res.Taken || res.Receipt.Endpoint != 3 {
		t.Fatalf("res=%+v done=%v err=%v", res, done, err)
	}
}

func TestCompetingConsumersRoundRobin(t *testing.T) {
	m := unbounded()
	for _, ref := range []string{"c1", "c2", "c3"} {
		c := consumer(ref, 1, 0, 100)
		c.AutoAck = true
		if err := m.Receive(c, true); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for i := range 7 {
		mustSend(t, m, newMsg(string(rune('a'+i)), 1, 0))
		got = append(got, effStrings(m.Effects())...)
	}
	want := []string{
		"deliver c1 a lease=0", "deliver c2 b lease=0", "deliver c3 c lease=0",
		"deliver c1 d lease=0", "deliver c2 e lease=0", "deliver c3 f lease=0",
		"deliver c1 g lease=0",
	}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivery %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestConsumerParkedAtZeroCreditAddCreditServesBacklog(t *testing.T) {
	m := unbounded()
	c := consumer("c", 1, 0, 2)
	if err := m.Receive(c, true); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"a", "b", "c", "d", "e"} {
		mustSend(t, m, newMsg(b, 1, 0))
	}
	if st := m.Stats(); st.Depth != 3 || st.InFlight != 2 || st.Consumers != 1 || st.Receivers != 0 {
		t.Fatalf("stats %+v, want 3 queued, 2 leased, 1 parked consumer", st)
	}
	m.AddCredit(c, 2)
	wantEffects(t, m, "deliver c c lease=3", "deliver c d lease=4")
	if c.list != &m.parked {
		t.Fatal("consumer with no credit left is not parked")
	}
	m.AddCredit(c, 5)
	wantEffects(t, m, "deliver c e lease=5")
	if c.Credit != 4 || c.list != &m.waiting {
		t.Fatalf("credit=%d waiting=%v, want 4 and waiting", c.Credit, c.list == &m.waiting)
	}
	mustSend(t, m, newMsg("f", 1, 0))
	wantEffects(t, m, "deliver c f lease=6")
	m.AddCredit(c, 1) // waiting: just more credit
	wantEffects(t, m)
	if c.Credit != 4 {
		t.Fatalf("credit %d, want 4", c.Credit)
	}
}

func TestConsumerRegisteredWithZeroCreditWaitsParked(t *testing.T) {
	m := unbounded()
	mustSend(t, m, newMsg("a", 1, 0))
	c := consumer("c", 1, 0, 0)
	if err := m.Receive(c, false); err != nil {
		t.Fatal(err)
	}
	wantEffects(t, m)
	m.AddCredit(c, 1)
	wantEffects(t, m, "deliver c a lease=1")
	m.CancelReceive(c, ErrClosed)
	wantEffects(t, m, "fail c: mailbox: closed")
	m.AddCredit(c, 1) // cancelled: nothing
	mustSend(t, m, newMsg("b", 1, 0))
	wantEffects(t, m)
}
