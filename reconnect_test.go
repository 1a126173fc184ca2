package postbox_test

import (
	"context"
	"errors"
	"maps"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// TestReconnectOverTCPAfterTheNetworkBreaks: a client dialling TCP
// (WithDialer) loses its connection to a network failure; it dials
// again, gets a new endpoint, its consumer resumes, and the message it
// held unacked comes back redelivered while its old lease is stale.
func TestReconnectOverTCPAfterTheNetworkBreaks(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	p := startStallingProxy(t, b.ServeTCP(t))
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	c, reconnected := dialReconnecting(t, ctx, p.addr)
	local := b.Dial(t) // a sender on the Unix socket, unaffected
	jobs, err := local.Create(ctx, "jobs", postbox.Mode(0o666))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := c.Mailbox("jobs").Consume(ctx, postbox.Prefetch(4))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	if _, err := jobs.Send(ctx, []byte("one")); err != nil {
		t.Fatal(err)
	}
	held, err := cons.Next(ctx)
	if err != nil || string(held.Body) != "one" {
		t.Fatalf("before the break: %v %v", held, err)
	}
	old := c.Identity()

	p.cut()
	id := awaitReconnect(t, reconnected)
	if id.Endpoint == old.Endpoint || c.Inbox().Name() == postbox.InboxName(old.Endpoint) {
		t.Fatalf("same endpoint %d after reconnecting", id.Endpoint)
	}
	if err := held.Ack(ctx); !errors.Is(err, postbox.ErrStaleLease) {
		t.Fatalf("ack of the old connection's lease: %v, want ErrStaleLease", err)
	}
	m, err := cons.Next(ctx)
	if err != nil || string(m.Body) != "one" || m.Redeliveries != 1 {
		t.Fatalf("resumed consumer: %v %v, want \"one\" redelivered once", m, err)
	}
	if err := m.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.Send(ctx, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if m, err := cons.Next(ctx); err != nil || string(m.Body) != "two" {
		t.Fatalf("resumed consumer, new message: %v %v", m, err)
	}
}

// TestReconnectCarriesManualCreditOver: a ManualCredit consumer resumes
// with the credit it had left, not a fresh window: with its window
// handed out before the break, nothing comes after it until Credit.
func TestReconnectCarriesManualCreditOver(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	p := startStallingProxy(t, b.ServeTCP(t))
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	c, reconnected := dialReconnecting(t, ctx, p.addr)
	local := b.Dial(t)
	jobs, err := local.Create(ctx, "jobs", postbox.Mode(0o666))
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"a", "b", "c", "d"} {
		if _, err := jobs.Send(ctx, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := c.Mailbox("jobs").Consume(ctx, postbox.Prefetch(2), postbox.ManualCredit())
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	for range 2 {
		if _, err := cons.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p.cut()
	awaitReconnect(t, reconnected)
	noMore(t, ctx, cons) // the window was used up before the break
	cons.Credit(1)
	if _, err := cons.Next(ctx); err != nil {
		t.Fatalf("after Credit(1) on the new connection: %v", err)
	}
	noMore(t, ctx, cons)
}

// TestReconnectResumesSubscriptions: a reconnecting client's
// subscriptions (a plain one with a header filter, a queue-group member)
// subscribe again after the network breaks: the events received before
// the break come first, then a gap notice (Missed 0: what was published
// meanwhile is unknown), then new publications, filtered as before; a
// closed subscription is not resumed.
func TestReconnectResumesSubscriptions(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	p := startStallingProxy(t, b.ServeTCP(t))
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	c, reconnected := dialReconnecting(t, ctx, p.addr)
	pub := b.Dial(t) // on the Unix socket, unaffected
	eu, err := c.Subscribe(ctx, "orders.*", postbox.FilterHeader("region", "eu"), postbox.Buffer(8))
	if err != nil {
		t.Fatal(err)
	}
	defer eu.Close()
	member, err := c.Subscribe(ctx, "jobs.>", postbox.Queue("workers"), postbox.Buffer(2))
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	gone, err := c.Subscribe(ctx, "gone.x")
	if err != nil {
		t.Fatal(err)
	}
	publish := func(subject, body, region string) {
		t.Helper()
		if _, err := pub.Publish(ctx, subject, []byte(body), postbox.WithHeader("region", region)); err != nil {
			t.Fatal(err)
		}
	}
	publish("orders.new", "before", "eu")
	publish("orders.new", "us before", "us")
	// The broker queued "before" on c's connection when it was published;
	// a ping's reply comes after it, so "before" is in c's hands.
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}

	p.cut()
	awaitReconnect(t, reconnected)
	next := func(s *postbox.Subscription) *postbox.Event {
		t.Helper()
		ev, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	if ev := next(eu); ev.Gap || string(ev.Body) != "before" {
		t.Fatalf("first event: %+v, want \"before\", received before the break", ev)
	}
	if ev := next(eu); !ev.Gap || ev.Missed != 0 {
		t.Fatalf("after the break: %+v, want a gap notice with Missed 0", ev)
	}
	if ev := next(member); !ev.Gap {
		t.Fatalf("queue member after the break: %+v, want a gap notice", ev)
	}
	// Subscribed again on the broker: two patterns (gone.x stayed closed).
	waitSubscribers(t, ctx, pub, map[string]int{"orders.*": 1, "jobs.>": 1})
	publish("orders.new", "us after", "us")
	publish("orders.new", "after", "eu")
	if ev := next(eu); ev.Gap || string(ev.Body) != "after" || ev.Subject != "orders.new" {
		t.Fatalf("resumed: %+v, want \"after\" (the filter holds)", ev)
	}
	for i := range 5 { // more than its buffer: credit flows on the new stream
		publish("jobs.a", strconv.Itoa(i), "")
		if ev := next(member); string(ev.Body) != strconv.Itoa(i) {
			t.Fatalf("queue member, event %d: %+v", i, ev)
		}
	}
	if _, err := gone.Next(ctx); !errors.Is(err, postbox.ErrCanceled) {
		t.Fatalf("closed subscription after the reconnect: %v, want ErrCanceled", err)
	}
}

// waitSubscribers waits until the broker lists exactly want (pattern →
// subscribers) among its subjects.
func waitSubscribers(t *testing.T, ctx context.Context, c *postbox.Client, want map[string]int) {
	t.Helper()
	for {
		ti, err := c.Topics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, s := range ti.Subjects {
			got[s.Pattern] = s.Subscribers
		}
		if maps.Equal(got, want) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("subjects %v, want %v", got, want)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// dialReconnecting dials addr over TCP with a reconnect policy that
// retries every 10 ms; each reconnect's identity goes to the channel.
// The client is closed when the test ends.
func dialReconnecting(t *testing.T, ctx context.Context, addr string) (*postbox.Client, <-chan postbox.Identity) {
	t.Helper()
	reconnected := make(chan postbox.Identity, 1)
	var d net.Dialer
	c, err := postbox.Dial(ctx,
		postbox.WithDialer(func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }),
		postbox.WithReconnect(postbox.ReconnectPolicy{Backoff: 10 * time.Millisecond,
			OnReconnect: func(id postbox.Identity) { reconnected <- id }}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, reconnected
}

// awaitReconnect waits for the next reconnect and returns its identity.
func awaitReconnect(t *testing.T, reconnected <-chan postbox.Identity) postbox.Identity {
	t.Helper()
	select {
	case id := <-reconnected:
		return id
	case <-time.After(testbroker.HangGuard):
		t.Fatal("no reconnect")
	}
	return postbox.Identity{}
}
