package mailbox

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func urgentMsg(body string, typ int64) *Message {
	m := newMsg(body, typ, 0)
	m.Urgent = true
	return m
}

func from(msg *Message, uid uint32) *Message {
	msg.Sender = Identity{Kind: 1, UID: uid, Endpoint: uint64(uid)}
	return msg
}

// TestUrgentIsDeliveredAheadOfEveryPriorityFIFOAmongUrgent.
func TestUrgentIsDeliveredAheadOfEveryPriorityFIFOAmongUrgent(t *testing.T) {
	m := New(Config{Capacity: -1})
	mustSend(t, m, newMsg("high", 1, 255))
	mustSend(t, m, urgentMsg("u1", 1))
	mustSend(t, m, newMsg("low", 1, 0))
	mustSend(t, m, urgentMsg("u2", 1))
	wantQueue(t, m, "u1", "u2", "high", "low")
	for _, want := range []string{"u1", "u2", "high", "low"} {
		r := oneShot("r", 1, 0)
		if err := m.Receive(r, false); err != nil {
			t.Fatal(err)
		}
		if got := string(m.Effects()[0].Msg.Body); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
		checkInvariants(t, m)
	}
}

// TestUrgentTypedReceiveRulesStillApply: a typed receiver takes an urgent
// message only if its type matches; for a negative selector the lowest
// matching urgent type beats a lower type that is not urgent.
func TestUrgentTypedReceiveRulesStillApply(t *testing.T) {
	m := New(Config{Capacity: -1})
	mustSend(t, m, newMsg("n1", 1, 0))
	mustSend(t, m, urgentMsg("u5", 5))
	mustSend(t, m, urgentMsg("u3", 3))
	mustSend(t, m, newMsg("n2", 2, 9))
	take := func(sel int64, want string) {
		t.Helper()
		r := oneShot("r", 1, sel)
		if err := m.Receive(r, false); err != nil {
			t.Fatalf("type %d: %v", sel, err)
		}
		if got := string(m.Effects()[0].Msg.Body); got != want {
			t.Fatalf("type %d got %s, want %s", sel, got, want)
		}
	}
	take(2, "n2")  // exact type: the urgent ones do not match
	take(-4, "u3") // lowest urgent type <= 4, ahead of n1 (type 1)
	take(-4, "n1") // no urgent type <= 4 left
	take(0, "u5")
}

// TestUrgentEntersAFullMailboxWithinTheReserve: a full bounded mailbox
// still takes UrgentReserve urgent messages; the next one waits, and is
// admitted ahead of ordinary blocked senders when an urgent one leaves.
func TestUrgentEntersAFullMailboxWithinTheReserve(t *testing.T) {
	m := New(Config{Capacity: 2, MaxBytes: 4})
	mustSend(t, m, newMsg("a", 1, 0))
	mustSend(t, m, newMsg("b", 1, 0))
	if _, _, err := m.Send(newMsg("c", 1, 0), false, nil); !errors.Is(err, ErrFull) {
		t.Fatalf("ordinary send to a full mailbox: %v", err)
	}
	for i := range UrgentReserve {
		mustSend(t, m, urgentMsg(fmt.Sprint("u", i), 1))
	}
	if _, _, err := m.Send(urgentMsg("late", 1), false, nil); !errors.Is(err, ErrFull) {
		t.Fatalf("urgent send past the reserve: %v", err)
	}
	if _, done, err := m.Send(newMsg("ord", 1, 0), false, sender("s-ord", 1)); err != nil || done {
		t.Fatal(done, err)
	}
	if _, done, err := m.Send(urgentMsg("late", 1), false, sender("s-late", 2)); err != nil || done {
		t.Fatal(done, err)
	}
	checkInvariants(t, m)
	if err := m.Receive(oneShot("r", 3, 0), false); err != nil {
		t.Fatal(err)
	}
	// u0 goes; late (urgent) gets in past ord, which still waits.
	wantEffects(t, m, "deliver r u0 lease=1", "sent s-late late seq=67")
	if st := m.Stats(); st.BlockedSenders != 1 || st.Depth != 2+UrgentReserve {
		t.Fatalf("stats %+v", st)
	}
}

// TestUrgentReturnsToTheUrgentLane: a nacked urgent message comes back
// ahead of the rest.
func TestUrgentReturnsToTheUrgentLane(t *testing.T) {
	m := New(Config{Capacity: -1})
	mustSend(t, m, urgentMsg("u", 1))
	mustSend(t, m, newMsg("n", 1, 5))
	if err := m.Receive(oneShot("r", 1, 0), false); err != nil {
		t.Fatal(err)
	}
	lease := deliveredLease(t, m)
	if err := m.Nack(1, lease); err != nil {
		t.Fatal(err)
	}
	wantQueue(t, m, "u", "n")
}

