package faultconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
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
	// The copies follow the originals, so their replies (swallowed) come
	// after the client's own: wait for them before looking at the mailbox.
	for deadline := time.Now().Add(testbroker.HangGuard); stats.Counts().Swallowed < 3 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if d := depth(t, b, "q"); d != 12 {
		t.Errorf("depth %d, want 9 + 3 duplicates", d)
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
	c, stats := dialFaultyStats(t, b, DelayRequest(wire.OpSend, time.Hour, Nth(1)))
	done := make(chan error, 1)
	go func() { done <- send(c, "q", "held", time.Hour) }()
	for stats.Counts().Delayed == 0 {
		time.Sleep(time.Millisecond)
	}
	// A PING behind the held SEND is not held up by it.
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("the held send returned: %v", err)
	default:
	}
	if d := depth(t, b, "q"); d != 0 {
		t.Errorf("depth %d, want 0: the send is held", d)
	}
	c.Close()
	if err := <-done; err == nil {
		t.Error("the held send succeeded after Close")
	}
}

func TestDelayRequestArrivesAfterTheDelay(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	create(t, b, "q")
	const delay = 200 * time.Millisecond
	c, _ := dialFaultyStats(t, b, DelayRequest(wire.OpSend, delay, Nth(1)))
	t0 := time.Now()
	if err := send(c, "q", "late", testbroker.HangGuard); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took < delay {
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
	waitUntil(t, func() bool { return stats.Counts().Swallowed == 2 }) // both copies handled
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
		{Action: Replay, Dir: ToClient, Op: wire.OpCall, When: Always()},
		DelayRequest(wire.OpSend, 0, Always()),
		DropRequest(wire.OpSend, Random(1.5, 1)),
		{Dir: ToBroker, Op: wire.OpSend, When: Always()},
	} {
		if _, _, err := Wrap(nil, r); err == nil {
			t.Errorf("rule %v accepted", r)
		}
	}
}

// echoServer answers every request on name with its body, counting the
// requests it saw; it stops when t ends.
func echoServer(t *testing.T, b *testbroker.Broker, name string) *atomic.Int64 {
	t.Helper()
	c := b.Dial(t)
	if _, err := c.Create(context.Background(), name, postbox.Service()); err != nil {
		t.Fatal(err)
	}
	cons, err := c.Mailbox(name).Consume(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := cons.Next(context.Background())
			if err != nil {
				return
			}
			seen.Add(1)
			m.Reply(context.Background(), m.Body, postbox.AckRequest())
		}
	}()
	t.Cleanup(func() {
		cons.Close(context.Background())
		<-done
	})
	return &seen
}

func call(c *postbox.Client, name, body string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	m, err := c.Mailbox(name).Call(ctx, []byte(body))
	if err != nil {
		return "", err
	}
	return string(m.Body), nil
}

func TestCallDropsAndDuplicates(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	seen := echoServer(t, b, "echo")
	c, stats := dialFaultyStats(t, b,
		DropRequest(wire.OpCall, Nth(2)),      // call 2: the server never sees it
		DropReply(wire.OpCall, Nth(2)),        // the 2nd reply to arrive, call 3's (call 2 had none): the caller never hears
		DuplicateRequest(wire.OpCall, Nth(5))) // call 5: the server sees it twice
	for i := 1; i <= 5; i++ {
		got, err := call(c, "echo", fmt.Sprint(i), 500*time.Millisecond)
		switch i {
		case 2:
			// The broker never saw the CALL: no outcome from it.
			var ce *postbox.CallError
			if !errors.As(err, &ce) || ce.Outcome != postbox.OutcomeUnknown {
				t.Errorf("call %d, request dropped: %v, want a CallError with an unknown outcome", i, err)
			}
		case 3:
			if err == nil {
				t.Errorf("call %d, reply dropped: succeeded with %q", i, got)
			}
		default:
			if err != nil || got != fmt.Sprint(i) {
				t.Errorf("call %d: %q, %v", i, got, err)
			}
		}
	}
	waitUntil(t, func() bool { return seen.Load() == 5 }) // 1, 3, 4, 5 twice
	if got := stats.Counts(); got.Dropped != 2 || got.Duplicated != 1 {
		t.Errorf("counts %+v", got)
	}
	// The copy's SEND reply was swallowed, and the second of the server's
	// two replies dropped by the broker: the client saw one reply and its
	// connection is intact.
	if _, err := call(c, "echo", "after", testbroker.HangGuard); err != nil {
		t.Fatal(err)
	}
}

func TestDelayReplyOfACallPastItsDeadline(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	seen := echoServer(t, b, "echo")
	c, _ := dialFaultyStats(t, b, DelayReply(wire.OpCall, 2*time.Second, Nth(1)))
	t0 := time.Now()
	if _, err := call(c, "echo", "x", 300*time.Millisecond); err == nil {
		t.Fatal("a call whose reply came after its deadline succeeded")
	}
	if took := time.Since(t0); took > 1500*time.Millisecond {
		t.Errorf("the call took %v: it waited for the delayed reply", took)
	}
	if seen.Load() != 1 {
		t.Errorf("server saw %d requests, want 1", seen.Load())
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testbroker.HangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within the hang guard")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestReplayRequestArrivesAfterTheCallCompleted(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	seen := echoServer(t, b, "echo")
	c, stats := dialFaultyStats(t, b, ReplayRequest(wire.OpCall, Nth(1)))
	if got, err := call(c, "echo", "once", testbroker.HangGuard); err != nil || got != "once" {
		t.Fatalf("call: %q, %v", got, err)
	}
	// The replay reaches the server after the call returned; its reply is
	// swallowed.
	waitUntil(t, func() bool { return seen.Load() == 2 && stats.Counts().Swallowed == 1 })
	if got := stats.Counts(); got.Replayed != 1 {
		t.Errorf("counts %+v, want one replay", got)
	}
	if got, err := call(c, "echo", "next", testbroker.HangGuard); err != nil || got != "next" {
		t.Fatalf("the next call: %q, %v", got, err)
	}
	if seen.Load() != 3 {
		t.Errorf("server saw %d requests, want 3", seen.Load())
	}
}
