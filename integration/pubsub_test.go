package integration_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
)

// Publish/subscribe through the real broker over real Unix sockets:
// fan-out, queue groups, wildcard routing, every overflow policy with its
// gap notices, filters evaluated in the broker, durable bindings across a
// restart, claims against another uid, and $SYS events.

func subscribe(t *testing.T, c *postbox.Client, pattern string, opts ...postbox.SubscribeOption) *postbox.Subscription {
	t.Helper()
	s, err := c.Subscribe(ctxT(t), pattern, opts...)
	if err != nil {
		t.Fatalf("subscribe %q: %v", pattern, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func publish(t *testing.T, c *postbox.Client, subject, body string, opts ...postbox.PublishOption) int {
	t.Helper()
	n, err := c.Publish(ctxT(t), subject, []byte(body), opts...)
	if err != nil {
		t.Fatalf("publish %q to %q: %v", body, subject, err)
	}
	return n
}

func next(t *testing.T, s *postbox.Subscription) *postbox.Event {
	t.Helper()
	ev, err := s.Next(ctxT(t))
	if err != nil {
		t.Fatalf("next event: %v", err)
	}
	return ev
}

// nothingMore checks that no event is waiting: a PING round trip on the
// subscriber's own connection orders after every EVENT the broker queued
// for it before.
func nothingMore(t *testing.T, c *postbox.Client, s *postbox.Subscription) {
	t.Helper()
	if err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if ev, err := s.Next(ctx); err == nil {
		t.Fatalf("unexpected event %q on %q (missed %d, gap %v)", ev.Body, ev.Subject, ev.Missed, ev.Gap)
	}
}

func TestPubSubFansOutToEverySubscriberInOrder(t *testing.T) {
	b := start(t, nil)
	pub := b.Dial(t)
	var subs []*postbox.Subscription
	var clients []*postbox.Client
	for i := range 4 {
		c := b.Dial(t)
		clients = append(clients, c)
		subs = append(subs, subscribe(t, c, []string{"orders.eu.created", "orders.*.created", "orders.>", ">"}[i]))
	}
	for i := range 20 {
		if n := publish(t, pub, "orders.eu.created", fmt.Sprint(i), postbox.Type(3), postbox.WithHeader("k", "v")); n != 4 {
			t.Fatalf("publication %d matched %d subscriptions, want 4", i, n)
		}
	}
	self := pub.Identity()
	for si, s := range subs {
		for i := range 20 {
			ev := next(t, s)
			if string(ev.Body) != fmt.Sprint(i) || ev.Subject != "orders.eu.created" || ev.Type != 3 || ev.Missed != 0 {
				t.Fatalf("subscriber %d event %d: %+v", si, i, ev)
			}
			if ev.Sender.UID != self.UID || ev.Sender.PID != self.PID || ev.Sender.Endpoint != self.Endpoint {
				t.Fatalf("sender %+v, want the publisher %+v", ev.Sender, self)
			}
			if ev.Header().Get("k") != "v" {
				t.Fatalf("headers: %v", ev.Header())
			}
		}
		nothingMore(t, clients[si], s)
	}
}

func TestPubSubQueueGroupSharesOneCopy(t *testing.T) {
	b := start(t, nil)
	pub := b.Dial(t)
	var members []*postbox.Subscription
	for range 3 {
		members = append(members, subscribe(t, b.Dial(t), "jobs.*", postbox.Queue("workers")))
	}
	watcherC := b.Dial(t)
	watcher := subscribe(t, watcherC, "jobs.*")
	const n = 30
	for i := range n {
		if got := publish(t, pub, "jobs.build", fmt.Sprint(i)); got != 2 {
			t.Fatalf("matched %d, want 2 (the group counts once)", got)
		}
	}
	for i := range n {
		if ev := next(t, watcher); string(ev.Body) != fmt.Sprint(i) {
			t.Fatalf("watcher event %d: %q", i, ev.Body)
		}
	}
	seen := map[string]bool{}
	total := 0
	for mi, m := range members {
		got := 0
		for {
			ctx, cancel := context.WithTimeout(ctxT(t), 200*time.Millisecond)
			ev, err := m.Next(ctx)
			cancel()
			if err != nil {
				break
			}
			if seen[string(ev.Body)] {
				t.Fatalf("publication %q reached two members", ev.Body)
			}
			seen[string(ev.Body)] = true
			got++
		}
		if got == 0 {
			t.Fatalf("member %d got nothing: round robin shares", mi)
		}
		total += got
	}
	if total != n {
		t.Fatalf("the group got %d of %d publications", total, n)
	}
}

func TestPubSubWildcardRoutingThroughTheBroker(t *testing.T) {
	b := start(t, nil)
	pub := b.Dial(t)
	patterns := []string{"a.*", "a.>", ">", "a.b.c", "x.*", "*.b.*"}
	subs := map[string]*postbox.Subscription{}
	conns := map[string]*postbox.Client{}
	for _, p := range patterns {
		conns[p] = b.Dial(t)
		subs[p] = subscribe(t, conns[p], p)
	}
	cases := []struct {
		subject string
		want    []string
	}{
		{"a", []string{">"}},
		{"a.b", []string{"a.*", "a.>", ">"}},
		{"a.b.c", []string{"a.>", ">", "a.b.c", "*.b.*"}},
		{"x.b.y", []string{">", "*.b.*"}},
		{"x.y", []string{">", "x.*"}},
		{"a.b.c.d", []string{"a.>", ">"}},
	}
	for _, tc := range cases {
		if n := publish(t, pub, tc.subject, tc.subject); n != len(tc.want) {
			t.Fatalf("%q matched %d, want %d (%v)", tc.subject, n, len(tc.want), tc.want)
		}
		for _, p := range tc.want {
			if ev := next(t, subs[p]); ev.Subject != tc.subject {
				t.Fatalf("%q got %q, want %q", p, ev.Subject, tc.subject)
			}
		}
	}
	for _, p := range patterns {
		nothingMore(t, conns[p], subs[p])
	}
}

func TestPubSubDropNewestCountsTheGapOnTheNextEvent(t *testing.T) {
	b := start(t, nil)
	pub := b.Dial(t)
	sc := b.Dial(t)
	s := subscribe(t, sc, "m", postbox.Buffer(4), postbox.WithPolicy(postbox.PolicyDropNewest))
	for i := range 10 {
		publish(t, pub, "m", fmt.Sprint(i)) // never waits
	}
	for i := range 4 {
		if ev := next(t, s); string(ev.Body) != fmt.Sprint(i) || ev.Missed != 0 {
			t.Fatalf("event %d: %q missed %d", i, ev.Body, ev.Missed)
		}
	}
	// 4..9 were dropped; with nothing after them, the notice comes alone.
	if ev := next(t, s); !ev.Gap || ev.Missed != 6 {
		t.Fatalf("want a gap notice of 6, got %+v", ev)
	}
	nothingMore(t, sc, s)
	if s.Missed() != 6 {
		t.Fatalf("Missed() = %d", s.Missed())
	}
}

func TestPubSubDropNewestSendsAGapNoticeAloneWhenNothingFollows(t *testing.T) {
	b := start(t, nil)
	pub := b.Dial(t)
	sc := b.Dial(t)
	s := subscribe(t, sc, "m", postbox.Buffer(1), postbox.WithPolicy(postbox.PolicyDropNewest))
	for i := range 3 {
		publish(t, pub, "m", fmt.Sprint(i))
	}
	if ev := next(t, s); string(ev.Body) != "0" {
		t.Fatalf("first event %q", ev.Body)
	}
	ev := next(t, s) // Next credited the first one back: the notice of 1 and 2 comes alone
	if !ev.Gap || ev.Missed != 2 || ev.Body != nil {
		t.Fatalf("want a gap notice of 2, got %+v", ev)
	}
	publish(t, pub, "m", "3")
	if ev := next(t, s); string(ev.Body) != "3" || ev.Missed != 0 {
		t.Fatalf("after the notice: %q missed %d", ev.Body, ev.Missed)
	}
	if s.Missed() != 2 {
		t.Fatalf("Missed() = %d", s.Missed())
	}
}

func TestPubSubDropOldestKeepsTheNewestAndSaysWhatWasLost(t *testing.T) {
	b := start(t, nil)
	pub := b.Dial(t)
	s := subscribe(t, b.Dial(t), "m", postbox.Buffer(4), postbox.WithPolicy(postbox.PolicyDropOldest))
	for i := range 10 {
		publish(t, pub, "m", fmt.Sprint(i))
	}
	// A window of 2 reached the client at once; 2 more were held in the
	// broker, where each new publication pushed out the oldest.
	var got []string
	var missed []uint64
	for range 4 {
		ev := next(t, s)
		got, missed = append(got, string(ev.Body)), append(missed, ev.Missed)
	}
	if fmt.Sprint(got) != "[0 1 8 9]" || fmt.Sprint(missed) != "[0 0 6 0]" {
		t.Fatalf("events %v missed %v, want [0 1 8 9] and [0 0 6 0]", got, missed)
	}
}

func TestPubSubBlockMakesThePublisherWaitForRoom(t *testing.T) {
	b := start(t, nil)
	pub := b.Dial(t)
	s := subscribe(t, b.Dial(t), "m", postbox.Buffer(2), postbox.WithPolicy(postbox.PolicyBlock))
	publish(t, pub, "m", "0")
	publish(t, pub, "m", "1")
	// Full: a publication with a deadline gives up with ErrTimeout.
	ctx, cancel := context.WithTimeout(ctxT(t), 200*time.Millisecond)
	_, err := pub.Publish(ctx, "m", []byte("lost"))
	cancel()
	if !errors.Is(err, postbox.ErrTimeout) {
		t.Fatalf("publish to a full block subscriber: %v, want ErrTimeout", err)
	}
	// One that waits goes on once the subscriber takes an event.
	done := make(chan error, 1)
	go func() {
		_, err := pub.Publish(ctxT(t), "m", []byte("2"))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("publish returned %v before there was room", err)
	case <-time.After(50 * time.Millisecond):
	}
	for i := range 3 {
		if ev := next(t, s); string(ev.Body) != fmt.Sprint(i) || ev.Missed != 0 {
			t.Fatalf("event %d: %q (missed %d)", i, ev.Body, ev.Missed)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("waiting publish: %v", err)
	}
}

func TestPubSubDisconnectPolicyEndsTheSubscriptionWithErrLimit(t *testing.T) {
	b := start(t, nil)
	pub := b.Dial(t)
	s := subscribe(t, b.Dial(t), "m", postbox.Buffer(2), postbox.WithPolicy(postbox.PolicyDisconnect))
	for i := range 3 {
		publish(t, pub, "m", fmt.Sprint(i))
	}
	for i := range 2 {
		if ev := next(t, s); string(ev.Body) != fmt.Sprint(i) {
			t.Fatalf("event %d: %q", i, ev.Body)
		}
	}
	if _, err := s.Next(ctxT(t)); !errors.Is(err, postbox.ErrLimit) {
		t.Fatalf("after overflowing: %v, want ErrLimit", err)
	}
	if n := publish(t, pub, "m", "later"); n != 0 {
		t.Fatalf("the ended subscription still matched: %d", n)
	}
}

func TestPubSubSubscriptionsEndWithTheirConnection(t *testing.T) {
	b := start(t, nil)
	pub := b.Dial(t)
	sc := b.Dial(t)
	subscribe(t, sc, "m", postbox.Buffer(1), postbox.WithPolicy(postbox.PolicyBlock))
	publish(t, pub, "m", "fills it")
	done := make(chan error, 1)
	go func() {
		_, err := pub.Publish(ctxT(t), "m", []byte("waits"))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	sc.Close()
	if err := <-done; err != nil {
		t.Fatalf("a publisher waiting for a subscriber that went away: %v", err)
	}
	if n := publish(t, pub, "m", "x"); n != 0 {
		t.Fatalf("a closed connection's subscription matched: %d", n)
	}
}

// countingConn counts the bytes a client reads from the broker.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestPubSubFiltersKeepUnwantedPublicationsOffTheSocket(t *testing.T) {
	b := start(t, nil)
	pub := b.Dial(t)
	nc, err := net.Dial("unix", b.Socket)
	if err != nil {
		t.Fatal(err)
	}
	var read atomic.Int64
	sc, err := postbox.NewClient(ctxT(t), countingConn{nc, &read})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	s := subscribe(t, sc, "sensor.>", postbox.FilterHeader("region", "eu"), postbox.FilterType(2, 5),
		postbox.FilterHeaderPresent("trace"))
	if err := sc.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	before := read.Load()
	body := make([]byte, 1024)
	wanted := 0
	for i := range 100 {
		region, typ := []string{"eu", "us"}[i%2], int64(1+i%6)
		opts := []postbox.PublishOption{postbox.WithHeader("region", region), postbox.Type(typ)}
		if i%5 != 0 {
			opts = append(opts, postbox.WithHeader("trace", "1"))
		}
		if region == "eu" && typ >= 2 && typ <= 5 && i%5 != 0 {
			wanted++
		}
		publish(t, pub, "sensor.t", string(body), opts...)
	}
	for range wanted {
		ev := next(t, s)
		if ev.Header().Get("region") != "eu" || ev.Type < 2 || ev.Type > 5 || ev.Header().Get("trace") == "" {
			t.Fatalf("a filtered-out publication arrived: type %d headers %v", ev.Type, ev.Header())
		}
	}
	nothingMore(t, sc, s)
	// Only the wanted events crossed the socket (plus a PING reply and
	// credit-free framing): far less than 100 KiB of bodies.
	got := read.Load() - before
	if limit := int64(wanted*(1024+200) + 1024); got > limit {
		t.Fatalf("the subscriber read %d bytes for %d wanted events of 1 KiB (limit %d): filtered ones crossed the socket", got, wanted, limit)
	}
	if wanted == 0 || wanted > 30 {
		t.Fatalf("test table: %d wanted", wanted)
	}
}

func TestPubSubCloseEndsTheStreamAndNextFails(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	s := subscribe(t, c, "a.b")
	evs := s.Events()
	publish(t, b.Dial(t), "a.b", "one")
	if ev := <-evs; string(ev.Body) != "one" {
		t.Fatalf("Events: %q", ev.Body)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-evs; ok {
		t.Fatal("Events still open after Close")
	}
	if _, err := s.Next(ctxT(t)); !errors.Is(err, postbox.ErrCanceled) {
		t.Fatalf("Next after Close: %v", err)
	}
	if n := publish(t, b.Dial(t), "a.b", "two"); n != 0 {
		t.Fatalf("a closed subscription matched: %d", n)
	}
}

func TestPubSubRefusesBadInputWithNamedErrors(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	ctx := ctxT(t)
	for _, tc := range []struct {
		what string
		err  error
	}{
		{"publish to a pattern", func() error { _, err := c.Publish(ctx, "a.*", nil); return err }()},
		{"publish to an empty token", func() error { _, err := c.Publish(ctx, "a..b", nil); return err }()},
		{"publish to $SYS", func() error { _, err := c.Publish(ctx, "$SYS.conn.opened", nil); return err }()},
		{"subscribe to a bad pattern", func() error { _, err := c.Subscribe(ctx, "a.>.b"); return err }()},
		{"subscribe with buffer 0", func() error { _, err := c.Subscribe(ctx, "a", postbox.Buffer(0)); return err }()},
		{"subscribe with a reversed type range", func() error { _, err := c.Subscribe(ctx, "a", postbox.FilterType(5, 2)); return err }()},
		{"bind to a missing mailbox", c.Bind(ctx, "a.>", "nope")},
		{"unbind what is not bound", c.Unbind(ctx, "a.>", "nope")},
	} {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.what)
			continue
		}
		if !errors.Is(tc.err, postbox.ErrInvalid) && !errors.Is(tc.err, postbox.ErrPermission) && !errors.Is(tc.err, postbox.ErrNotFound) {
			t.Errorf("%s: %v is not a named error", tc.what, tc.err)
		}
	}
	// The connection is fine afterwards.
	s := subscribe(t, c, "ok")
	publish(t, c, "ok", "still works")
	if ev := next(t, s); string(ev.Body) != "still works" {
		t.Fatal(ev.Body)
	}
}
