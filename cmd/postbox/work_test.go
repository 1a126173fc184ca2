package main

// Tests of postbox work with real processes: the worker, its commands
// (sh scripts) and the broker are each a process of their own.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

// workProc is a running `postbox work`.
type workProc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan error
}

// lockedBuffer is a bytes buffer a process writes and the test reads.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startWork runs `postbox work args... --socket S` in dir.
func startWork(t *testing.T, p *testbroker.Process, dir string, args ...string) *workProc {
	t.Helper()
	at := len(args)
	for i, a := range args {
		if a == "--" {
			at = i
			break
		}
	}
	argv := append(append(append([]string{"work"}, args[:at]...), "--socket", p.Socket), args[at:]...)
	w := &workProc{cmd: exec.Command(bin, argv...), stderr: &lockedBuffer{}, done: make(chan error, 1)}
	w.cmd.Dir = dir
	w.cmd.Stdout = w.stderr
	w.cmd.Stderr = w.stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.done <- w.cmd.Wait() }()
	t.Cleanup(func() {
		w.cmd.Process.Kill()
		<-w.done
	})
	return w
}

// wait waits (at most the hang guard) for the worker to exit.
func (w *workProc) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-w.done:
		w.done <- err
		return err
	case <-time.After(testbroker.HangGuard):
		t.Fatalf("postbox work still running after %v; output:\n%s", testbroker.HangGuard, w.stderr.String())
		return nil
	}
}

// eventually polls cond (at most the hang guard).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testbroker.HangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not so after %v: %s", testbroker.HangGuard, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lines returns the lines of file (none if it does not exist).
func fileLines(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(strings.TrimSpace(string(b)))
}

func TestCLIWorkAcksWhatSucceedsAndDeadLettersAfterMaxDeliveries(t *testing.T) {
	p := startBroker(t)
	dir := t.TempDir()
	ok(t, p, "", "create", "dlq")
	ok(t, p, "", "create", "jobs", "--max-deliveries", "3", "--dead-letter", "dlq")
	sender := ok(t, p, "good\nbad\n", "send", "jobs", "--lines")
	// The command logs each run as BODY:REDELIVERIES:SENDER_PID and fails
	// on "bad".
	w := startWork(t, p, dir, "jobs", "--max-attempts", "3", "--", "sh", "-c",
		`read b; echo "$b:$POSTBOX_REDELIVERIES:$POSTBOX_SENDER_PID:$POSTBOX_ATTEMPT:$POSTBOX_TYPE" >> runs; [ "$b" = good ]`)
	c := p.Dial(t)
	eventually(t, "the failing message is dead-lettered", func() bool { return stat(t, c, "dlq").Depth == 1 })
	if info := stat(t, c, "jobs"); info.Depth != 0 || info.InFlight != 0 {
		t.Fatalf("jobs after the work: %+v", info)
	}
	pid := strconv.Itoa(sender.pid)
	want := []string{"good:0:" + pid + ":1:1", "bad:0:" + pid + ":1:1", "bad:1:" + pid + ":2:1", "bad:2:" + pid + ":3:1"}
	got := fileLines(t, filepath.Join(dir, "runs"))
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("runs %q, want %q (good once, bad three times, with its redelivery count and sender)", got, want)
	}
	var dl struct {
		Body   string `json:"body"`
		Reason string `json:"dead_letter_reason"`
	}
	if err := json.Unmarshal([]byte(ok(t, p, "", "recv", "dlq", "-o", "json").stdout), &dl); err != nil {
		t.Fatal(err)
	}
	if dl.Body != "bad" || dl.Reason != "max deliveries reached" {
		t.Fatalf("dead letter %+v", dl)
	}
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := w.wait(t); err != nil {
		t.Fatalf("work after SIGTERM: %v, want exit 0\n%s", err, w.stderr.String())
	}
}

