package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/internal/testbroker"
)

func TestLsWatchIntoAPipePrintsATablePerIntervalUnderATimestamp(t *testing.T) {
	p := startBroker(t)
	c := p.Dial(t)
	mb, err := c.Create(context.Background(), "watched")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "ls", "--watch", "--interval", "100ms", "--socket", p.Socket)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })

	stamp := regexp.MustCompile(`^--- \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d`)
	depth := regexp.MustCompile(`^watched\s+mailbox\s+\S+\s+\S+\s+\S+\s+(\d+)\s`)
	sc := bufio.NewScanner(out)
	var stamps, blanks int
	var sent bool
	deadline := time.AfterFunc(testbroker.HangGuard, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		line := sc.Text()
		switch {
		case stamp.MatchString(line):
			stamps++
		case line == "":
			blanks++
		}
		m := depth.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if m[1] == "0" && !sent {
			if _, err := mb.Send(context.Background(), []byte("x")); err != nil {
				t.Fatal(err)
			}
			sent = true
		}
		if m[1] == "1" {
			break // a later table saw the send
		}
	}
	if !sent || stamps < 2 || blanks < 1 {
		t.Fatalf("sent %v, %d timestamp lines, %d blank lines (err %v)", sent, stamps, blanks, sc.Err())
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := <-done; testbroker.ExitCode(err) != exitInterrupted {
		t.Fatalf("after Ctrl-C: %v, want exit %d", err, exitInterrupted)
	}
	done <- nil // for the cleanup
}

func TestLsWatchKeepsGoingWhileTheBrokerIsUnreachable(t *testing.T) {
	dir, err := os.MkdirTemp("", "pbwatch-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	// (sh traps SIGINT so that Ctrl-C ends ls, not the script.)
	tm := startTmux(t, "trap : INT; '"+bin+"' ls --watch --interval 100ms --socket "+sock+"; echo ls-exited-$?; exec sleep 600")
	tm.waitFor(`(?m)^postbox: .*` + regexp.QuoteMeta(sock))

	testbroker.CheckGoroutines(t)
	p := testbroker.StartProcessAt(t, bin, sock)
	if _, err := p.Dial(t).Create(context.Background(), "late"); err != nil {
		t.Fatal(err)
	}
	// On a terminal each table replaces the last: one title, one header.
	s := tm.waitFor(`(?m)^late\s+mailbox\s`)
	if strings.Count(s, "NAME") != 1 || strings.Count(s, "postbox ls, every 100ms") != 1 || strings.Contains(s, "postbox: ") {
		t.Fatalf("the screen is not one fresh table:\n%s", s)
	}
	tm.run("send-keys", "-t", "top", "C-c")
	tm.waitFor(`ls-exited-130`)
}

func TestLsWatchRejectsATooShortInterval(t *testing.T) {
	exits(t, nil, exitUsage, "ls", "--watch", "--interval", "1ms", "--socket", "/nonexistent")
}

func TestLsWatchJSONIntoAPipeSeparatesTablesByBlankLinesAlone(t *testing.T) {
	p := startBroker(t)
	if _, err := p.Dial(t).Create(context.Background(), "j"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "ls", "--watch", "--interval", "100ms", "-o", "json", "--socket", p.Socket)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.AfterFunc(testbroker.HangGuard, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	sc := bufio.NewScanner(out)
	objects, blanks := 0, 0
	for blanks < 2 && sc.Scan() {
		switch line := sc.Text(); {
		case line == "":
			blanks++
		case json.Valid([]byte(line)):
			objects++
		default:
			t.Fatalf("line %q is neither JSON nor blank", line)
		}
	}
	if objects < 2 || blanks < 2 {
		t.Fatalf("%d objects, %d blank lines (%v)", objects, blanks, sc.Err())
	}
}

// watchRuns runs a watcher over once until once has run n times and
// returns what it wrote to out and errs.
func watchRuns(t *testing.T, w watcher, n int, once func(i int) error) (out, errs string, err error) {
	t.Helper()
	var o, e strings.Builder
	w.out, w.errs, w.interval = &o, &e, time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	i := 0
	err = w.run(ctx, func() error {
		i++
		if i == n {
			cancel()
		}
		return once(i)
	})
	return o.String(), e.String(), err
}

func TestWatcherSeparatesTablesAsTheOutputAsks(t *testing.T) {
	table := func(int) error { return nil }
	cases := []struct {
		w    watcher
		want *regexp.Regexp
	}{
		{watcher{clear: true, title: "postbox ls"}, regexp.MustCompile(`^(\x1b\[H\x1b\[2Jpostbox ls, every 1ms: \d\d:\d\d:\d\d\n\n){3}$`)},
		{watcher{}, regexp.MustCompile(`^--- \S+\n(\n--- \S+\n){2}$`)},
		{watcher{format: "json"}, regexp.MustCompile(`^\n\n$`)},
		{watcher{format: "yaml"}, regexp.MustCompile(`^(---\n){3}$`)},
	}
	for _, c := range cases {
		out, _, err := watchRuns(t, c.w, 3, table)
		if err != nil || !c.want.MatchString(out) {
			t.Errorf("%+v: %q, %v", c.w, out, err)
		}
	}
}

func TestWatcherReportsFailuresAndGoesOnButStopsAtAUsageError(t *testing.T) {
	// Three failed runs: two reported; the third fails as the watch ends
	// (Ctrl-C), which is not worth a message.
	_, errs, err := watchRuns(t, watcher{}, 3, func(i int) error { return errors.New("postbox: dial: refused") })
	if err != nil || errs != strings.Repeat("postbox: dial: refused\n", 2) {
		t.Fatalf("errs %q, err %v", errs, err)
	}
	_, _, err = watchRuns(t, watcher{}, 5, func(i int) error { return usageError{errors.New("bad flag")} })
	var ue usageError
	if !errors.As(err, &ue) {
		t.Fatalf("err %v, want the usage error", err)
	}
}
