package main

// Tests of req, reply, call and ls's services, with real `postbox reply`
// processes serving through a real `postbox serve`.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/rpc"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// server is a background `postbox reply` (or other long-running) process.
type server struct {
	cmd  *exec.Cmd
	out  bytes.Buffer // stdout and stderr
	done chan struct{}
	err  error // Wait's, after done
}

// startServer runs `postbox reply NAME --socket S FLAGS... -- ARGV...` and
// waits until the broker counts one more consumer on NAME.
func startServer(t *testing.T, p *testbroker.Process, name string, flags []string, argv ...string) *server {
	t.Helper()
	before := consumers(t, p, name)
	args := append([]string{"reply", name, "--socket", p.Socket}, flags...)
	args = append(append(args, "--"), argv...)
	s := &server{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	s.cmd.Stdout, s.cmd.Stderr = &syncWriter{w: &s.out}, &syncWriter{w: &s.out}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(testbroker.HangGuard):
			s.cmd.Process.Kill()
			<-s.done
			t.Errorf("postbox reply did not stop on SIGTERM")
		}
	})
	waitFor(t, fmt.Sprintf("postbox reply on %q to consume", name), func() bool {
		select {
		case <-s.done:
			t.Fatalf("postbox reply exited: %v\n%s", s.err, s.output())
		default:
		}
		return consumers(t, p, name) > before
	})
	return s
}

func (s *server) output() string {
	return s.cmd.Stdout.(*syncWriter).String()
}

// syncWriter is a Writer safe for the two goroutines of Stdout and Stderr.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

// consumers is NAME's consumer count, 0 if it does not exist.
func consumers(t *testing.T, p *testbroker.Process, name string) uint64 {
	t.Helper()
	c := p.Dial(t)
	info, err := c.Mailbox(name).Stat(context.Background())
	if err != nil {
		return 0
	}
	return uint64(info.Consumers)
}

// waitFor polls cond until it holds, failing after the hang guard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testbroker.HangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after %v", what, testbroker.HangGuard)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// background runs `postbox args... --socket S` without waiting for it.
func background(t *testing.T, p *testbroker.Process, stdin string, args ...string) <-chan cliRun {
	t.Helper()
	ch := make(chan cliRun, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*testbroker.HangGuard)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append(args, "--socket", p.Socket)...)
		cmd.Stdin = strings.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		ch <- cliRun{stdout: stdout.String(), stderr: stderr.String(), code: testbroker.ExitCode(err), pid: cmd.Process.Pid}
	}()
	return ch
}

func TestCLIReqReplyRoundTripThroughAShellCommand(t *testing.T) {
	p := startBroker(t)
	srv := startServer(t, p, "upper", nil, "sh", "-c",
		`printf '%s|%s|%s|%s|' "$POSTBOX_SENDER_UID" "$POSTBOX_SENDER_PID" "$POSTBOX_METHOD" "$POSTBOX_MAILBOX"; tr a-z A-Z`)

	r := ok(t, p, "", "req", "upper", "hello", "--method", "shout")
	want := fmt.Sprintf("%d|%d|shout|upper|HELLO\n", os.Getuid(), r.pid)
	if r.stdout != want {
		t.Errorf("req printed %q, want %q", r.stdout, want)
	}
	// The body from stdin, printed raw.
	r = ok(t, p, "from stdin\n", "req", "upper", "-", "-o", "raw")
	if !strings.HasSuffix(r.stdout, "||upper|FROM STDIN\n") {
		t.Errorf("req - -o raw printed %q", r.stdout)
	}
	// -o json: the reply, who sent it (the reply process), its status.
	r = ok(t, p, "", "req", "upper", "json please", "-o", "json", "--header", "a=1", "--timeout", "20s")
	var j struct {
		Body    string              `json:"body"`
		Status  string              `json:"status"`
		Code    uint32              `json:"status_code"`
		Sender  struct{ PID int }   `json:"sender"`
		Corr    string              `json:"correlation_id_base64"`
		Headers map[string][]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
		t.Fatalf("req -o json: %v: %q", err, r.stdout)
	}
	if !strings.HasSuffix(j.Body, "JSON PLEASE") || j.Status != "OK" || j.Code != 0 || j.Sender.PID != srv.cmd.Process.Pid {
		t.Errorf("req -o json: %+v (server pid %d)", j, srv.cmd.Process.Pid)
	}
}

