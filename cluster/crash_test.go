package cluster_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// Failures: NATS nodes and brokers killed with SIGKILL while messages
// flow. The count that matters is acknowledged sends lost: 0.

var crashCycles = flag.Int("cluster.cycles", 2, "crash harness: cycles of SIGKILL (a NATS node, then a broker process); raise for a longer run")

// sender sends "k" for k in [from, to) through the broker at socket,
// dialing again after any failure, and records each acknowledged k.
type sender struct {
	mu    sync.Mutex
	acked map[int]bool
	fails int
}

func (s *sender) run(ctx context.Context, socket, name string, from, to int) error {
	var c *postbox.Client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for k := from; k < to; {
		if ctx.Err() != nil {
			return fmt.Errorf("sending %d: %w", k, ctx.Err())
		}
		if c == nil {
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			var err error
			c, err = postbox.Dial(dctx, postbox.WithSocket(socket))
			cancel()
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
		}
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err := c.Mailbox(name).Send(sctx, []byte(strconv.Itoa(k)))
		cancel()
		if err != nil {
			s.mu.Lock()
			s.fails++
			s.mu.Unlock()
			if !errors.Is(err, postbox.ErrUnavailable) {
				c.Close()
				c = nil
			}
			time.Sleep(50 * time.Millisecond)
			continue // not acknowledged: sent again (a duplicate is allowed, a loss is not)
		}
		s.mu.Lock()
		s.acked[k] = true
		s.mu.Unlock()
		k++
	}
	return nil
}

