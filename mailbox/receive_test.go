package mailbox

import (
	"errors"
	"math"
	"testing"
)

// Queue order and typed receive (msgrcv rules), from the package comment.

func unbounded() *Mailbox { return New(Config{Capacity: -1}) }

// receiveOne takes one message with selector typ without waiting and
// returns its body, or "" if ErrEmpty.
func receiveOne(t *testing.T, m *Mailbox, typ int64) string {
	t.Helper()
	r := oneShot("r", 1, typ)
	r.AutoAck = true
	err := m.Receive(r, false)
	if errors.Is(err, ErrEmpty) {
		wantEffects(t, m)
		return ""
	}
	if err != nil {
		t.Fatalf("receive %d: %v", typ, err)
	}
	effs := m.Effects()
	if len(effs) != 1 || effs[0].Kind != EffDeliver {
		t.Fatalf("receive %d: effects %s", typ, effStrings(effs))
	}
	checkInvariants(t, m)
	return string(effs[0].Msg.Body)
}

func TestQueueOrderHighestPriorityFirstFIFOWithin(t *testing.T) {
	m := unbounded()
	for _, s := range []struct {
		body string
		prio uint8
	}{{"a0", 0}, {"b5", 5}, {"c0", 0}, {"d9", 9}, {"e5", 5}, {"f255", 255}, {"g64", 64}, {"h63", 63}} {
		mustSend(t, m, newMsg(s.body, 1, s.prio))
	}
	wantQueue(t, m, "f255", "g64", "h63", "d9", "b5", "e5", "a0", "c0")
	for _, want := range []string{"f255", "g64", "h63", "d9", "b5", "e5", "a0", "c0", ""} {
		if got := receiveOne(t, m, 0); got != want {
			t.Fatalf("received %q, want %q", got, want)
		}
	}
}

func TestReceiveZeroTypeTakesFirstInQueueOrder(t *testing.T) {
	m := unbounded()
	mustSend(t, m, newMsg("a", 7, 0))
	mustSend(t, m, newMsg("b", 3, 1))
	mustSend(t, m, newMsg("c", 1, 0))
	if got := receiveOne(t, m, 0); got != "b" {
		t.Fatalf("got %q, want b (highest priority)", got)
	}
	if got := receiveOne(t, m, 0); got != "a" {
		t.Fatalf("got %q, want a (first accepted)", got)
	}
}

func TestReceivePositiveTypeTakesFirstOfThatType(t *testing.T) {
	m := unbounded()
	mustSend(t, m, newMsg("a1", 1, 0))
	mustSend(t, m, newMsg("b2", 2, 0))
	mustSend(t, m, newMsg("c2", 2, 0))
	mustSend(t, m, newMsg("d2", 2, 3)) // higher priority: first in queue order
	mustSend(t, m, newMsg("e3", 3, 0))
	for _, want := range []string{"d2", "b2", "c2", ""} {
		if got := receiveOne(t, m, 2); got != want {
			t.Fatalf("type 2: got %q, want %q", got, want)
		}
	}
	if got := receiveOne(t, m, 4); got != "" {
		t.Fatalf("type 4: got %q, want nothing", got)
	}
	wantQueue(t, m, "a1", "e3")
}

func TestReceiveNegativeTypeTakesLowestTypeAtMost(t *testing.T) {
	m := unbounded()
	mustSend(t, m, newMsg("t5", 5, 0))
	mustSend(t, m, newMsg("t3", 3, 0))
	mustSend(t, m, newMsg("t4", 4, 0))
	mustSend(t, m, newMsg("t2", 2, 0))
	mustSend(t, m, newMsg("t9", 9, 0))
	if got := receiveOne(t, m, -1); got != "" {
		t.Fatalf("-1: got %q, want nothing (no type <= 1)", got)
	}
	for _, want := range []string{"t2", "t3", "t4", "t5", ""} {
		if got := receiveOne(t, m, -5); got != want {
			t.Fatalf("-5: got %q, want %q", got, want)
		}
	}
	wantQueue(t, m, "t9")
}

