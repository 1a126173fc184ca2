package integration_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/postbox-ipc/postbox"
)

// The urgent lane and withdrawal by the sender (issue 10, item 8), with
// the real broker: an urgent message overtakes 10,000 queued ones (RECV,
// and a consumer whose prefetch holds them all); cancellation outcomes for
// queued, delivered and leased messages; only the sender or the owner may
// cancel; a durable urgent message is urgent after a restart.

// fillBatches sends n ordinary messages to mb in batches.
func fillBatches(t *testing.T, mb *postbox.Mailbox, n int) {
	t.Helper()
	out := make([]postbox.Outgoing, 0, 1000)
	for i := 0; i < n; i += len(out) {
		out = out[:0]
		for j := i; j < min(n, i+1000); j++ {
			out = append(out, postbox.Outgoing{Body: []byte(fmt.Sprint("m", j)), Priority: uint8(j % 7)})
		}
		if _, err := mb.SendBatch(ctxT(t), out); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUrgentOvertakesTenThousandQueuedThroughAFullMailbox(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	const n = 10_000
	mb := create(t, c, "work", postbox.Capacity(n))
	fillBatches(t, mb, n)
	if _, err := mb.Send(ctxT(t), []byte("late"), postbox.NoWait()); !errors.Is(err, postbox.ErrFull) {
		t.Fatalf("ordinary send to the full mailbox: %v, want ErrFull", err)
	}
	// The mailbox is full: urgent messages still enter (the reserve).
	send(t, mb, "stop-1", postbox.Urgent(), postbox.NoWait())
	send(t, mb, "stop-2", postbox.Urgent(), postbox.NoWait(), postbox.Priority(0))
	for _, want := range []string{"stop-1", "stop-2"} {
		m := recv(t, mb)
		if string(m.Body) != want || !m.Urgent() {
			t.Fatalf("first deliveries: %q urgent=%v, want %q urgent", m.Body, m.Urgent(), want)
		}
		ack(t, m)
	}
	// Then the highest priority first, as before.
	if m := recv(t, mb); m.Priority != 6 || m.Urgent() {
		t.Fatalf("after the urgent ones: priority %d urgent=%v", m.Priority, m.Urgent())
	}
}

func TestUrgentOvertakesAConsumersDeepPrefetch(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	const n = 10_000
	mb := create(t, c, "work")
	fillBatches(t, mb, n)
	cons, err := mb.Consume(ctxT(t), postbox.Prefetch(2*n))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctxT(t))
	// Every ordinary message is leased to the consumer (pushed, or on its
	// way), before the urgent one is sent.
	waitStat(t, mb, "all 10,000 prefetched", func(i postbox.Info) bool { return i.InFlight == n })
	send(t, c.Mailbox("work"), "stop", postbox.Urgent())
	waitStat(t, mb, "the urgent message delivered", func(i postbox.Info) bool { return i.InFlight == n+1 })
	// The urgent message comes out ahead of the prefetched ones that were
	// still waiting for Next (without the prefetch reordering it would be
	// the 10,001st).
	for i := range n + 1 {
		m, err := cons.Next(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		m.AckNoWait()
		if m.Urgent() {
			if string(m.Body) != "stop" || i > n/2 {
				t.Fatalf("urgent %q came out %d-th of %d", m.Body, i+1, n+1)
			}
			t.Logf("the urgent message came out %d-th of %d (an ordinary one: last)", i+1, n+1)
			return
		}
	}
	t.Fatal("the urgent message never came")
}

func TestWithdrawSaysWhatBecameOfQueuedDeliveredAndLeasedMessages(t *testing.T) {
	b := start(t, nil)
	c, worker := b.Dial(t), b.Dial(t)
	mb := create(t, c, "jobs", postbox.Mode(0o666))
	a := send(t, mb, "a").ID
	bb := send(t, mb, "b").ID
	q := send(t, mb, "c", postbox.Urgent()).ID
	// The worker takes c (urgent, first) and acks it, then holds a.
	if got := recvAck(t, worker.Mailbox("jobs")); got != "c" {
		t.Fatalf("worker got %q, want the urgent c", got)
	}
	held := recv(t, worker.Mailbox("jobs"))
	if string(held.Body) != "a" {
		t.Fatalf("worker holds %q, want a", held.Body)
	}
	outs, err := mb.Withdraw(ctxT(t), bb, a, q, 999)
	if err != nil {
		t.Fatal(err)
	}
	want := []postbox.Outcome{postbox.OutcomeWithdrawn, postbox.OutcomeInProgress, postbox.OutcomeSettled, postbox.OutcomeNoSuchMessage}
	for i, o := range outs {
		if o.ID != []uint64{bb, a, q, 999}[i] || o.Outcome != want[i] {
			t.Fatalf("outcome %d: %+v, want %v", i, o, want[i])
		}
	}
	if h := outs[1].Holder; h.Endpoint != worker.Identity().Endpoint || h.PID != worker.Identity().PID {
		t.Fatalf("in progress held by %+v, want the worker %+v", h, worker.Identity())
	}
	if info, _ := mb.Stat(ctxT(t)); info.Depth != 0 || info.InFlight != 1 {
		t.Fatalf("after withdrawing: %+v", info)
	}
	// The held one stays the worker's: it acks as usual.
	ack(t, held)
}

func TestWithdrawMatchingTakesOnlyTheCallersMessages(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "jobs", postbox.Mode(0o666))
	for i := range 5 {
		send(t, mb, fmt.Sprint("batch7-", i), postbox.WithHeader("batch", "7"))
	}
	send(t, mb, "batch8", postbox.WithHeader("batch", "8"))
	corr := send(t, mb, "req", postbox.CorrelationID([]byte("job-42"))).ID
	outs, err := mb.WithdrawMatching(ctxT(t), postbox.MatchHeader("batch", "7"))
	if err != nil || len(outs) != 5 {
		t.Fatalf("withdraw batch=7: %+v, %v", outs, err)
	}
	for _, o := range outs {
		if o.Outcome != postbox.OutcomeWithdrawn {
			t.Fatalf("withdraw batch=7: %+v", outs)
		}
	}
	outs, err = mb.WithdrawMatching(ctxT(t), postbox.MatchCorrelationID([]byte("job-42")))
	if err != nil || len(outs) != 1 || outs[0].ID != corr {
		t.Fatalf("withdraw by correlation id: %+v, %v", outs, err)
	}
	if got := recvAck(t, mb); got != "batch8" {
		t.Fatalf("left: %q, want batch8", got)
	}
}

// nobodyCLI runs the postbox command as uid 65534 against the broker at socket.
func nobodyCLI(t *testing.T, socket string, args ...string) (int, string) {
	t.Helper()
	return runCLI(t, nobody, nil, append(args, "--socket", socket)...)
}

func TestOnlyTheSenderOrTheOwnerMayCancel(t *testing.T) {
	needRoot(t)
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "shared", postbox.Mode(0o622)) // others may send, not receive
	mine := send(t, mb, "root's", postbox.WithHeader("batch", "1")).ID
	code, out := nobodyCLI(t, b.Socket, "send", "shared", "nobody's", "--print-id", "--header", "batch=1")
	if code != 0 {
		t.Fatalf("send as nobody: exit %d %q", code, out)
	}
	theirs, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatalf("--print-id printed %q", out)
	}
	// nobody may not withdraw root's message: the whole request fails.
	code, out = nobodyCLI(t, b.Socket, "cancel", "shared", "--id", fmt.Sprint(theirs), "--id", fmt.Sprint(mine))
	if code != 77 || !strings.Contains(out, "permission denied") && !strings.Contains(out, "not yours") {
		t.Fatalf("nobody cancelling root's message: exit %d %q, want 77, permission denied", code, out)
	}
	code, out = nobodyCLI(t, b.Socket, "cancel", "shared", "--header", "batch=1", "--any-sender")
	if code != 77 || !strings.Contains(out, "ANY_SENDER") {
		t.Fatalf("nobody with --any-sender: exit %d %q, want 77 (permission denied)", code, out)
	}
	if info, _ := mb.Stat(ctxT(t)); info.Depth != 2 {
		t.Fatalf("after refused cancels: depth %d, want 2", info.Depth)
	}
	// A match by nobody takes nobody's only.
	code, out = nobodyCLI(t, b.Socket, "cancel", "shared", "--header", "batch=1", "-o", "json")
	var j struct {
		ID      uint64 `json:"id"`
		Outcome string `json:"outcome"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil || j.ID != theirs || j.Outcome != "withdrawn" {
		t.Fatalf("nobody cancelling its own by header: exit %d %q", code, out)
	}
	// Gone now: a second cancel exits 3 and says so.
	code, out = nobodyCLI(t, b.Socket, "cancel", "shared", "--id", fmt.Sprint(theirs))
	if code != 3 || !strings.Contains(out, "gone") {
		t.Fatalf("cancelling again: exit %d %q, want 3, gone", code, out)
	}
	// The owner may withdraw anybody's by id.
	theirs2 := func() uint64 {
		_, out := nobodyCLI(t, b.Socket, "send", "shared", "again", "--print-id")
		n, _ := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
		return n
	}()
	outs, err := mb.Withdraw(ctxT(t), theirs2, mine)
	if err != nil || len(outs) != 2 || outs[0].Outcome != postbox.OutcomeWithdrawn || outs[1].Outcome != postbox.OutcomeWithdrawn {
		t.Fatalf("owner withdrawing: %+v, %v", outs, err)
	}
}

func TestDurableUrgentMessageIsUrgentAfterRestart(t *testing.T) {
	cfg := durableConfig(t.TempDir())
	b := start(t, cfg)
	c := b.Dial(t)
	mb := create(t, c, "disk", postbox.Durable())
	send(t, mb, "p9", postbox.Priority(9))
	send(t, mb, "u1", postbox.Urgent())
	send(t, mb, "p0")
	send(t, mb, "u2", postbox.Urgent())
	b = restart(t, b, cfg)
	c = b.Dial(t)
	var got []string
	for range 4 {
		m := recv(t, c.Mailbox("disk"))
		got = append(got, fmt.Sprintf("%s:%v", m.Body, m.Urgent()))
		ack(t, m)
	}
	if want := []string{"u1:true", "u2:true", "p9:false", "p0:false"}; !slices.Equal(got, want) {
		t.Fatalf("after restart: %v, want %v", got, want)
	}
}

// TestPublisherUrgentMessagesGoAheadOfTheQueue: a Publisher made with
// Urgent sends urgent messages, batched: they are delivered ahead of the
// ordinary ones queued before them, in the order published.
func TestPublisherUrgentMessagesGoAheadOfTheQueue(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "work")
	fillBatches(t, mb, 1000)
	p := mb.Publisher(64, postbox.Urgent())
	for i := range 100 {
		if err := p.Send(ctxT(t), []byte(fmt.Sprint("u", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		m := recv(t, mb)
		if string(m.Body) != fmt.Sprint("u", i) || !m.Urgent() {
			t.Fatalf("delivery %d: %q urgent=%v, want u%d urgent", i, m.Body, m.Urgent(), i)
		}
		ack(t, m)
	}
	if m := recv(t, mb); m.Urgent() {
		t.Fatalf("after the urgent ones: %q is urgent", m.Body)
	}
}
