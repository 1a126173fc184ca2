package main

// These tests run the postbox binary, built once in TestMain, against a
// broker running as a separate `postbox serve` process, the way a shell
// user would.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/postbox-ipc/postbox/internal/testbroker"
	"go.uber.org/goleak"
)

var bin string // the postbox binary under test

func TestMain(m *testing.M) {
	dir, err := testbroker.SharedDir(nil, "postbox-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err = testbroker.BuildCLI(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	// No goroutine of ours may outlive the tests; goleak itself ignores
	// the testing package's and os/signal's.
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// cliRun is one finished invocation.
type cliRun struct {
	stdout, stderr string
	code           int
	pid            int
}

// startBroker runs `postbox serve` for t and returns it.
func startBroker(t *testing.T) *testbroker.Process {
	t.Helper()
	testbroker.CheckGoroutines(t)
	return testbroker.StartProcess(t, bin)
}

// run runs `postbox args... --socket <p's socket>` with stdin and waits
// (at most the hang guard) for it.
func run(t *testing.T, p *testbroker.Process, stdin string, args ...string) cliRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	if p != nil {
		args = append(args, "--socket", p.Socket)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("postbox %s: still running after %v", strings.Join(args, " "), testbroker.HangGuard)
	}
	code := testbroker.ExitCode(err)
	if code < 0 {
		t.Fatalf("postbox %s: %v", strings.Join(args, " "), err)
	}
	return cliRun{stdout: stdout.String(), stderr: stderr.String(), code: code, pid: cmd.Process.Pid}
}

// ok runs a command that must succeed.
func ok(t *testing.T, p *testbroker.Process, stdin string, args ...string) cliRun {
	t.Helper()
	r := run(t, p, stdin, args...)
	if r.code != 0 {
		t.Fatalf("postbox %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

// exits runs a command that must exit with code and print a one-line
// error.
func exits(t *testing.T, p *testbroker.Process, code int, args ...string) cliRun {
	t.Helper()
	r := run(t, p, "", args...)
	if r.code != code {
		t.Fatalf("postbox %s: exit %d, want %d; stdout %q stderr %q", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	if msg := strings.TrimRight(r.stderr, "\n"); msg == "" || strings.Contains(msg, "\n") {
		t.Errorf("postbox %s: stderr %q, want a one-line message", strings.Join(args, " "), r.stderr)
	}
	return r
}

// recvLine is one line of `recv -o json`.
type recvLine struct {
	ID           uint64 `json:"id"`
	Mailbox      string `json:"mailbox"`
	Type         int64  `json:"type"`
	Priority     uint8  `json:"priority"`
	Redeliveries uint32 `json:"redeliveries"`
	Sender       struct {
		UID      uint32 `json:"uid"`
		GID      uint32 `json:"gid"`
		PID      int32  `json:"pid"`
		Endpoint uint64 `json:"endpoint"`
	} `json:"sender"`
	Body *string `json:"body"`
}

func TestCLIJobsScenario(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "jobs", "--capacity", "1000", "--mode", "0660")

	var seq strings.Builder
	for i := 1; i <= 1000; i++ {
		fmt.Fprintln(&seq, i)
	}
	sender := ok(t, p, seq.String(), "send", "jobs", "--lines")

	r := ok(t, p, "", "recv", "jobs", "--count", "10", "-o", "json")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 10 {
		t.Fatalf("recv --count 10 printed %d lines:\n%s", len(lines), r.stdout)
	}
	var lastID uint64
	for i, line := range lines {
		var m recvLine
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d %q: %v", i, line, err)
		}
		if m.Body == nil || *m.Body != strconv.Itoa(i+1) {
			t.Fatalf("line %d: body %v, want %d (FIFO)", i, m.Body, i+1)
		}
		if m.Type != 1 || m.Priority != 0 || m.Redeliveries != 0 || m.Mailbox != "jobs" {
			t.Errorf("line %d: %+v", i, m)
		}
		if m.Sender.UID != uint32(os.Getuid()) || m.Sender.GID != uint32(os.Getgid()) || m.Sender.PID != int32(sender.pid) {
			t.Errorf("line %d: sender %+v, want uid %d gid %d pid %d (the send process)", i, m.Sender, os.Getuid(), os.Getgid(), sender.pid)
		}
		if i > 0 && m.ID <= lastID {
			t.Errorf("line %d: id %d not after %d", i, m.ID, lastID)
		}
		lastID = m.ID
	}

	// ls: the table, then JSON.
	table := ok(t, p, "", "ls").stdout
	if !strings.HasPrefix(table, "NAME") {
		t.Errorf("ls table has no header:\n%s", table)
	}
	row := regexp.MustCompile(`(?m)^jobs\s+mailbox\s+(\d+):(\d+)\s+0660\s+1000\s+990\s.*\s-$`)
	if !row.MatchString(table) {
		t.Errorf("ls table has no row 'jobs uid:gid 0660 1000 990':\n%s", table)
	}
	if strings.Contains(table, "@") {
		t.Errorf("ls without --all lists inboxes:\n%s", table)
	}
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(ok(t, p, "", "ls", "-o", "json").stdout), "\n") {
		var info struct {
			Name     string `json:"name"`
			Mode     string `json:"mode"`
			Capacity int64  `json:"capacity"`
			Depth    uint64 `json:"depth"`
			UID      uint32 `json:"uid"`
		}
		if err := json.Unmarshal([]byte(line), &info); err != nil {
			t.Fatalf("ls -o json line %q: %v", line, err)
		}
		if info.Name == "jobs" {
			found = true
			if info.Mode != "0660" || info.Capacity != 1000 || info.Depth != 990 || info.UID != uint32(os.Getuid()) {
				t.Errorf("ls -o json: %+v", info)
			}
		}
	}
	if !found {
		t.Error("ls -o json does not list jobs")
	}

	stat := ok(t, p, "", "stat", "jobs").stdout
	for _, want := range []string{"name:", "jobs", "0660", "990 messages", "capacity:", "1000"} {
		if !strings.Contains(stat, want) {
			t.Errorf("stat output lacks %q:\n%s", want, stat)
		}
	}
	var sj struct {
		Depth    uint64 `json:"depth"`
		Sent     uint64 `json:"sent"`
		Received uint64 `json:"received"`
	}
	if err := json.Unmarshal([]byte(ok(t, p, "", "stat", "jobs", "-o", "json").stdout), &sj); err != nil {
		t.Fatal(err)
	}
	if sj.Depth != 990 || sj.Sent != 1000 || sj.Received != 10 {
		t.Errorf("stat -o json: %+v", sj)
	}

	ok(t, p, "", "rm", "jobs")
	r = exits(t, p, exitNotFound, "stat", "jobs")
	if !strings.Contains(r.stderr, "jobs") {
		t.Errorf("stat of a removed mailbox: %q does not name it", r.stderr)
	}
}

func TestCLIUsageErrorsExitTwo(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "q")
	for _, args := range [][]string{
		{"recv", "q", "--bogus"},
		{"create", "x", "--mode", "999"},
		{"create", "x", "--mode", "rw"},
		{"chmod", "0999", "q"},
		{"frobnicate"},
		{"recv"},
		{"recv", "q", "-o", "yaml"},
		{"send", "q", "body", "--lines"},
		{"req", "q"},
		{"req", "q", "x", "--header", "novalue"},
		{"reply", "q", "cat"},
		{"reply", "q", "-P", "0", "--", "cat"},
		{"call", "q", "M"},
		{"call", "q", "M", "{}", "-o", "raw"},
		{"bench", "rpc", "-o", "yaml"},
	} {
		exits(t, p, 2, args...)
	}
	// Nothing was created by the rejected commands.
	exits(t, p, exitNotFound, "stat", "x")
}

func TestCLIWouldBlockExitsThree(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "empty")
	ok(t, p, "", "create", "full", "--capacity", "1")
	ok(t, p, "", "send", "full", "x")
	exits(t, p, 3, "recv", "empty", "--nowait")
	exits(t, p, 3, "recv", "empty", "--timeout", "100ms")
	exits(t, p, 3, "send", "full", "y", "--nowait")
	exits(t, p, 3, "send", "full", "y", "--timeout", "100ms")
	// The refused send did not get in.
	if got := ok(t, p, "", "recv", "full").stdout; got != "x\n" {
		t.Fatalf("recv full: %q", got)
	}
	exits(t, p, 3, "recv", "full", "--nowait")
}

func TestCLINotFoundExitsNotFoundNamingTheMailbox(t *testing.T) {
	p := startBroker(t)
	for _, args := range [][]string{
		{"recv", "nosuch", "--nowait"},
		{"send", "nosuch", "x"},
		{"stat", "nosuch"},
		{"rm", "nosuch"},
		{"chmod", "0600", "nosuch"},
	} {
		r := exits(t, p, exitNotFound, args...)
		if !strings.Contains(r.stderr, `"nosuch"`) {
			t.Errorf("postbox %s: %q does not name the mailbox", strings.Join(args, " "), r.stderr)
		}
	}
}

func TestCLISendReceiptOnRendezvousPrintsWhoTookIt(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "rv", "--capacity", "0")

	// A receiver process waiting on the rendezvous mailbox.
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	rcv := exec.CommandContext(ctx, bin, "recv", "rv", "--socket", p.Socket)
	var rout bytes.Buffer
	rcv.Stdout, rcv.Stderr = &rout, &rout
	if err := rcv.Start(); err != nil {
		t.Fatal(err)
	}
	c := p.Dial(t)
	deadline := ctx
	for {
		info, err := c.Mailbox("rv").Stat(deadline)
		if err != nil {
			t.Fatal(err)
		}
		if info.Receivers == 1 {
			break
		}
	}

	r := ok(t, p, "", "send", "rv", "hello", "--receipt")
	m := regexp.MustCompile(`taken by endpoint (\d+) \(pid (\d+), uid (\d+)\)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("send --receipt printed %q, want who took it", r.stdout)
	}
	if m[2] != strconv.Itoa(rcv.Process.Pid) || m[3] != strconv.Itoa(os.Getuid()) {
		t.Errorf("receipt names pid %s uid %s, want the receiver process %d uid %d", m[2], m[3], rcv.Process.Pid, os.Getuid())
	}
	if err := rcv.Wait(); err != nil {
		t.Fatalf("receiver: %v: %s", err, rout.String())
	}
	if rout.String() != "hello\n" {
		t.Errorf("receiver printed %q", rout.String())
	}
}

func TestCLIHelpMentionsExitCodes(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"send", "--help"}, {"recv", "--help"}} {
		r := run(t, nil, "", args...)
		if r.code != 0 {
			t.Errorf("postbox %s: exit %d", strings.Join(args, " "), r.code)
		}
		for _, want := range []string{"Exit status", "0    success", "1    error", "2    usage", "3    timed out", "66   not found", "69   broker unreachable", "77   permission denied", "130  interrupted"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("postbox %s: help lacks %q:\n%s", strings.Join(args, " "), want, r.stdout)
			}
		}
	}
}
