package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// TestCLIGroupsAndWatch: a mailbox joins a group from the shell, a send
// to the group reaches it and says how many got it, and postbox watch
// prints the mailbox's next notice and exits.
func TestCLIGroupsAndWatch(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "log")
	ok(t, p, "", "join", "#g", "--mailbox", "log")
	if r := ok(t, p, "", "send", "#g", "hi all"); !strings.Contains(r.stderr, "delivered to 1") {
		t.Fatalf("send to a group: stderr %q, want how many got it", r.stderr)
	}
	if r := ok(t, p, "", "recv", "log", "--nowait"); r.stdout != "hi all\n" {
		t.Fatalf("the member mailbox holds %q", r.stdout)
	}

	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	w := exec.CommandContext(ctx, bin, "watch", "log", "--count", "1", "-o", "json", "--socket", p.Socket)
	stdout, err := w.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := w.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stderr).ReadString('\n'); err != nil || !strings.HasPrefix(line, "watching log (0 queued)") {
		t.Fatalf("watch said %q (%v)", line, err)
	}
	ok(t, p, "", "send", "log", "one")
	var n struct {
		Kind, Target string
		Depth        int
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if err := json.Unmarshal([]byte(line), &n); err != nil || n.Kind != "non-empty" || n.Target != "log" || n.Depth != 1 {
		t.Fatalf("watch printed %q (%v)", line, err)
	}
	if err := w.Wait(); err != nil {
		t.Fatalf("watch --count 1: %v", err)
	}

	ok(t, p, "", "leave", "#g", "--mailbox", "log")
	if r := ok(t, p, "", "send", "#g", "anyone?"); !strings.Contains(r.stderr, "delivered to 0") {
		t.Fatalf("after leave: stderr %q", r.stderr)
	}
	exits(t, p, 2, "leave", "#g")
	exits(t, p, exitUsage, "join", "nohash", "--mailbox", "log")
	exits(t, p, exitNotFound, "watch", "@1")
	exits(t, p, exitUsage, "watch", "#g")
}