func TestCLIReqErrorReplyExitsOneWithCodeAndMessage(t *testing.T) {
	p := startBroker(t)
	startServer(t, p, "fails", nil, "sh", "-c", `cat >/dev/null; echo noise >&2; echo "bad input: $POSTBOX_METHOD" >&2; exit 3`)
	r := exits(t, p, 1, "req", "fails", "x", "--method", "parse")
	if want := "postbox: req \"fails\": Unknown: bad input: parse\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	if r.stdout != "" {
		t.Errorf("an error reply printed %q on stdout", r.stdout)
	}
	// -o json prints the error reply and still exits 1.
	r = exits(t, p, 1, "req", "fails", "x", "-o", "json")
	var j struct {
		Status string `json:"status"`
		Code   uint32 `json:"status_code"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || j.Status != "Unknown" || j.Code != 2 || j.Error != "bad input:" {
		t.Errorf("req -o json of an error reply: %+v, %v: %q", j, err, r.stdout)
	}
}

func TestCLIReqWithNoServerTimesOutExitThree(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "idle")
	r := exits(t, p, 3, "req", "idle", "x", "--timeout", "200ms")
	if !strings.Contains(r.stderr, `"idle"`) {
		t.Errorf("stderr %q does not name the mailbox", r.stderr)
	}
	// Withdrawn: nothing was left queued.
	if info, err := p.Dial(t).Mailbox("idle").Stat(context.Background()); err != nil || info.Depth != 0 {
		t.Errorf("after the timed-out req: %+v, %v; want depth 0", info, err)
	}
	exits(t, p, exitNotFound, "req", "nosuch", "x", "--timeout", "5s")
}

func TestCLIReplyParallelRunsNCommandsAtOnce(t *testing.T) {
	p := startBroker(t)
	dir := t.TempDir()
	// Each command waits until four are running: with fewer at once,
	// none would finish.
	script := fmt.Sprintf(`touch %s/"$$"; i=0; while [ "$(ls %s | wc -l)" -lt 4 ]; do sleep 0.02; i=$((i+1)); [ $i -lt 1500 ] || exit 9; done; cat`, dir, dir)
	startServer(t, p, "par", []string{"-P", "4"}, "sh", "-c", script)
	var runs []<-chan cliRun
	for i := range 4 {
		runs = append(runs, background(t, p, "", "req", "par", strconv.Itoa(i), "--timeout", "60s"))
	}
	for i, ch := range runs {
		r := <-ch
		if r.code != 0 || r.stdout != strconv.Itoa(i)+"\n" {
			t.Errorf("req %d: exit %d, stdout %q, stderr %q", i, r.code, r.stdout, r.stderr)
		}
	}
}

func TestCLIReplySIGTERMFinishesRunningAndReturnsUnstarted(t *testing.T) {
	p := startBroker(t)
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	// A command runs until the test opens the gate.
	script := fmt.Sprintf(`echo x >> %s/started; while [ ! -e %s ]; do sleep 0.02; done; cat`, dir, gate)
	srv := startServer(t, p, "slow", []string{"-P", "2"}, "sh", "-c", script)
	var runs []<-chan cliRun
	for i := range 5 {
		runs = append(runs, background(t, p, "", "req", "slow", strconv.Itoa(i), "--timeout", "60s"))
	}
	started := func() int {
		b, _ := os.ReadFile(filepath.Join(dir, "started"))
		return bytes.Count(b, []byte("x"))
	}
	waitFor(t, "two commands to start", func() bool { return started() == 2 })
	// One more is sent ahead to the server (prefetch 1); two wait in the
	// mailbox.
	waitFor(t, "the other three requests to queue", func() bool {
		info, err := p.Dial(t).Mailbox("slow").Stat(context.Background())
		return err == nil && info.Depth == 2 && info.InFlight == 3
	})
	srv.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(100 * time.Millisecond) // it stops taking requests, still waits for its two
	select {
	case <-srv.done:
		t.Fatalf("reply exited with commands running: %v\n%s", srv.err, srv.output())
	default:
	}
	os.WriteFile(gate, nil, 0o644)
	<-srv.done
	if srv.err != nil {
		t.Fatalf("reply after SIGTERM: %v\n%s", srv.err, srv.output())
	}
	if n := started(); n != 2 {
		t.Fatalf("%d commands started, want the 2 running at SIGTERM", n)
	}
	// The three unstarted requests are back in the mailbox, whole: a new
	// server answers them.
	if info, err := p.Dial(t).Mailbox("slow").Stat(context.Background()); err != nil || info.Depth != 3 || info.InFlight != 0 {
		t.Fatalf("after SIGTERM: %+v, %v; want 3 queued, none in flight", info, err)
	}
	startServer(t, p, "slow", []string{"-P", "3"}, "sh", "-c", script)
	for i, ch := range runs {
		if r := <-ch; r.code != 0 || r.stdout != strconv.Itoa(i)+"\n" {
			t.Errorf("req %d: exit %d, stdout %q, stderr %q", i, r.code, r.stdout, r.stderr)
		}
	}
	if n := started(); n != 5 {
		t.Errorf("%d commands ran, want 5 (each request once)", n)
	}
}

func TestCLILsShowsAServiceAndItsServers(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "plain")
	startServer(t, p, "svc", nil, "cat")
	startServer(t, p, "svc", []string{"-P", "3"}, "cat")
	table := ok(t, p, "", "ls").stdout
	if !regexp.MustCompile(`(?m)^svc\s+service\s.*\s2\s*$`).MatchString(table) {
		t.Errorf("ls does not show svc as a service with 2 servers:\n%s", table)
	}
	if !regexp.MustCompile(`(?m)^plain\s+mailbox\s.*\s-\s*$`).MatchString(table) {
		t.Errorf("ls does not show plain as a mailbox without servers:\n%s", table)
	}
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(ok(t, p, "", "ls", "-o", "json").stdout), "\n") {
		var info struct {
			Name    string `json:"name"`
			Kind    string `json:"kind"`
			Servers *int   `json:"servers"`
		}
		if err := json.Unmarshal([]byte(line), &info); err != nil {
			t.Fatal(err)
		}
		if info.Name == "svc" {
			found = true
			if info.Kind != "service" || info.Servers == nil || *info.Servers != 2 {
				t.Errorf("ls -o json: %q", line)
			}
		}
	}
	if !found {
		t.Error("ls -o json does not list svc")
	}
}

func TestCLIBenchRPCJSONHasEveryRow(t *testing.T) {
	r := run(t, nil, "", "bench", "rpc", "-o", "json", "--duration", "20ms")
	if r.code != 0 {
		t.Fatalf("bench rpc: exit %d: %s", r.code, r.stderr)
	}
	type row struct {
		Name        string   `json:"name"`
		Semantics   *string  `json:"semantics"`
		Concurrency int      `json:"concurrency"`
		Size        int      `json:"size"`
		CallsPerSec float64  `json:"calls_per_sec"`
		P50         int64    `json:"p50_ns"`
		P99         int64    `json:"p99_ns"`
		Baseline    string   `json:"baseline"`
		CallsRatio  *float64 `json:"calls_ratio"`
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var x row
		if err := json.Unmarshal([]byte(line), &x); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if x.Semantics == nil || x.Size != 64 || x.CallsPerSec <= 0 || x.P50 <= 0 || x.P99 <= 0 {
			t.Errorf("row %q", line)
		}
		if strings.HasPrefix(x.Name, "grpc") != (x.Baseline == "") || (x.Baseline != "" && x.CallsRatio == nil) {
			t.Errorf("row %q: only the gRPC row goes without a baseline", line)
		}
		seen[fmt.Sprintf("%s/%s/%d", x.Name, *x.Semantics, x.Concurrency)] = true
	}
	for _, n := range []int{1, 16} {
		for _, want := range []string{"grpc-go unary, unix:///", "postbox rpc/maybe", "postbox rpc/at-least-once",
			"postbox rpc/exactly-once", "postbox Mailbox.Call, no rpc layer/", "raw unix socket round trip/"} {
			if k := fmt.Sprintf("%s/%d", want, n); !seen[k] {
				t.Errorf("no row %s in:\n%s", k, r.stdout)
			}
		}
	}
}

type addReq struct{ A, B int }
type addResp struct {
	Sum int `json:"sum"`
}

// startCalc serves calc.Add (JSON) with package rpc in this process and
// returns how many times the handler ran.
func startCalc(t *testing.T, p *testbroker.Process) *atomic.Int64 {
	t.Helper()
	var runs atomic.Int64
	srv := rpc.NewServer(p.Dial(t))
	rpc.Register(srv, rpc.Method[addReq, addResp]{Service: "calc", Name: "Add"}, func(ctx context.Context, r *addReq) (*addResp, error) {
		runs.Add(1)
		if r.A < 0 {
			return nil, rpc.Errorf(envelope.InvalidArgument, "a is negative: %d", r.A)
		}
		return &addResp{Sum: r.A + r.B}, nil
	})
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &runs
}

func TestCLICallAJSONServiceForEachSemantics(t *testing.T) {
	p := startBroker(t)
	runs := startCalc(t, p)
	if r := ok(t, p, "", "call", "calc", "Add", `{"A": 2, "B": 3}`); r.stdout != `{"sum":5}`+"\n" {
		t.Errorf("call printed %q", r.stdout)
	}
	for _, sem := range []string{"maybe", "at-least-once", "exactly-once"} {
		r := ok(t, p, `{"A": 40, "B": 2}`, "call", "calc", "Add", "-", "--semantics", sem, "-o", "json", "--timeout", "30s")
		var j struct {
			Reply     addResp           `json:"reply"`
			Status    string            `json:"status"`
			Semantics string            `json:"semantics"`
			Attempts  int               `json:"attempts"`
			Server    struct{ PID int } `json:"server"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
			t.Fatalf("call -o json: %v: %q", err, r.stdout)
		}
		if j.Reply.Sum != 42 || j.Status != "OK" || j.Semantics != sem || j.Attempts < 1 || j.Server.PID != os.Getpid() {
			t.Errorf("call --semantics %s -o json: %+v", sem, j)
		}
	}
	if n := runs.Load(); n != 4 {
		t.Errorf("the handler ran %d times for 4 calls", n)
	}
}

