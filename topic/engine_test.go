package topic

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// effStrings renders effects compactly: "deliver 1 foo.a missed=0",
// "gap 1 missed=2", "published 7", "disconnect 3".
func effStrings(effs []Effect) []string {
	var out []string
	for _, e := range effs {
		switch {
		case e.Kind == EffDeliver && e.Pub == nil:
			out = append(out, fmt.Sprintf("gap %d missed=%d", e.Sub, e.Missed))
		case e.Kind == EffDeliver:
			s := fmt.Sprintf("deliver %d %v", e.Sub, e.Pub.Payload)
			if e.Missed > 0 {
				s += fmt.Sprintf(" missed=%d", e.Missed)
			}
			out = append(out, s)
		case e.Kind == EffPublished:
			out = append(out, fmt.Sprintf("published %d", e.Token))
		case e.Kind == EffDisconnect:
			out = append(out, fmt.Sprintf("disconnect %d", e.Sub))
		}
	}
	return out
}

func expectEffects(t *testing.T, e *Engine, want ...string) {
	t.Helper()
	got := effStrings(e.Effects())
	if !slices.Equal(got, want) {
		t.Fatalf("effects:\n  got  %q\n  want %q", got, want)
	}
}

func mustSubscribe(t *testing.T, e *Engine, s Sub) {
	t.Helper()
	if err := e.Subscribe(s); err != nil {
		t.Fatal(err)
	}
}

func pub(subject, payload string) Pub { return Pub{Subject: subject, Payload: payload} }

func TestPublishGoesToEveryMatchingSubscription(t *testing.T) {
	e := NewEngine()
	mustSubscribe(t, e, Sub{ID: 1, Pattern: "foo.*"})
	mustSubscribe(t, e, Sub{ID: 2, Pattern: "foo.>"})
	mustSubscribe(t, e, Sub{ID: 3, Pattern: "bar"})
	if n, done := e.Publish(pub("foo.x", "a"), 1); n != 2 || !done {
		t.Fatalf("Publish = %d, %v; want 2, true", n, done)
	}
	expectEffects(t, e, "deliver 1 a", "deliver 2 a")
	if n, done := e.Publish(pub("nothing", "b"), 2); n != 0 || !done {
		t.Fatalf("Publish to no one = %d, %v; want 0, true", n, done)
	}
	expectEffects(t, e)
}

func TestSubscribeRefusesBadSubscriptions(t *testing.T) {
	e := NewEngine()
	mustSubscribe(t, e, Sub{ID: 1, Pattern: "a"})
	cases := []struct {
		s    Sub
		want error
	}{
		{Sub{ID: 2, Pattern: "a."}, ErrInvalidPattern},
		{Sub{ID: 2, Pattern: "a", Buffer: -1}, ErrInvalidSub},
		{Sub{ID: 2, Pattern: "a", Buffer: MaxBuffer + 1}, ErrInvalidSub},
		{Sub{ID: 2, Pattern: "a", Buffer: 4, Window: 5}, ErrInvalidSub},
		{Sub{ID: 2, Pattern: "a", Policy: 9}, ErrInvalidSub},
		{Sub{ID: 2, Pattern: "a", Queue: strings.Repeat("q", 256)}, ErrInvalidSub},
		{Sub{ID: 2, Pattern: "a", Filter: Filter{TypeMin: 5, TypeMax: 1}}, ErrInvalidFilter},
		{Sub{ID: 2, Pattern: "a", Filter: Filter{Headers: []HeaderCond{{Key: ""}}}}, ErrInvalidFilter},
		{Sub{ID: 1, Pattern: "b"}, ErrDuplicateSub},
	}
	for _, c := range cases {
		if err := e.Subscribe(c.s); !errors.Is(err, c.want) {
			t.Errorf("Subscribe(%+v) = %v, want %v", c.s, err, c.want)
		}
	}
	if got := e.Subjects(); len(got) != 1 || got[0].Subscribers != 1 {
		t.Fatalf("refused subscriptions changed the engine: %+v", got)
	}
}

func TestBlockWaitsForCreditThenPublishes(t *testing.T) {
	e := NewEngine()
	mustSubscribe(t, e, Sub{ID: 1, Pattern: "a", Buffer: 1, Policy: Block})
	e.Publish(pub("a", "m1"), 1)
	expectEffects(t, e, "deliver 1 m1")
	if n, done := e.Publish(pub("a", "m2"), 2); n != 1 || done {
		t.Fatalf("Publish into full Block = %d, %v; want 1, false", n, done)
	}
	expectEffects(t, e)
	e.AddCredit(1, 1)
	expectEffects(t, e, "deliver 1 m2", "published 2")
}

