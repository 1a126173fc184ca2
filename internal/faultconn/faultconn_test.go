package faultconn

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/wire"
)

// dialFaultyStats connects a client to b through a Conn obeying rules.
func dialFaultyStats(t *testing.T, b *testbroker.Broker, rules ...Rule) (*postbox.Client, *Stats) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	nc, stats, err := Dial(ctx, b.Socket, rules...)
	if err != nil {
		t.Fatal(err)
	}
	c, err := postbox.NewClient(ctx, nc, postbox.WithName(t.Name()), postbox.WithReplyGrace(50*time.Millisecond))
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, stats
}

func depth(t *testing.T, b *testbroker.Broker, name string) uint64 {
	t.Helper()
	info, err := b.Dial(t).Mailbox(name).Stat(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.Depth
}

func send(c *postbox.Client, name, body string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := c.Mailbox(name).Send(ctx, []byte(body))
	return err
}

func create(t *testing.T, b *testbroker.Broker, name string) {
	t.Helper()
	if _, err := b.Dial(t).Create(context.Background(), name); err != nil {
		t.Fatal(err)
	}
}

func TestDropRequestNthNeverReachesTheBroker(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	create(t, b, "q")
	c, stats := dialFaultyStats(t, b, DropRequest(wire.OpSend, Nth(2)))
	for i, body := range []string{"a", "b", "c"} {
		err := send(c, "q", body, 300*time.Millisecond)
		if (i == 1) != (err != nil) {
			t.Fatalf("send %d (%s): %v", i+1, body, err)
		}
	}
	if d := depth(t, b, "q"); d != 2 {
		t.Errorf("depth %d, want 2: the second send was dropped", d)
	}
	if got := stats.Counts(); got.Dropped != 1 || stats.Fired(0) != 1 {
		t.Errorf("counts %+v, fired %d: want one drop", got, stats.Fired(0))
	}
}

func TestDropReplyTheBrokerActedTheClientNeverHeard(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	create(t, b, "q")
	c, stats := dialFaultyStats(t, b, DropReply(wire.OpSend, Nth(1)))
	err := send(c, "q", "a", 300*time.Millisecond)
	if !errors.Is(err, postbox.ErrUnknownOutcome) && !errors.Is(err, postbox.ErrTimeout) {
		t.Fatalf("send whose reply was dropped: %v, want unknown outcome or timeout", err)
	}
	if err := send(c, "q", "b", testbroker.HangGuard); err != nil {
		t.Fatalf("the next send: %v", err)
	}
	if d := depth(t, b, "q"); d != 2 {
		t.Errorf("depth %d, want 2: the broker took both", d)
	}
	if e := stats.Events(); len(e) != 1 || e[0].Op != wire.OpSend.Reply() || e[0].Action != Drop {
		t.Errorf("events %+v, want one dropped SEND reply", e)
	}
}

func TestDuplicateRequestReachesTheBrokerTwiceTheClientSeesOneReply(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	create(t, b, "q")
	c, stats := dialFaultyStats(t, b, DuplicateRequest(wire.OpSend, Every(3)))
	for i := range 9 {
		if err := send(c, "q", "x", testbroker.HangGuard); err != nil {
			t.Fatalf("send %d: %v", i+1, err)
		}
	}
	if d := depth(t, b, "q"); d != 12 {
		t.Errorf("depth %d, want 9 + 3 duplicates", d)
	}
	// The swallowed replies are read after the client's own; wait for them.
	for deadline := time.Now().Add(testbroker.HangGuard); stats.Counts().Swallowed < 3 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if got := stats.Counts(); got.Duplicated != 3 || got.Swallowed != 3 {
		t.Errorf("counts %+v, want 3 duplicated and their 3 replies swallowed", got)
	}
	// The client's connection is intact: no stray reply confused it.
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestDelayRequestHoldsTheFrameAndLetsOthersPass(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	create(t, b, "q")
	const delay = time.Second
	c, stats := dialFaultyStats(t, b, DelayRequest(wire.OpSend, delay, Nth(1)))
	done := make(chan time.Duration, 1)
	go func() {
		t0 := time.Now()
		if err := send(c, "q", "late", testbroker.HangGuard); err != nil {
			t.Error(err)
		}
		done <- time.Since(t0)
	}()
	// A PING behind the delayed SEND is not held up by it.
	for stats.Counts().Delayed == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		t.Error("the delayed send finished before the ping behind it")
	default:
	}
	if took := <-done; took < delay {
		t.Errorf("delayed send took %v, want at least %v", took, delay)
	}
	if d := depth(t, b, "q"); d != 1 {
		t.Errorf("depth %d, want 1", d)
	}
}

func TestRandomWithTheSameSeedMakesTheSameChoices(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	create(t, b, "q")
	fired := func(seed uint64) []uint64 {
		c, stats := dialFaultyStats(t, b, DuplicateRequest(wire.OpSend, Random(0.3, seed)))
		for i := range 100 {
			if err := send(c, "q", "x", testbroker.HangGuard); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		var ids []uint64
		for _, e := range stats.Events() {
			ids = append(ids, e.Request)
		}
		return ids
	}
	a, a2, other := fired(7), fired(7), fired(8)
	if !slices.Equal(a, a2) {
		t.Errorf("seed 7 twice chose differently:\n%v\n%v", a, a2)
	}
	if slices.Equal(a, other) {
		t.Errorf("seeds 7 and 8 chose the same frames: %v", a)
	}
	if len(a) < 10 || len(a) > 60 {
		t.Errorf("p=0.3 fired on %d of 100 frames", len(a))
	}
}

func TestFirstFiringRuleActsEveryMatchingRuleCounts(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	create(t, b, "q")
	c, stats := dialFaultyStats(t, b,
		DuplicateRequest(wire.OpSend, Nth(2)),
		DuplicateRequest(wire.OpSend, Every(2))) // fires on 2 and 4; 2 is the first rule's
	for range 4 {
		if err := send(c, "q", "x", testbroker.HangGuard); err != nil {
			t.Fatal(err)
		}
	}
	if stats.Fired(0) != 1 || stats.Fired(1) != 1 {
		t.Errorf("fired %d, %d; want 1, 1", stats.Fired(0), stats.Fired(1))
	}
	if d := depth(t, b, "q"); d != 6 {
		t.Errorf("depth %d, want 6", d)
	}
}

func TestCloseStopsPendingDelaysAndForwarders(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	create(t, b, "q")
	ctx := context.Background()
	nc, stats, err := Dial(ctx, b.Socket, DelayRequest(wire.OpSend, time.Hour, Always()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := postbox.NewClient(ctx, nc, postbox.WithReplyGrace(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	go send(c, "q", "never", time.Hour)
	for stats.Counts().Delayed == 0 {
		time.Sleep(time.Millisecond)
	}
	t0 := time.Now()
	c.Close()
	nc.Close() // idempotent
	if took := time.Since(t0); took > 5*time.Second {
		t.Errorf("Close took %v with a delay pending", took)
	}
	if d := depth(t, b, "q"); d != 0 {
		t.Errorf("depth %d: the delayed frame was sent after Close", d)
	}
}

func TestBrokerGoneClosesTheClientSide(t *testing.T) {
	testbroker.CheckGoroutines(t)
	client, server := net.Pipe()
	nc, _, err := Wrap(client)
	if err != nil {
		t.Fatal(err)
	}
	server.Close()
	nc.SetReadDeadline(time.Now().Add(testbroker.HangGuard))
	if _, err := nc.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read after the broker went: %v, want EOF", err)
	}
	nc.Close()
}

func TestRulesThatCannotActAreRefused(t *testing.T) {
	for _, r := range []Rule{
		{Action: Duplicate, Dir: ToClient, Op: wire.OpSend, When: Always()},
		DelayRequest(wire.OpSend, 0, Always()),
		DropRequest(wire.OpSend, Random(1.5, 1)),
		{Dir: ToBroker, Op: wire.OpSend, When: Always()},
	} {
		if _, _, err := Wrap(nil, r); err == nil {
			t.Errorf("rule %v accepted", r)
		}
	}
}