func TestCLIWorkAppliesMaxAttemptsItselfWhenTheMailboxHasNoLimit(t *testing.T) {
	p := startBroker(t)
	dir := t.TempDir()
	ok(t, p, "", "create", "dlq")
	ok(t, p, "", "create", "jobs", "--dead-letter", "dlq") // no --max-deliveries
	ok(t, p, "", "create", "nodlq")
	ok(t, p, "bad\n", "send", "jobs", "--lines")
	ok(t, p, "bad\n", "send", "nodlq", "--lines")
	w := startWork(t, p, dir, "jobs", "--max-attempts", "2", "--", "sh", "-c", `echo "$POSTBOX_ATTEMPT" >> runs; exit 7`)
	c := p.Dial(t)
	eventually(t, "the worker moves the message to dlq", func() bool { return stat(t, c, "dlq").Depth == 1 })
	if got := fileLines(t, filepath.Join(dir, "runs")); strings.Join(got, " ") != "1 2" {
		t.Fatalf("attempts %q, want 1 2", got)
	}
	var dl struct {
		Body    string              `json:"body"`
		Headers map[string][]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(ok(t, p, "", "recv", "dlq", "-o", "json").stdout), &dl); err != nil {
		t.Fatal(err)
	}
	if dl.Body != "bad" || len(dl.Headers["x-postbox-failed-id"]) != 1 || len(dl.Headers["x-postbox-failed-sender"]) != 1 {
		t.Fatalf("moved message %+v", dl)
	}
	w.cmd.Process.Signal(syscall.SIGTERM)
	if err := w.wait(t); err != nil {
		t.Fatalf("work: %v\n%s", err, w.stderr.String())
	}
	if info := stat(t, c, "jobs"); info.Depth != 0 || info.InFlight != 0 {
		t.Fatalf("jobs: %+v", info)
	}
	if out := w.stderr.String(); !strings.Contains(out, `moved to "dlq"`) || !strings.Contains(out, "exit status 7") {
		t.Errorf("work's stderr does not report the failures and the move:\n%s", out)
	}

	// No dead-letter mailbox: dropped, and said so.
	w = startWork(t, p, dir, "nodlq", "--max-attempts", "1", "--", "false")
	eventually(t, "the message is dropped", func() bool { i := stat(t, c, "nodlq"); return i.Depth == 0 && i.InFlight == 0 })
	w.cmd.Process.Signal(syscall.SIGTERM)
	if err := w.wait(t); err != nil {
		t.Fatalf("work: %v\n%s", err, w.stderr.String())
	}
	if !strings.Contains(w.stderr.String(), "dropped") {
		t.Errorf("work's stderr does not say the message was dropped:\n%s", w.stderr.String())
	}
}

func TestCLIWorkRedeliversTheMessageOfAKilledCommand(t *testing.T) {
	p := startBroker(t)
	dir := t.TempDir()
	ok(t, p, "", "create", "jobs")
	ok(t, p, "payload\n", "send", "jobs", "--lines")
	w := startWork(t, p, dir, "jobs", "--", "sh", "-c", `[ "$POSTBOX_REDELIVERIES" = 0 ] && kill -9 $$; cat >> out`)
	c := p.Dial(t)
	eventually(t, "the second attempt ran", func() bool { return len(fileLines(t, filepath.Join(dir, "out"))) == 1 })
	eventually(t, "the message is acked", func() bool { i := stat(t, c, "jobs"); return i.Depth == 0 && i.InFlight == 0 })
	if got := fileLines(t, filepath.Join(dir, "out")); got[0] != "payload" {
		t.Fatalf("out %q", got)
	}
	if info := stat(t, c, "jobs"); info.Redelivered != 1 {
		t.Fatalf("redelivered %d, want 1 (the killed attempt)", info.Redelivered)
	}
	w.cmd.Process.Signal(syscall.SIGTERM)
	if err := w.wait(t); err != nil {
		t.Fatalf("work: %v\n%s", err, w.stderr.String())
	}
}

