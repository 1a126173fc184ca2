package integration_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// A broker that stops answering (here: SIGSTOP, as a debugger or a
// wedged process would) must not hang its clients: every call returns
// when its context ends, saying the outcome is unknown, and replies that
// come after the client gave up are discarded without harm.

// stop stops p with SIGSTOP, waits until the kernel reports it stopped,
// and resumes it when t ends (before the broker's own cleanup, which
// needs it running to exit on SIGTERM).
func stop(t *testing.T, p *testbroker.Process) {
	t.Helper()
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Signal(syscall.SIGCONT) })
	pid := p.Cmd.Process.Pid
	waitFor(t, fmt.Sprintf("broker %d stopped", pid), func() bool { return procState(pid) == 'T' })
}

// resume undoes stop.
func resume(t *testing.T, p *testbroker.Process) {
	t.Helper()
	if err := p.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// procState is the state letter of /proc/pid/stat (R, S, T, ...).
func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ...: comm may hold spaces, so find the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// gaveUpAtDeadline fails t unless err says the client gave up at a
// deadline without a reply: ErrTimeout, context.DeadlineExceeded, a
// net.Error timeout, and ErrUnknownOutcome.
func gaveUpAtDeadline(t *testing.T, err error, what string) {
	t.Helper()
	wantErr(t, err, postbox.ErrTimeout, what)
	wantErr(t, err, context.DeadlineExceeded, what)
	wantErr(t, err, postbox.ErrUnknownOutcome, what)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("%s: %v is not a net.Error timeout", what, err)
	}
	if !strings.Contains(err.Error(), "outcome unknown") {
		t.Errorf("%s: message %q does not say the outcome is unknown", what, err)
	}
}