func TestReceiveNegativeTypeTiesGoInQueueOrder(t *testing.T) {
	m := unbounded()
	mustSend(t, m, newMsg("x3", 3, 0))
	mustSend(t, m, newMsg("a2", 2, 0))
	mustSend(t, m, newMsg("b2", 2, 0))
	mustSend(t, m, newMsg("c2", 2, 0))
	for _, want := range []string{"a2", "b2", "c2", "x3"} {
		if got := receiveOne(t, m, -3); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// The lowest type wins over priority; priority only orders equal types.
func TestReceiveNegativeTypeLowestTypeBeatsPriority(t *testing.T) {
	m := unbounded()
	mustSend(t, m, newMsg("hi3", 3, 9))
	mustSend(t, m, newMsg("lo1", 1, 0))
	mustSend(t, m, newMsg("mid1", 1, 4))
	mustSend(t, m, newMsg("hi1", 1, 9))
	for _, want := range []string{"hi1", "mid1", "lo1", "hi3"} {
		if got := receiveOne(t, m, -3); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func TestWaitingReceiverGetsOnlyMatchingArrival(t *testing.T) {
	m := unbounded()
	pos := oneShot("pos", 1, 2)
	neg := oneShot("neg", 2, -3)
	if err := m.Receive(pos, true); err != nil {
		t.Fatal(err)
	}
	if err := m.Receive(neg, true); err != nil {
		t.Fatal(err)
	}
	mustSend(t, m, newMsg("t7", 7, 0))
	wantEffects(t, m)
	wantQueue(t, m, "t7")
	// Type 2 matches both; the first waiter gets it.
	mustSend(t, m, newMsg("t2", 2, 0))
	wantEffects(t, m, "deliver pos t2 lease=1")
	mustSend(t, m, newMsg("t3", 3, 0))
	wantEffects(t, m, "deliver neg t3 lease=2")
	wantQueue(t, m, "t7")
}

func TestCompetingReceiversServedInWaitingOrder(t *testing.T) {
	m := unbounded()
	for _, ref := range []string{"r1", "r2", "r3"} {
		if err := m.Receive(oneShot(ref, 1, 0), true); err != nil {
			t.Fatal(err)
		}
	}
	if st := m.Stats(); st.Receivers != 3 {
		t.Fatalf("Receivers = %d, want 3", st.Receivers)
	}
	for i, want := range []string{"deliver r1 a lease=1", "deliver r2 b lease=2", "deliver r3 c lease=3"} {
		mustSend(t, m, newMsg(string(rune('a'+i)), 1, 0))
		wantEffects(t, m, want)
	}
	mustSend(t, m, newMsg("d", 1, 0))
	wantEffects(t, m)
	wantQueue(t, m, "d")
}

func TestNonBlockingReceiveOnEmptyIsNotRegistered(t *testing.T) {
	m := unbounded()
	r := oneShot("r", 1, 0)
	if err := m.Receive(r, false); !errors.Is(err, ErrEmpty) {
		t.Fatalf("err = %v, want ErrEmpty", err)
	}
	mustSend(t, m, newMsg("a", 1, 0))
	wantEffects(t, m)
	wantQueue(t, m, "a")
}

func TestCancelReceiveFailsWaiterOnce(t *testing.T) {
	m := unbounded()
	r := oneShot("r", 1, 0)
	if err := m.Receive(r, true); err != nil {
		t.Fatal(err)
	}
	m.CancelReceive(r, ErrTimeout)
	wantEffects(t, m, "fail r: mailbox: timed out")
	m.CancelReceive(r, ErrTimeout)
	wantEffects(t, m)
	mustSend(t, m, newMsg("a", 1, 0))
	wantEffects(t, m)
	wantQueue(t, m, "a")
}

// msgrcv(2) on Linux reads type LONG_MIN as "lowest type of all" (its
// magnitude does not fit); it must not select nothing.
func TestReceiveMinInt64TypeTakesLowestOfAll(t *testing.T) {
	m := unbounded()
	mustSend(t, m, newMsg("big", math.MaxInt64, 0))
	mustSend(t, m, newMsg("t4", 4, 0))
	for _, want := range []string{"t4", "big", ""} {
		if got := receiveOne(t, m, math.MinInt64); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	w := oneShot("w", 1, math.MinInt64)
	if err := m.Receive(w, true); err != nil {
		t.Fatal(err)
	}
	mustSend(t, m, newMsg("t1", 1, 0))
	wantEffects(t, m, "deliver w t1 lease=1")
}
