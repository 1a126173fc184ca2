package integration_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
)

func TestRendezvousSendBlocksUntilReceiverTakesIt(t *testing.T) {
	b := start(t, nil)
	sender, receiver := b.Dial(t), b.Dial(t)
	rv := create(t, sender, "rv", postbox.Rendezvous(), postbox.Mode(0o666))

	sent := async(func() (postbox.Receipt, error) { return rv.Send(ctxT(t), []byte("hand-over")) })
	waitStat(t, rv, "BlockedSenders == 1", func(i postbox.Info) bool { return i.BlockedSenders == 1 })
	notYet(t, sent, "rendezvous send without a receiver")

	m := recv(t, receiver.Mailbox("rv"))
	r := await(t, sent, "rendezvous send")
	if r.err != nil {
		t.Fatal(r.err)
	}
	ack(t, m)
	if string(m.Body) != "hand-over" {
		t.Fatalf("body %q", m.Body)
	}
	want := receiver.Identity()
	if !r.v.Taken || r.v.By != want {
		t.Fatalf("receipt %+v, want taken by %+v", r.v, want)
	}
	if r.v.By.PID != int32(os.Getpid()) || r.v.By.UID != uint32(os.Getuid()) {
		t.Fatalf("receipt names pid %d uid %d, want this process %d/%d", r.v.By.PID, r.v.By.UID, os.Getpid(), os.Getuid())
	}
	if r.v.ID != m.ID {
		t.Fatalf("receipt id %d, message id %d", r.v.ID, m.ID)
	}
}

func TestRendezvousSendToWaitingReceiverCompletesAtOnce(t *testing.T) {
	b := start(t, nil)
	sender, receiver := b.Dial(t), b.Dial(t)
	rv := create(t, sender, "rv", postbox.Rendezvous(), postbox.Mode(0o666))

	got := async(func() (*postbox.Message, error) { return receiver.Mailbox("rv").Receive(ctxT(t)) })
	waitStat(t, rv, "Receivers == 1", func(i postbox.Info) bool { return i.Receivers == 1 })
	r, err := rv.Send(ctxT(t), []byte("x"), postbox.NoWait())
	if err != nil {
		t.Fatalf("nowait send to a waiting receiver: %v", err)
	}
	if !r.Taken || r.By != receiver.Identity() {
		t.Fatalf("receipt %+v, want taken by %+v", r, receiver.Identity())
	}
	m := await(t, got, "receive")
	if m.err != nil {
		t.Fatal(m.err)
	}
	ack(t, m.v)
}

func TestRendezvousNoWaitSendWithoutReceiverIsFull(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	rv := create(t, c, "rv", postbox.Rendezvous())
	_, err := rv.Send(ctxT(t), []byte("x"), postbox.NoWait())
	wantErr(t, err, postbox.ErrFull, "nowait rendezvous send")
	info := waitStat(t, rv, "", func(postbox.Info) bool { return true })
	if info.Depth != 0 || info.BlockedSenders != 0 || info.Sent != 0 {
		t.Fatalf("a refused send left state behind: %+v", info)
	}
}

func TestRendezvousSendWithdrawnAtDeadline(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	rv := create(t, c, "rv", postbox.Rendezvous())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := rv.Send(ctx, []byte("x"))
	wantErr(t, err, postbox.ErrTimeout, "rendezvous send past its deadline")
	_, err = rv.Receive(ctxT(t), postbox.NoWait())
	wantErr(t, err, postbox.ErrEmpty, "receive after the offer was withdrawn")
}

func TestBoundedSendWaitsForSpace(t *testing.T) {
	b := start(t, nil)
	c, other := b.Dial(t), b.Dial(t)
	mb := create(t, c, "bounded", postbox.Capacity(1), postbox.Mode(0o666))
	send(t, mb, "first")

	sent := async(func() (postbox.Receipt, error) { return other.Mailbox("bounded").Send(ctxT(t), []byte("second")) })
	waitStat(t, mb, "BlockedSenders == 1", func(i postbox.Info) bool { return i.BlockedSenders == 1 })
	notYet(t, sent, "send to a full mailbox")

	if got := recvAck(t, mb); got != "first" {
		t.Fatalf("got %q, want first", got)
	}
	if r := await(t, sent, "blocked send"); r.err != nil {
		t.Fatal(r.err)
	}
	if got := recvAck(t, mb); got != "second" {
		t.Fatalf("got %q, want second", got)
	}
}

func TestBoundedNoWaitSendToFullMailboxIsFull(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "bounded", postbox.Capacity(2))
	send(t, mb, "1")
	send(t, mb, "2")
	_, err := mb.Send(ctxT(t), []byte("3"), postbox.NoWait())
	wantErr(t, err, postbox.ErrFull, "nowait send to a full mailbox")
	if info := waitStat(t, mb, "", func(postbox.Info) bool { return true }); info.Depth != 2 || info.BlockedSenders != 0 {
		t.Fatalf("after a refused send: %+v", info)
	}
}