// receive takes and acks messages of name through socket until ctx
// ends, recording each in seen (guarded by s.mu).
func (s *sender) receive(ctx context.Context, socket, name string, seen map[int]bool) {
	var c *postbox.Client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for ctx.Err() == nil {
		if c == nil {
			var err error
			if c, err = postbox.Dial(ctx, postbox.WithSocket(socket)); err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		m, err := c.Mailbox(name).Receive(rctx)
		cancel()
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		// Delivered is not lost, whatever the ack's outcome: an ack whose
		// confirmation was cut off by a crash may have been applied (then
		// the message does not come again), or not (then it comes again
		// and is seen twice).
		k, _ := strconv.Atoi(string(m.Body))
		s.mu.Lock()
		seen[k] = true
		s.mu.Unlock()
		m.Ack(ctx)
	}
}

// lost drains name through socket and returns the acknowledged sends
// neither seen nor found.
func (s *sender) lost(t *testing.T, socket, name string, seen map[int]bool) []int {
	t.Helper()
	ctx := ctxT(t)
	c, err := postbox.Dial(ctx, postbox.WithSocket(socket))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s.mu.Lock()
	want := len(s.acked)
	s.mu.Unlock()
	if seen == nil {
		seen = make(map[int]bool)
	}
	for k := range seen {
		if !s.acked[k] {
			delete(seen, k)
		}
	}
	deadline := time.Now().Add(hang)
	for len(seen) < want && time.Now().Before(deadline) {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		m, err := c.Mailbox(name).Receive(rctx)
		cancel()
		if errors.Is(err, postbox.ErrTimeout) || errors.Is(err, postbox.ErrUnavailable) {
			continue
		}
		if err != nil {
			t.Fatalf("drain: %v", err)
		}
		k, _ := strconv.Atoi(string(m.Body))
		if s.acked[k] {
			seen[k] = true
		}
		m.Ack(ctx)
	}
	var lost []int
	for k := range s.acked {
		if !seen[k] {
			lost = append(lost, k)
		}
	}
	return lost
}

// TestClusterNodeKilledUnderLoadLosesNoAcknowledgedSend kills the
// stream's leader while four senders send through broker A, then drains
// through broker B.
func TestClusterNodeKilledUnderLoadLosesNoAcknowledgedSend(t *testing.T) {
	nc, a, b := sharedCluster(t)
	ctx := ctxT(t)
	ca := dial(t, a)
	if _, err := ca.Create(ctx, "load", postbox.Cluster(3)); err != nil {
		t.Fatal(err)
	}
	s := &sender{acked: make(map[int]bool)}
	const per, senders = 100, 4
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for i := range senders {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- s.run(ctx, a.socket, "load", i*per, (i+1)*per) }()
	}
	for {
		s.mu.Lock()
		n := len(s.acked)
		s.mu.Unlock()
		if n >= senders*per/4 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	leader := streamLeader(t, ca, "load")
	nc.kill(leader)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.start(leader); err != nil {
		t.Fatal(err)
	}
	if lost := s.lost(t, b.socket, "load", nil); len(lost) > 0 {
		t.Fatalf("%d acknowledged sends lost: %v", len(lost), lost)
	}
	t.Logf("%d acknowledged, %d sends failed and were sent again, 0 lost", len(s.acked), s.fails)
	if err := nc.waitReady(); err != nil {
		t.Fatal(err)
	}
	ca.Mailbox("load").Destroy(ctx)
}

// streamLeader is the index of the node leading name's stream.
func streamLeader(t *testing.T, c *postbox.Client, name string) int {
	t.Helper()
	i, err := c.Mailbox(name).Stat(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscanf(i.StreamState, "leader n%d", &n); err != nil || n < 1 {
		t.Fatalf("stream state %q: no leader", i.StreamState)
	}
	return n - 1
}

var cli struct {
	once sync.Once
	bin  string
	err  error
	dir  string
}

// postboxBin builds the postbox command once.
func postboxBin(t *testing.T) string {
	cli.once.Do(func() {
		cli.dir, cli.err = os.MkdirTemp("", "postbox-cli-")
		if cli.err == nil {
			cli.bin, cli.err = testbroker.BuildCLI(cli.dir)
			sharedCleanups = append(sharedCleanups, func() { os.RemoveAll(cli.dir) })
		}
	})
	if cli.err != nil {
		t.Fatal(cli.err)
	}
	return cli.bin
}

// serveArgs are `postbox serve`'s flags for a broker on nc.
func serveArgs(t *testing.T, nc *natsCluster, host string) []string {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(brokerPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--memory", "--cluster", strings.Join(nc.urls(), ","), "--cluster-user", brokerUser,
		"--cluster-password-file", pw, "--cluster-host-id", host}
}

// TestClusterServeProcess: `postbox serve --cluster` as its own process
// beside an in-process broker; the CLI creates, lists and stats the
// cluster mailbox.
func TestClusterServeProcess(t *testing.T) {
	nc, a, _ := sharedCluster(t)
	bin := postboxBin(t)
	p := testbroker.StartProcess(t, bin, serveArgs(t, nc, "host-p")...)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"--socket", p.Socket}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("postbox %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("create", "proc.jobs", "--cluster", "--replicas", "3")
	// --exist-ok compares --cluster, and --replicas when given.
	run("create", "proc.jobs", "--cluster", "--replicas", "3", "--exist-ok")
	run("create", "proc.jobs", "--cluster", "--exist-ok")
	// (A plain create of proc.jobs would make a local mailbox that
	// shadows it on this broker: docs/CLUSTER.md, Names.)
	run("create", "proc.local")
	for args, want := range map[string]string{
		"proc.jobs --cluster --replicas 1": "replicas 3 (asked 1)",
		"proc.local --cluster":             "cluster false (asked true)",
	} {
		cmd := append([]string{"--socket", p.Socket, "create", "--exist-ok"}, strings.Fields(args)...)
		out, err := exec.Command(bin, cmd...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "exists with other settings") || !strings.Contains(string(out), want) {
			t.Fatalf("create %s --exist-ok: %v\n%s", args, err, out)
		}
	}
	out, err := exec.Command(bin, "--socket", p.Socket, "create", "proc.bad", "--cluster", "--capacity", "0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "rendezvous") {
		t.Fatalf("create --cluster --capacity 0: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"create", "proc.x", "--replicas", "3"}, {"create", "proc.x", "--cluster", "--replicas", "9"}} {
		out, err := exec.Command(bin, append([]string{"--socket", p.Socket}, args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--replicas") {
			t.Fatalf("postbox %v: %v\n%s", args, err, out)
		}
	}
	ctx := ctxT(t)
	ca := dial(t, a)
	if _, err := ca.Mailbox("proc.jobs").Send(ctx, []byte("from a")); err != nil {
		t.Fatal(err)
	}
	st := run("stat", "proc.jobs")
	for _, want := range []string{"cluster/R3", "replicas:", "pbtest", "leader n", "1 messages"} {
		if !strings.Contains(st, want) {
			t.Fatalf("stat lacks %q:\n%s", want, st)
		}
	}
	if ls := run("ls"); !strings.Contains(ls, "proc.jobs") || !strings.Contains(ls, "cluster/R3") {
		t.Fatalf("ls:\n%s", ls)
	}
	cp, err := postbox.Dial(ctx, postbox.WithSocket(p.Socket))
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	m, err := cp.Mailbox("proc.jobs").Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Body) != "from a" || m.Sender.PID != int32(os.Getpid()) {
		t.Fatalf("got %q from %+v", m.Body, m.Sender)
	}
	m.Ack(ctx)
	run("rm", "proc.jobs")
}

// TestClusterCrashHarness: cycles of SIGKILL, of a NATS node and then of
// the broker process the sender uses, while it sends and a receiver
// takes and acks through the other broker; every acknowledged send must
// be received, during the run or afterwards. -cluster.cycles N for a
// longer run.
func TestClusterCrashHarness(t *testing.T) {
	nc, _, b := sharedCluster(t)
	bin := postboxBin(t)
	args := serveArgs(t, nc, "host-crash")
	p := testbroker.StartProcess(t, bin, args...)
	ctx := ctxT(t)
	cb := dial(t, b)
	if _, err := cb.Create(ctx, "crash", postbox.Cluster(3)); err != nil {
		t.Fatal(err)
	}
	s := &sender{acked: make(map[int]bool)}
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const total = 1 << 30
	done := make(chan error, 1)
	go func() { done <- s.run(sctx, p.Socket, "crash", 0, total) }()
	// A receiver through broker B takes and acks meanwhile.
	seen := make(map[int]bool)
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	received := make(chan struct{})
	go func() { s.receive(rctx, b.socket, "crash", seen); close(received) }()
	acked := func() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.acked) }
	progress := func() {
		t.Helper()
		n, deadline := acked(), time.Now().Add(hang)
		for acked() < n+20 {
			if time.Now().After(deadline) {
				t.Fatalf("no progress after a crash (%d acknowledged)", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for cycle := range *crashCycles {
		progress()
		node := cycle % len(nc.nodes)
		nc.kill(node)
		progress()
		if err := nc.start(node); err != nil {
			t.Fatal(err)
		}
		progress()
		p.Signal(syscall.SIGKILL)
		p.Wait()
		p = testbroker.StartProcessAt(t, bin, p.Socket, args...)
		progress()
	}
	cancel()
	<-done
	rcancel()
	<-received
	if lost := s.lost(t, b.socket, "crash", seen); len(lost) > 0 {
		t.Fatalf("%d acknowledged sends lost: %v", len(lost), lost)
	}
	t.Logf("%d cycles: %d sends acknowledged, %d failed and were sent again, 0 lost", *crashCycles, len(s.acked), s.fails)
	if err := nc.waitReady(); err != nil {
		t.Fatal(err)
	}
	cb.Mailbox("crash").Destroy(ctx)
}