// TestWithdrawIDsSaysWhatBecameOfEachMessage: queued is withdrawn
// (journaled), leased is in progress with its holder, acked is gone, an id
// never given is unknown; a duplicate id is gone the second time.
func TestWithdrawIDsSaysWhatBecameOfEachMessage(t *testing.T) {
	m := New(Config{Capacity: -1, Durable: true})
	for _, b := range []string{"a", "b", "c"} {
		mustSend(t, m, from(newMsg(b, 1, 0), 1000))
	}
	if err := m.Receive(oneShot("r", 7, 0), false); err != nil { // a
		t.Fatal(err)
	}
	leaseA := deliveredLease(t, m)
	if err := m.Receive(oneShot("r", 7, 0), false); err != nil { // b
		t.Fatal(err)
	}
	if err := m.Ack(7, deliveredLease(t, m)); err != nil {
		t.Fatal(err)
	}
	me := Identity{Kind: 1, UID: 1000, Endpoint: 42}
	got, err := m.WithdrawIDs(me, false, []uint64{3, 1, 2, 9, 3, 0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Withdrawal{
		{Seq: 3, Outcome: Withdrawn},
		{Seq: 1, Outcome: InProgress, Holder: Identity{Endpoint: 7}, Lease: leaseA},
		{Seq: 2, Outcome: Gone},
		{Seq: 9, Outcome: Unknown},
		{Seq: 3, Outcome: Gone},
		{Seq: 0, Outcome: Unknown},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("outcomes\n got  %+v\n want %+v", got, want)
	}
	wantEffects(t, m, "removed c")
	wantQueue(t, m)
}

// TestWithdrawIDsOfAnotherSendersMessageIsRefusedWhole: one id naming a
// message someone else sent refuses the request and changes nothing; the
// owner (anySender) may.
func TestWithdrawIDsOfAnotherSendersMessageIsRefusedWhole(t *testing.T) {
	m := New(Config{Capacity: -1})
	mustSend(t, m, from(newMsg("mine", 1, 0), 1000))
	mustSend(t, m, from(newMsg("theirs", 1, 0), 2000))
	me := Identity{Kind: 1, UID: 1000, Endpoint: 5}
	if _, err := m.WithdrawIDs(me, false, []uint64{1, 2}, nil); !errors.Is(err, ErrNotSender) {
		t.Fatalf("err %v, want ErrNotSender", err)
	}
	wantEffects(t, m)
	wantQueue(t, m, "mine", "theirs")
	// Another process of the same uid is the same sender.
	if got, err := m.WithdrawIDs(Identity{Kind: 1, UID: 2000, Endpoint: 6}, false, []uint64{2}, nil); err != nil || got[0].Outcome != Withdrawn {
		t.Fatalf("same uid: %+v %v", got, err)
	}
	if got, err := m.WithdrawIDs(me, true, []uint64{1}, nil); err != nil || got[0].Outcome != Withdrawn {
		t.Fatalf("owner: %+v %v", got, err)
	}
}

// TestWithdrawMatchingTakesOnlyTheSendersMessagesInIdOrder, a page at a
// time, and says when more match.
func TestWithdrawMatchingTakesOnlyTheSendersMessagesInIdOrder(t *testing.T) {
	m := New(Config{Capacity: -1})
	mustSend(t, m, from(newMsg("x1", 7, 0), 1))
	mustSend(t, m, from(newMsg("y", 7, 0), 2))
	mustSend(t, m, from(urgentMsg("x2", 7), 1))
	mustSend(t, m, from(newMsg("x3", 7, 9), 1))
	mustSend(t, m, from(newMsg("z", 8, 0), 1))
	me := Identity{Kind: 1, UID: 1}
	is7 := func(msg *Message) bool { return msg.Type == 7 }
	got, more, err := m.WithdrawMatching(me, false, 0, 2, is7, nil)
	if err != nil || !more || !slices.Equal(got, []Withdrawal{{Seq: 1, Outcome: Withdrawn}, {Seq: 3, Outcome: Withdrawn}}) {
		t.Fatalf("first page %+v more=%v err=%v", got, more, err)
	}
	got, more, err = m.WithdrawMatching(me, false, 3, 2, is7, nil)
	if err != nil || more || !slices.Equal(got, []Withdrawal{{Seq: 4, Outcome: Withdrawn}}) {
		t.Fatalf("second page %+v more=%v err=%v", got, more, err)
	}
	wantQueue(t, m, "y", "z")
}

// TestWithdrawOfAnOfferFailsItsWaitingSend: a rendezvous offer withdrawn
// ends its sender's send with ErrCanceled and is not journaled.
func TestWithdrawOfAnOfferFailsItsWaitingSend(t *testing.T) {
	m := New(Config{Capacity: 0, Durable: true})
	msg := from(newMsg("offer", 1, 0), 1)
	if _, done, err := m.Send(msg, false, sender("s", 1)); err != nil || done {
		t.Fatal(done, err)
	}
	got, err := m.WithdrawIDs(Identity{Kind: 1, UID: 1}, false, []uint64{msg.Seq}, nil)
	if err != nil || got[0].Outcome != Withdrawn {
		t.Fatalf("%+v %v", got, err)
	}
	wantEffects(t, m, "fail s: mailbox: canceled")
}

// TestBrowseListsUrgentMessagesInTheirPriorityPlace.
func TestBrowseListsUrgentMessagesInTheirPriorityPlace(t *testing.T) {
	m := New(Config{Capacity: -1})
	mustSend(t, m, newMsg("p0", 1, 0))
	mustSend(t, m, newMsg("p5", 1, 5))
	u := newMsg("u5", 1, 5)
	u.Urgent = true
	mustSend(t, m, u)
	mustSend(t, m, newMsg("p5b", 1, 5))
	var got []string
	var after Position
	for {
		page, more, err := m.Browse(0, after, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range page {
			got = append(got, string(msg.Body))
		}
		if !more {
			break
		}
		after = PositionOf(page[len(page)-1])
	}
	if want := []string{"p5", "u5", "p5b", "p0"}; !slices.Equal(got, want) {
		t.Fatalf("browse %q, want %q", got, want)
	}
}