// checkTimeout asserts the three faces of a timeout error.
func checkTimeout(t *testing.T, err error, what string) {
	t.Helper()
	wantErr(t, err, postbox.ErrTimeout, what)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%s: %v does not match context.DeadlineExceeded", what, err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("%s: %v is not a net.Error with Timeout() true", what, err)
	}
}

func TestBoundedSendTimesOutAtContextDeadline(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "bounded", postbox.Capacity(1))
	send(t, mb, "1")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := mb.Send(ctx, []byte("2"))
	checkTimeout(t, err, "send to a full mailbox past the deadline")
	info := waitStat(t, mb, "BlockedSenders == 0", func(i postbox.Info) bool { return i.BlockedSenders == 0 })
	if info.Depth != 1 || info.Sent != 1 {
		t.Fatalf("a timed-out send was accepted: %+v", info)
	}
}

func TestReceiveNoWaitOnEmptyIsEmpty(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "q")
	_, err := mb.Receive(ctxT(t), postbox.NoWait())
	wantErr(t, err, postbox.ErrEmpty, "nowait receive on an empty mailbox")
	send(t, mb, "typed", postbox.Type(5))
	_, err = mb.Receive(ctxT(t), postbox.NoWait(), postbox.Type(4))
	wantErr(t, err, postbox.ErrEmpty, "nowait receive of a type that is not there")
}

func TestReceiveTimesOutAtContextDeadline(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "q")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := mb.Receive(ctx)
	checkTimeout(t, err, "receive past the deadline")
	waitStat(t, mb, "Receivers == 0", func(i postbox.Info) bool { return i.Receivers == 0 })
	// The mailbox still works, and a later message is not lost to the
	// timed-out receiver.
	send(t, mb, "later")
	if got := recvAck(t, mb); got != "later" {
		t.Fatalf("got %q", got)
	}
}

// fill sends (type, priority, body) triples in order.
func fill(t *testing.T, mb *postbox.Mailbox, msgs ...[3]any) {
	t.Helper()
	for _, m := range msgs {
		send(t, mb, m[2].(string), postbox.Type(int64(m[0].(int))), postbox.Priority(uint8(m[1].(int))))
	}
}

// mixed is a queue with types and priorities mixed: queue order is
// p9:{t3 "a", t1 "d"}, p5:{t2 "b", t1 "e"}, p0:{t4 "c", t2 "f"}.
var mixed = [][3]any{
	{3, 9, "a"}, {2, 5, "b"}, {4, 0, "c"}, {1, 9, "d"}, {1, 5, "e"}, {2, 0, "f"},
}

func TestQueueOrderIsHighestPriorityFirstFIFOWithin(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "q")
	fill(t, mb, mixed...)
	var got string
	for range mixed {
		got += recvAck(t, mb)
	}
	if want := "adbecf"; got != want {
		t.Fatalf("receive order %q, want %q", got, want)
	}
}

func TestReceiveZeroTypeTakesFirstInQueueOrder(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "q")
	fill(t, mb, mixed...)
	if got := recvAck(t, mb, postbox.Type(0)); got != "a" {
		t.Fatalf("type 0 took %q, want a (priority 9, first)", got)
	}
}

func TestReceivePositiveTypeTakesFirstOfExactlyThatType(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "q")
	fill(t, mb, mixed...)
	for _, step := range []struct {
		typ  int64
		want string
	}{{2, "b"}, {2, "f"}, {1, "d"}, {4, "c"}, {1, "e"}, {3, "a"}} {
		if got := recvAck(t, mb, postbox.Type(step.typ)); got != step.want {
			t.Fatalf("type %d took %q, want %q", step.typ, got, step.want)
		}
	}
	_, err := mb.Receive(ctxT(t), postbox.Type(1), postbox.NoWait())
	wantErr(t, err, postbox.ErrEmpty, "type 1 once none is left")
}

func TestReceiveNegativeTypeTakesLowestTypeAtMost(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "q")
	fill(t, mb, mixed...)
	// Lowest type <= |T|; among equals, queue order (priority first).
	for _, step := range []struct {
		typ  int64
		want string
	}{{-3, "d"}, {-3, "e"}, {-3, "b"}, {-4, "f"}, {-4, "a"}, {-4, "c"}} {
		if got := recvAck(t, mb, postbox.Type(step.typ)); got != step.want {
			t.Fatalf("type %d took %q, want %q", step.typ, got, step.want)
		}
	}
	send(t, mb, "high", postbox.Type(7))
	_, err := mb.Receive(ctxT(t), postbox.Type(-6), postbox.NoWait())
	wantErr(t, err, postbox.ErrEmpty, "type -6 with only type 7 queued")
}