func TestDropNewestDropsArrivalsAndSendsGapNotice(t *testing.T) {
	e := NewEngine()
	mustSubscribe(t, e, Sub{ID: 1, Pattern: "a", Buffer: 1, Policy: DropNewest})
	e.Publish(pub("a", "m1"), 1)
	e.Publish(pub("a", "m2"), 2)
	e.Publish(pub("a", "m3"), 3)
	expectEffects(t, e, "deliver 1 m1")
	e.AddCredit(1, 1)
	expectEffects(t, e, "gap 1 missed=2")
	e.Publish(pub("a", "m4"), 4)
	expectEffects(t, e, "deliver 1 m4")
	if st := e.Subjects()[0]; st.Delivered != 2 || st.Dropped != 2 {
		t.Fatalf("stats %+v, want delivered 2 dropped 2", st)
	}
}

func TestDropOldestDropsHeldEventsAndTellsWhere(t *testing.T) {
	e := NewEngine()
	mustSubscribe(t, e, Sub{ID: 1, Pattern: "a", Buffer: 4, Window: 2, Policy: DropOldest})
	for i := 1; i <= 7; i++ {
		e.Publish(pub("a", fmt.Sprint("m", i)), uint64(i))
	}
	// m1, m2 in flight; m3, m4 held fill the buffer; m5, m6, m7 each
	// push out the oldest held one: m3, m4, m5.
	expectEffects(t, e, "deliver 1 m1", "deliver 1 m2")
	e.AddCredit(1, 2)
	expectEffects(t, e, "deliver 1 m6 missed=3", "deliver 1 m7")
	e.AddCredit(1, 2)
	expectEffects(t, e)
	if st, _ := e.Subscription(1); st.Dropped != 3 || st.Delivered != 4 || st.InFlight != 0 {
		t.Fatalf("SubStat %+v", st)
	}
}

func TestDisconnectRemovesTheSubscription(t *testing.T) {
	e := NewEngine()
	mustSubscribe(t, e, Sub{ID: 1, Pattern: "a", Buffer: 1, Policy: Disconnect})
	mustSubscribe(t, e, Sub{ID: 2, Pattern: "a", Buffer: 8})
	e.Publish(pub("a", "m1"), 1)
	e.Publish(pub("a", "m2"), 2)
	expectEffects(t, e, "deliver 1 m1", "deliver 2 m1", "disconnect 1", "deliver 2 m2")
	if _, ok := e.Subscription(1); ok {
		t.Fatal("disconnected subscription still there")
	}
	e.Publish(pub("a", "m3"), 3)
	expectEffects(t, e, "deliver 2 m3")
}

func TestQueueGroupSharesRoundRobinAndCountsOnce(t *testing.T) {
	e := NewEngine()
	for id := SubID(1); id <= 3; id++ {
		mustSubscribe(t, e, Sub{ID: id, Pattern: "jobs", Queue: "w"})
	}
	mustSubscribe(t, e, Sub{ID: 4, Pattern: "jobs"})
	for i := 1; i <= 4; i++ {
		if n, _ := e.Publish(pub("jobs", fmt.Sprint("j", i)), 0); n != 2 {
			t.Fatalf("matched %d, want 2 (the group once, and sub 4)", n)
		}
	}
	expectEffects(t, e,
		"deliver 1 j1", "deliver 4 j1", "deliver 2 j2", "deliver 4 j2",
		"deliver 3 j3", "deliver 4 j3", "deliver 1 j4", "deliver 4 j4")
	st := e.Subjects()
	if len(st) != 1 || st[0].Subscribers != 4 || st[0].QueueGroups != 1 {
		t.Fatalf("Subjects = %+v", st)
	}
}

