package mailbox

import (
	"math"
	"reflect"
	"slices"
	"testing"
)

// Browse: a read-only query in the order receivers would take messages.

// browseAll lists every message sel matches, a page of size at a time,
// and returns their bodies.
func browseAll(t *testing.T, m *Mailbox, sel int64, size int) []string {
	t.Helper()
	var out []string
	var after Position
	for pages := 0; ; pages++ {
		msgs, more, err := m.Browse(sel, after, size, nil)
		if err != nil {
			t.Fatalf("browse %d: %v", sel, err)
		}
		if len(msgs) > size {
			t.Fatalf("browse %d: page of %d, limit %d", sel, len(msgs), size)
		}
		for _, msg := range msgs {
			out = append(out, string(msg.Body))
		}
		if !more {
			return out
		}
		if len(msgs) == 0 || pages > 1000 {
			t.Fatalf("browse %d: more with an empty page", sel)
		}
		after = PositionOf(msgs[len(msgs)-1])
	}
}

// takeAll receives with sel until the mailbox has nothing for it.
func takeAll(t *testing.T, m *Mailbox, sel int64) []string {
	t.Helper()
	var out []string
	for {
		got := receiveOne(t, m, sel)
		if got == "" {
			return out
		}
		out = append(out, got)
	}
}

func mixedMailbox(t *testing.T) *Mailbox {
	m := unbounded()
	for _, s := range []struct {
		body string
		typ  int64
		prio uint8
	}{{"a", 3, 0}, {"b", 1, 5}, {"c", 2, 0}, {"d", 1, 0}, {"e", 5, 9}, {"f", 2, 5}, {"g", 3, 9}, {"h", -4, 0}} {
		mustSend(t, m, newMsg(s.body, s.typ, s.prio))
	}
	return m
}

func TestBrowseListsInTheOrderReceiversTakeThem(t *testing.T) {
	for _, sel := range []int64{0, 1, 2, 3, 4, -1, -2, -3, -5, math.MinInt64} {
		for _, size := range []int{1, 2, 3, 256} {
			m := mixedMailbox(t)
			listed := browseAll(t, m, sel, size)
			taken := takeAll(t, m, sel)
			if !slices.Equal(listed, taken) {
				t.Errorf("selector %d, pages of %d: browse %v, receivers took %v", sel, size, listed, taken)
			}
		}
	}
}

func TestBrowseNegativeTypeListsLowestTypeFirstQueueOrderWithin(t *testing.T) {
	m := mixedMailbox(t)
	if got, want := browseAll(t, m, -3, 16), []string{"h", "b", "d", "f", "c", "g", "a"}; !slices.Equal(got, want) {
		t.Fatalf("browse -3: %v, want %v", got, want)
	}
}

func TestBrowseChangesNothing(t *testing.T) {
	m := New(Config{Capacity: -1, MaxDeliveries: 2})
	mustSend(t, m, newMsg("a", 1, 0))
	mustSend(t, m, newMsg("b", 1, 0))
	before, effs := m.Stats(), effStrings(m.Effects())
	for range 5 {
		msgs, _, err := m.Browse(0, Position{}, 16, nil)
		if err != nil || len(msgs) != 2 {
			t.Fatalf("browse: %d messages, %v", len(msgs), err)
		}
		if _, leased := msgs[0].Leased(); leased || msgs[0].Redeliveries != 0 {
			t.Fatal("a browsed message is leased or counted as redelivered")
		}
	}
	if after := m.Stats(); !reflect.DeepEqual(before, after) {
		t.Fatalf("stats changed: %+v -> %+v", before, after)
	}
	if got := effStrings(m.Effects()); !slices.Equal(got, effs) {
		t.Fatalf("effects changed: %v -> %v", effs, got)
	}
	checkInvariants(t, m)
	// Browsing is not a delivery: the first receive is the first delivery.
	r := oneShot("r", 1, 0)
	if err := m.Receive(r, false); err != nil {
		t.Fatal(err)
	}
	if e := m.Effects()[0]; e.Msg.Redeliveries != 0 {
		t.Fatalf("first receive after browsing: redeliveries %d", e.Msg.Redeliveries)
	}
}

func TestBrowseSkipsLeasedAndOfferedMessages(t *testing.T) {
	m := unbounded()
	mustSend(t, m, newMsg("a", 1, 0))
	mustSend(t, m, newMsg("b", 1, 0))
	if err := m.Receive(oneShot("r", 1, 0), false); err != nil {
		t.Fatal(err)
	}
	lease := deliveredLease(t, m)
	if _, done, err := m.Send(newMsg("offer", 1, 0), true, sender("s", 2)); done || err != nil {
		t.Fatalf("receipted send: done=%v err=%v", done, err)
	}
	if got := browseAll(t, m, 0, 16); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("browse with a in flight and an offer: %v, want [b]", got)
	}
	if err := m.Nack(1, lease); err != nil {
		t.Fatal(err)
	}
	msgs, _, _ := m.Browse(0, Position{}, 16, nil)
	if len(msgs) != 2 || string(msgs[0].Body) != "a" || msgs[0].Redeliveries != 1 {
		t.Fatalf("after the nack: %d messages, first %q", len(msgs), msgs[0].Body)
	}
}

func TestBrowseContinuesAfterACursorWhoseMessageLeft(t *testing.T) {
	m := mixedMailbox(t)
	first, more, _ := m.Browse(0, Position{}, 3, nil)
	if !more || len(first) != 3 {
		t.Fatalf("first page: %d, more %v", len(first), more)
	}
	after := PositionOf(first[2])
	receiveOne(t, m, 0)
	receiveOne(t, m, 0)
	receiveOne(t, m, 0) // the whole first page is gone, the cursor's message with it
	rest := browseAll(t, m, 0, 16)
	msgs, _, _ := m.Browse(0, after, 16, nil)
	var got []string
	for _, msg := range msgs {
		got = append(got, string(msg.Body))
	}
	if !slices.Equal(got, rest) {
		t.Fatalf("after the cursor: %v, want %v", got, rest)
	}
}

func TestBrowseLimitAndDestroyed(t *testing.T) {
	m := mixedMailbox(t)
	if msgs, more, err := m.Browse(0, Position{}, 0, nil); len(msgs) != 0 || more || err != nil {
		t.Fatalf("limit 0: %d, %v, %v", len(msgs), more, err)
	}
	if msgs, more, _ := m.Browse(0, Position{}, 8, nil); len(msgs) != 8 || more {
		t.Fatalf("limit = depth: %d, more %v", len(msgs), more)
	}
	m.Destroy(nil)
	if _, _, err := m.Browse(0, Position{}, 8, nil); err != ErrDestroyed {
		t.Fatalf("browse destroyed: %v", err)
	}
}