// within returns a context ending after d, cancelled when t ends.
func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestStoppedBrokerCallsReturnAtTheirDeadline(t *testing.T) {
	testbroker.CheckGoroutines(t)
	p := testbroker.StartProcess(t, cli(t), "--memory")
	c := p.Dial(t)
	q := create(t, c, "q")
	send(t, q, "leased")
	leased := recv(t, q)
	consumer, err := create(t, c, "stream").Consume(ctxT(t), postbox.Prefetch(4))
	if err != nil {
		t.Fatal(err)
	}
	closing, err := create(t, c, "closing").Consume(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	stop(t, p)

	// Each call runs in its own goroutine against the one stopped broker;
	// the hang guard in await turns a call that never returns into a
	// failure.
	const d = time.Second
	calls := map[string]func() error{
		"Receive": func() error { _, err := q.Receive(within(t, d)); return err },
		"Send":    func() error { _, err := q.Send(within(t, d), []byte("x")); return err },
		"Ack":     func() error { return leased.Ack(within(t, d)) },
		"Ping":    func() error { return c.Ping(within(t, d)) },
		"Stat":    func() error { _, err := q.Stat(within(t, d)); return err },
		"List":    func() error { _, err := c.List(within(t, d)); return err },
		"Create":  func() error { _, err := c.Create(within(t, d), "new"); return err },
		"Call": func() error {
			_, err := q.Call(within(t, d), []byte("x"))
			if ce := (*postbox.CallError)(nil); !errors.As(err, &ce) || ce.Outcome != postbox.OutcomeUnknown {
				t.Errorf("Call: %v is not a CallError with OutcomeUnknown", err)
			}
			return err
		},
		"Consumer.Close": func() error {
			return closing.Close(within(t, d))
		},
	}
	results := map[string]<-chan result[struct{}]{}
	for name, f := range calls {
		results[name] = async(func() (struct{}, error) { return struct{}{}, f() })
	}
	next := async(func() (*postbox.Message, error) { return consumer.Next(within(t, d)) })
	dial := async(func() (*postbox.Client, error) {
		return postbox.Dial(within(t, d), postbox.WithSocket(p.Socket))
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := async(func() (*postbox.Message, error) { return q.Receive(ctx) })
	cancel()

	for name, ch := range results {
		gaveUpAtDeadline(t, await(t, ch, name).err, name)
	}
	// Next waits for messages already on their way: at its deadline
	// nothing was taken, so the outcome is known.
	r := await(t, next, "Consumer.Next")
	wantErr(t, r.err, postbox.ErrTimeout, "Consumer.Next")
	wantErr(t, r.err, context.DeadlineExceeded, "Consumer.Next")
	if errors.Is(r.err, postbox.ErrUnknownOutcome) {
		t.Errorf("Consumer.Next: %v: nothing was asked of the broker, the outcome is known", r.err)
	}
	// A broker that accepts but never answers the handshake: no client.
	dr := await(t, dial, "Dial")
	if dr.err == nil {
		dr.v.Close()
		t.Fatal("Dial to a stopped broker succeeded")
	}
	wantErr(t, dr.err, postbox.ErrTimeout, "Dial")

	cr := await(t, cancelled, "cancelled Receive")
	wantErr(t, cr.err, context.Canceled, "cancelled Receive")
	wantErr(t, cr.err, postbox.ErrUnknownOutcome, "cancelled Receive")
	if errors.Is(cr.err, postbox.ErrTimeout) {
		t.Errorf("cancelled Receive: %v matches ErrTimeout", cr.err)
	}
}

// The normal case still gets the broker's definite answer: the broker is
// told the request's timeout, and answers it within the reply grace.
func TestRunningBrokerTimeoutIsDefinite(t *testing.T) {
	testbroker.CheckGoroutines(t)
	p := testbroker.StartProcess(t, cli(t), "--memory")
	c := p.Dial(t)
	q := create(t, c, "q")
	_, err := q.Receive(within(t, 100*time.Millisecond))
	wantErr(t, err, postbox.ErrTimeout, "receive from an empty mailbox")
	if errors.Is(err, postbox.ErrUnknownOutcome) {
		t.Fatalf("receive from an empty mailbox of a running broker: %v, want the broker's definite timeout", err)
	}
}

func TestLateRepliesAfterGiveUpDoNotCorruptLaterCalls(t *testing.T) {
	testbroker.CheckGoroutines(t)
	p := testbroker.StartProcess(t, cli(t), "--memory")
	c := p.Dial(t)
	q := create(t, c, "q")
	late := create(t, c, "late")
	send(t, q, "m1")
	stop(t, p)

	// Three requests the client gives up on; the broker reads them only
	// after SIGCONT, and then answers each: a RECV that leases m1, a SEND
	// that queues its message, and a STAT.
	r := async(func() (*postbox.Message, error) { return q.Receive(within(t, time.Second)) })
	s := async(func() (postbox.Receipt, error) { return late.Send(within(t, time.Second), []byte("late")) })
	st := async(func() (postbox.Info, error) { return late.Stat(within(t, time.Second)) })
	gaveUpAtDeadline(t, await(t, r, "Receive").err, "Receive")
	gaveUpAtDeadline(t, await(t, s, "Send").err, "Send")
	gaveUpAtDeadline(t, await(t, st, "Stat").err, "Stat")
	resume(t, p)

	// The late replies come in while these calls are in flight, reusing
	// the pooled calls the abandoned ones had: each must see its own
	// reply.
	ctx := ctxT(t)
	const n = 32
	var sends [n]<-chan result[postbox.Receipt]
	var stats [n]<-chan result[postbox.Info]
	for i := range n {
		sends[i] = async(func() (postbox.Receipt, error) { return q.Send(ctx, []byte(fmt.Sprint(i))) })
		stats[i] = async(func() (postbox.Info, error) { return late.Stat(ctx) })
	}
	for i := range n {
		if r := await(t, sends[i], "send"); r.err != nil {
			t.Fatalf("send %d: %v", i, r.err)
		}
		if r := await(t, stats[i], "stat"); r.err != nil || r.v.Name != "late" {
			t.Fatalf("stat of late: %+v, %v", r.v, r.err)
		}
	}
	// The late RECV's lease was given back, not kept until disconnect:
	// m1 is still first in q, and the late send took effect.
	m := recv(t, q)
	if string(m.Body) != "m1" || m.Redeliveries != 1 {
		t.Fatalf("first in q: %q with %d redeliveries, want m1 nacked once", m.Body, m.Redeliveries)
	}
	ack(t, m)
	seen := map[string]bool{}
	for range n {
		seen[recvAck(t, q)] = true
	}
	for i := range n {
		if !seen[fmt.Sprint(i)] {
			t.Fatalf("message %d not received; got %v", i, seen)
		}
	}
	if got := recvAck(t, late); got != "late" {
		t.Fatalf("late mailbox holds %q, want the late send", got)
	}
}

// The command line ends about when --timeout says, even when the broker
// never answers: 3 (timed out) for requests the broker took, 69 (broker
// unreachable) when it never answered the handshake.
func TestCLITimeoutAgainstStoppedBrokerEndsOnTime(t *testing.T) {
	testbroker.CheckGoroutines(t)
	bin := cli(t)
	p := testbroker.StartProcess(t, bin, "--memory")
	c := p.Dial(t)
	create(t, c, "q")
	full := create(t, c, "full", postbox.Capacity(1))
	send(t, full, "x")
	run := func(args ...string) <-chan result[string] {
		return async(func() (string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*hangGuard)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append([]string{"--socket", p.Socket}, args...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			return stderr.String(), err
		})
	}
	check := func(r result[string], what, says string, want int) {
		t.Helper()
		if code := testbroker.ExitCode(r.err); code != want {
			t.Errorf("%s: exit %d (%v), want %d; stderr:\n%s", what, code, r.err, want, r.v)
		}
		if !strings.Contains(r.v, says) {
			t.Errorf("%s: stderr does not say %q:\n%s", what, says, r.v)
		}
	}

	// Stopped while the requests wait at the broker: they were sent, so
	// their outcome is unknown.
	recvWaiting := run("recv", "q", "--timeout", "5s")
	sendWaiting := run("send", "full", "y", "--timeout", "5s")
	waitStat(t, c.Mailbox("q"), "Receivers == 1", func(i postbox.Info) bool { return i.Receivers == 1 })
	waitStat(t, full, "BlockedSenders == 1", func(i postbox.Info) bool { return i.BlockedSenders == 1 })
	stop(t, p)
	// Stopped before they connect: the handshake is bounded too.
	recvStopped := run("recv", "q", "--timeout", "1s")
	sendStopped := run("send", "q", "x", "--timeout", "1s")

	check(await(t, recvWaiting, "recv waiting"), "recv waiting", "outcome unknown", 3)
	check(await(t, sendWaiting, "send waiting"), "send waiting", "outcome unknown", 3)
	// A broker that never answers the handshake is unreachable (69), and
	// the message says it timed out, as every timeout does.
	check(await(t, recvStopped, "recv against stopped broker"), "recv against stopped broker", "timed out; is \"postbox serve\" running?", 69)
	check(await(t, sendStopped, "send against stopped broker"), "send against stopped broker", "timed out; is \"postbox serve\" running?", 69)
}