func TestFilterSelectsByTypeAndHeaders(t *testing.T) {
	hdr := map[string]string{"region": "eu", "urgent": ""}
	look := func(k string) (string, bool) { v, ok := hdr[k]; return v, ok }
	cases := []struct {
		f    Filter
		typ  int64
		h    func(string) (string, bool)
		want bool
	}{
		{Filter{}, 5, nil, true},
		{Filter{TypeMin: 1, TypeMax: 3}, 3, nil, true},
		{Filter{TypeMin: 1, TypeMax: 3}, 4, nil, false},
		{Filter{TypeMin: -5, TypeMax: -1}, 0, nil, false},
		{Filter{HasType: true}, 0, nil, true},
		{Filter{HasType: true}, 1, nil, false},
		{Filter{HasType: true, TypeMin: 2, TypeMax: 2}, 2, nil, true},
		{Filter{Headers: []HeaderCond{{Key: "region", Value: "eu"}}}, 0, look, true},
		{Filter{Headers: []HeaderCond{{Key: "region", Value: "us"}}}, 0, look, false},
		{Filter{Headers: []HeaderCond{{Key: "urgent", Present: true}}}, 0, look, true},
		{Filter{Headers: []HeaderCond{{Key: "urgent", Value: ""}}}, 0, look, true},
		{Filter{Headers: []HeaderCond{{Key: "other", Present: true}}}, 0, look, false},
		{Filter{Headers: []HeaderCond{{Key: "other", Value: ""}}}, 0, look, false},
		{Filter{Headers: []HeaderCond{{Key: "region", Present: true}}}, 0, nil, false},
		{Filter{TypeMin: 1, TypeMax: 1, Headers: []HeaderCond{{Key: "region", Value: "eu"}}}, 2, look, false},
	}
	for i, c := range cases {
		if got := c.f.Matches(c.typ, c.h); got != c.want {
			t.Errorf("case %d: %+v.Matches(%d) = %v, want %v", i, c.f, c.typ, got, c.want)
		}
	}
}

func TestWithdrawStopsOnlyTheDeliveriesStillWaiting(t *testing.T) {
	e := NewEngine()
	mustSubscribe(t, e, Sub{ID: 1, Pattern: "a", Buffer: 1, Policy: Block})
	mustSubscribe(t, e, Sub{ID: 2, Pattern: "a", Buffer: 4, Policy: Block})
	e.Publish(pub("a", "m1"), 1)
	expectEffects(t, e, "deliver 1 m1", "deliver 2 m1")
	if _, done := e.Publish(pub("a", "m2"), 2); done {
		t.Fatal("m2 done although sub 1 is full")
	}
	expectEffects(t, e, "deliver 2 m2") // partial: sub 2 had room
	if !e.Waiting(2) {
		t.Fatal("m2 not waiting")
	}
	e.Withdraw(2)
	expectEffects(t, e)
	e.AddCredit(1, 1)
	expectEffects(t, e) // m2 never reaches sub 1
	if e.Waiting(2) {
		t.Fatal("m2 still waiting after Withdraw")
	}
}

func TestUnsubscribeReleasesPublicationsWaitingForIt(t *testing.T) {
	e := NewEngine()
	mustSubscribe(t, e, Sub{ID: 1, Pattern: "a", Buffer: 1, Policy: Block})
	e.Publish(pub("a", "m1"), 1)
	e.Publish(pub("a", "m2"), 2)
	e.Publish(pub("a", "m3"), 3)
	expectEffects(t, e, "deliver 1 m1")
	e.Unsubscribe(1)
	expectEffects(t, e, "published 2", "published 3")
	if len(e.Subjects()) != 0 {
		t.Fatalf("Subjects after the last unsubscribe: %+v", e.Subjects())
	}
}

func TestDropOldestInSteadyOverflowKeepsItsMemory(t *testing.T) {
	e := NewEngine()
	mustSubscribe(t, e, Sub{ID: 1, Pattern: "a", Buffer: 8, Policy: DropOldest})
	for i := range 100000 {
		e.Publish(pub("a", fmt.Sprint(i)), 0)
		e.Effects()
	}
	s := e.subs[1]
	if c := cap(s.held); c > 64 {
		t.Fatalf("held array grew to %d for a buffer of 8", c)
	}
	if st, _ := e.Subscription(1); st.Held != 4 || st.InFlight != 4 || st.Dropped != 100000-8 || st.Missed != 100000-8 {
		t.Fatalf("SubStat %+v", st)
	}
}

func TestFilterValidateAndAll(t *testing.T) {
	if !(Filter{}).All() || (Filter{HasType: true}).All() || (Filter{Headers: []HeaderCond{{Key: "k"}}}).All() {
		t.Fatal("All is wrong")
	}
	many := Filter{Headers: make([]HeaderCond, MaxHeaderConds+1)}
	for i := range many.Headers {
		many.Headers[i].Key = "k"
	}
	if err := many.Validate(); !errors.Is(err, ErrInvalidFilter) {
		t.Fatalf("%d conditions: %v", len(many.Headers), err)
	}
	if err := (Filter{HasType: true, TypeMin: 1, TypeMax: 0}).Validate(); !errors.Is(err, ErrInvalidFilter) {
		t.Fatalf("reversed range with HasType: %v", err)
	}
}