func TestWaitingTypedReceiverGetsOnlyAMatchingMessage(t *testing.T) {
	b := start(t, nil)
	c, r := b.Dial(t), b.Dial(t)
	mb := create(t, c, "q", postbox.Mode(0o666))
	exact := async(func() (*postbox.Message, error) { return r.Mailbox("q").Receive(ctxT(t), postbox.Type(3)) })
	waitStat(t, mb, "Receivers == 1", func(i postbox.Info) bool { return i.Receivers == 1 })
	atMost := async(func() (*postbox.Message, error) { return r.Mailbox("q").Receive(ctxT(t), postbox.Type(-2)) })
	waitStat(t, mb, "Receivers == 2", func(i postbox.Info) bool { return i.Receivers == 2 })

	send(t, mb, "t5", postbox.Type(5), postbox.Priority(9))
	send(t, mb, "t3", postbox.Type(3))
	send(t, mb, "t2", postbox.Type(2))
	for _, w := range []struct {
		ch   <-chan result[*postbox.Message]
		want string
	}{{exact, "t3"}, {atMost, "t2"}} {
		m := await(t, w.ch, "typed receive")
		if m.err != nil {
			t.Fatal(m.err)
		}
		if string(m.v.Body) != w.want {
			t.Fatalf("got %q, want %q", m.v.Body, w.want)
		}
		ack(t, m.v)
	}
	if got := recvAck(t, mb); got != "t5" {
		t.Fatalf("left over %q, want t5", got)
	}
}

func TestCompetingReceiversGetDistinctMessages(t *testing.T) {
	b := start(t, nil)
	owner := b.Dial(t)
	const n = 400
	mb := create(t, owner, "work", postbox.Mode(0o666), postbox.Capacity(16))

	var (
		mu    sync.Mutex // guards seen, total
		seen  = map[string]int{}
		total int
		done  = make(chan struct{})
	)
	record := func(m *postbox.Message) {
		mu.Lock()
		defer mu.Unlock()
		seen[string(m.Body)]++
		total++
		if total == n {
			close(done)
		}
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 2 { // consumers, each on its own client
		c := b.Dial(t)
		cons, err := c.Mailbox("work").Consume(ctx, postbox.Prefetch(4))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cons.Close(ctxT(t))
			for {
				m, err := cons.Next(ctx)
				if err != nil {
					if ctx.Err() == nil {
						errs <- fmt.Errorf("consumer %d: %w", i, err)
					}
					return
				}
				if err := m.Ack(ctx); err != nil {
					errs <- fmt.Errorf("consumer %d ack: %w", i, err)
					return
				}
				record(m)
			}
		}()
	}
	for i := range 2 { // one-shot receivers, each on its own client
		mbx := b.Dial(t).Mailbox("work")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := mbx.Receive(ctx)
				if err != nil {
					if ctx.Err() == nil {
						errs <- fmt.Errorf("receiver %d: %w", i, err)
					}
					return
				}
				if err := m.Ack(ctx); err != nil {
					errs <- fmt.Errorf("receiver %d ack: %w", i, err)
					return
				}
				record(m)
			}
		}()
	}
	sender := b.Dial(t).Mailbox("work")
	for i := range n {
		if _, err := sender.Send(ctx, fmt.Appendf(nil, "m%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-done:
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(hangGuard):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("only %d of %d messages delivered", total, n)
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range n {
		if k := seen[fmt.Sprintf("m%03d", i)]; k != 1 {
			t.Errorf("m%03d delivered %d times", i, k)
		}
	}
	info := waitStat(t, mb, "", func(postbox.Info) bool { return true })
	if info.Depth != 0 || info.InFlight != 0 || info.Received != n {
		t.Fatalf("after all acks: %+v", info)
	}
}

func TestReceiptNamesTheReceiverThatTookTheMessage(t *testing.T) {
	b := start(t, nil)
	owner := b.Dial(t)
	mb := create(t, owner, "bounded", postbox.Capacity(10), postbox.Mode(0o666))
	r1, r2 := b.Dial(t), b.Dial(t)

	// Sent first, taken later: the receipt names whoever took it.
	sent := async(func() (postbox.Receipt, error) { return mb.Send(ctxT(t), []byte("one"), postbox.WithReceipt()) })
	waitStat(t, mb, "BlockedSenders == 1", func(i postbox.Info) bool { return i.BlockedSenders == 1 })
	notYet(t, sent, "receipted send before any receiver")
	m := recv(t, r2.Mailbox("bounded"))
	rc := await(t, sent, "receipted send")
	if rc.err != nil {
		t.Fatal(rc.err)
	}
	if !rc.v.Taken || rc.v.By != r2.Identity() || rc.v.ID != m.ID {
		t.Fatalf("receipt %+v for message %d, want taken by %+v", rc.v, m.ID, r2.Identity())
	}
	ack(t, m)

	// A receiver already waiting: the receipt names it and not the other.
	got := async(func() (*postbox.Message, error) { return r1.Mailbox("bounded").Receive(ctxT(t)) })
	waitStat(t, mb, "Receivers == 1", func(i postbox.Info) bool { return i.Receivers == 1 })
	r := send(t, mb, "two", postbox.WithReceipt())
	if !r.Taken || r.By != r1.Identity() {
		t.Fatalf("receipt %+v, want taken by %+v", r, r1.Identity())
	}
	g := await(t, got, "receive")
	if g.err != nil {
		t.Fatal(g.err)
	}
	ack(t, g.v)

	// Without WithReceipt a bounded send completes on queueing.
	if r := send(t, mb, "three"); r.Taken {
		t.Fatalf("plain send reported taken: %+v", r)
	}
}