func TestCLICallErrorStatusAndBadInput(t *testing.T) {
	p := startBroker(t)
	startCalc(t, p)
	r := exits(t, p, 1, "call", "calc", "Add", `{"A": -1}`)
	if !strings.HasPrefix(r.stderr, `postbox: call "calc" Add: InvalidArgument: `) || !strings.Contains(r.stderr, "a is negative: -1") {
		t.Errorf("stderr %q", r.stderr)
	}
	r = exits(t, p, 1, "call", "calc", "Sub", `{}`)
	if !strings.Contains(r.stderr, "Unimplemented") {
		t.Errorf("unknown method: stderr %q", r.stderr)
	}
	exits(t, p, 2, "call", "calc", "Add", `{not json`)
	exits(t, p, 2, "call", "calc", "Add", `{}`, "--semantics", "twice")
	// No server for the service: the deadline passes (exit 3).
	ok(t, p, "", "create", "idle")
	for _, sem := range []string{"maybe", "at-least-once", "exactly-once"} {
		r := exits(t, p, 3, "call", "idle", "M", `{}`, "--timeout", "200ms", "--semantics", sem)
		if !strings.Contains(r.stderr, "DeadlineExceeded") || !strings.Contains(r.stderr, "withdrawn") {
			t.Errorf("--semantics %s: stderr %q, want DeadlineExceeded and the request withdrawn", sem, r.stderr)
		}
	}
}