func TestCLIWorkKilledLosesNothing(t *testing.T) {
	p := startBroker(t)
	dir := t.TempDir()
	ok(t, p, "", "create", "jobs")
	ok(t, p, "precious\n", "send", "jobs", "--lines")
	w := startWork(t, p, dir, "jobs", "--", "sh", "-c", `echo $$ > pid; exec sleep 60`)
	pidFile := filepath.Join(dir, "pid")
	eventually(t, "the command started", func() bool { return len(fileLines(t, pidFile)) == 1 })
	child, _ := strconv.Atoi(fileLines(t, pidFile)[0])
	if err := w.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	w.wait(t)
	c := p.Dial(t)
	eventually(t, "the lease returns to the mailbox", func() bool { i := stat(t, c, "jobs"); return i.Depth == 1 && i.InFlight == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	m, err := c.Mailbox("jobs").Receive(ctx, postbox.NoWait())
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Body) != "precious" || m.Redeliveries != 1 {
		t.Fatalf("message %q with %d redeliveries, want precious with 1", m.Body, m.Redeliveries)
	}
	// The command died with its worker (no second, concurrent attempt).
	eventually(t, "the command is gone", func() bool { return !alive(child) })
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

func TestCLIWorkSIGTERMFinishesRunningCommandsAndReturnsTheRest(t *testing.T) {
	p := startBroker(t)
	dir := t.TempDir()
	ok(t, p, "", "create", "jobs")
	ok(t, p, numbered(1, 6, 1), "send", "jobs", "--lines")
	// Each command says it started, waits for the file "go", then says
	// it finished.
	w := startWork(t, p, dir, "jobs", "-P", "2", "--", "sh", "-c",
		`read b; echo $b >> started; while [ ! -e go ]; do sleep 0.01; done; echo $b >> finished`)
	c := p.Dial(t)
	eventually(t, "two commands run", func() bool { return len(fileLines(t, filepath.Join(dir, "started"))) == 2 })
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The worker waits for its commands: still running, it holds their
	// two messages and no other.
	eventually(t, "the worker has stopped its stream", func() bool { return stat(t, c, "jobs").Consumers == 0 })
	if info := stat(t, c, "jobs"); info.InFlight != 2 || info.Depth != 4 {
		t.Fatalf("after SIGTERM, while two commands run: in flight %d depth %d, want 2 and 4", info.InFlight, info.Depth)
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.wait(t); err != nil {
		t.Fatalf("work after SIGTERM: %v, want exit 0\n%s", err, w.stderr.String())
	}
	started, finished := fileLines(t, filepath.Join(dir, "started")), fileLines(t, filepath.Join(dir, "finished"))
	if len(started) != 2 || len(finished) != 2 {
		t.Fatalf("started %q finished %q: want the two running ones to finish and no other to start", started, finished)
	}
	info := stat(t, c, "jobs")
	if info.Depth != 4 || info.InFlight != 0 || info.Redelivered != 0 {
		t.Fatalf("after the worker stopped: depth %d in flight %d redelivered %d, want 4 0 0", info.Depth, info.InFlight, info.Redelivered)
	}
	// The four left are the ones never started.
	rest := strings.Fields(ok(t, p, "", "recv", "jobs", "--count", "4").stdout)
	for _, b := range rest {
		for _, s := range started {
			if b == s {
				t.Fatalf("message %s ran and is still queued (left %q)", b, rest)
			}
		}
	}
}

func TestCLIWorkGraceSendsSIGTERMToCommandsStillRunning(t *testing.T) {
	p := startBroker(t)
	dir := t.TempDir()
	ok(t, p, "", "create", "jobs")
	ok(t, p, "slow\n", "send", "jobs", "--lines")
	w := startWork(t, p, dir, "jobs", "--grace", "50ms", "--", "sh", "-c", `echo started > started; exec sleep 60`)
	eventually(t, "the command started", func() bool { return len(fileLines(t, filepath.Join(dir, "started"))) == 1 })
	w.cmd.Process.Signal(syscall.SIGTERM)
	if err := w.wait(t); err != nil {
		t.Fatalf("work: %v, want exit 0\n%s", err, w.stderr.String())
	}
	info := stat(t, p.Dial(t), "jobs")
	if info.Depth != 1 || info.InFlight != 0 || info.Redelivered != 1 {
		t.Fatalf("the stopped command's message: depth %d in flight %d redelivered %d, want 1 0 1 (nacked)", info.Depth, info.InFlight, info.Redelivered)
	}
}

func TestCLIWorkRefusesAMissingCommand(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "jobs")
	exits(t, p, exitUsage, "work", "jobs", "--", "/nonexistent/cmd")
	exits(t, p, exitUsage, "work", "jobs", "-P", "0", "--", "true")
	exits(t, p, exitUsage, "work", "jobs", "true")
}