func TestCLIReplyKillsTheCommandWhenItsCallerGivesUp(t *testing.T) {
	p := startBroker(t)
	started := filepath.Join(t.TempDir(), "started")
	// One command at a time: the second request is answered only if the
	// first command, which would sleep for a minute, was killed.
	startServer(t, p, "svc", nil, "sh", "-c",
		fmt.Sprintf(`x=$(cat); if [ "$x" = slow ]; then touch %s; exec sleep 60; fi; echo "done $x"`, started))
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	slow := exec.CommandContext(ctx, bin, "req", "svc", "slow", "--timeout", "60s", "--socket", p.Socket)
	var stderr bytes.Buffer
	slow.Stderr = &stderr
	if err := slow.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the slow command to start", func() bool { _, err := os.Stat(started); return err == nil })
	slow.Process.Signal(syscall.SIGINT) // the caller gives up
	if err := slow.Wait(); testbroker.ExitCode(err) == 0 {
		t.Errorf("an interrupted req exited 0")
	}
	if !strings.Contains(stderr.String(), "in progress") {
		t.Errorf("interrupted req: stderr %q, want the request in progress (interrupted)", stderr.String())
	}
	if r := ok(t, p, "", "req", "svc", "fast", "--timeout", "20s"); r.stdout != "done fast\n" {
		t.Errorf("the next request: %q", r.stdout)
	}
}

func TestCLICallAShellServiceSeesMethodAndRequestID(t *testing.T) {
	p := startBroker(t)
	startServer(t, p, "shell", nil, "sh", "-c", `printf '{"method":"%s","id":"%s","in":%s}' "$POSTBOX_METHOD" "$POSTBOX_REQUEST_ID" "$(cat)"`)
	r := ok(t, p, "", "call", "shell", "Greet", `{"name":"ann"}`, "--semantics", "at-least-once")
	var j struct {
		Method string          `json:"method"`
		ID     string          `json:"id"`
		In     json.RawMessage `json:"in"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
		t.Fatalf("%q: %v", r.stdout, err)
	}
	// An rpc request id: session (hex) / sequence.
	if j.Method != "Greet" || !regexp.MustCompile(`^[0-9a-f]{32}/1$`).MatchString(j.ID) || string(j.In) != `{"name":"ann"}` {
		t.Errorf("the command saw %+v", j)
	}
}
