package main

// postbox top in a real terminal: the built binary runs in a detached
// tmux session (its own tmux server, on a socket of the test's), the test
// reads the screen with capture-pane and types with send-keys.

import (
	"context"
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

// tmuxTerm is one tmux server with one 120×40 session running a command.
type tmuxTerm struct {
	t    *testing.T
	sock string
}

// startTmux runs script (sh -c) in a detached session. The script should
// not end (topScript sleeps): tmux 3.3a blanks a pane kept after its
// command exits (remain-on-exit); kill-server at cleanup ends it.
func startTmux(t *testing.T, script string) *tmuxTerm {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed: postbox top's terminal tests need it")
	}
	dir, err := os.MkdirTemp("", "pbtop-")
	if err != nil {
		t.Fatal(err)
	}
	tm := &tmuxTerm{t: t, sock: filepath.Join(dir, "tmux.sock")}
	t.Cleanup(func() {
		exec.Command("tmux", "-S", tm.sock, "kill-server").Run()
		os.RemoveAll(dir)
	})
	tm.run("-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "40", "-s", "top", "sh", "-c", script)
	return tm
}

func (tm *tmuxTerm) run(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", tm.sock}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (tm *tmuxTerm) screen() string { return tm.run("capture-pane", "-p", "-t", "top") }

// wait polls the screen until ok accepts it.
func (tm *tmuxTerm) wait(what string, ok func(screen string) bool) string {
	tm.t.Helper()
	deadline := time.Now().Add(testbroker.HangGuard)
	for {
		s := tm.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("after %v the screen still does not show %s:\n%s", testbroker.HangGuard, what, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (tm *tmuxTerm) waitFor(re string) string {
	tm.t.Helper()
	r := regexp.MustCompile(re)
	return tm.wait(re, r.MatchString)
}

// waitExit waits for top to exit (topScript's last line on the screen)
// and returns the screen then.
func (tm *tmuxTerm) waitExit() string {
	tm.t.Helper()
	return tm.waitFor(`top-exited-\d+`)
}

// modes are the pane's terminal modes that a full-screen program changes
// and must put back: alternate screen, cursor shown, keypad, mouse.
func (tm *tmuxTerm) modes() string {
	return strings.TrimSpace(tm.run("display-message", "-p", "-t", "top",
		"alternate=#{alternate_on} cursor=#{cursor_flag} keypad=#{keypad_cursor_flag} mouse=#{mouse_any_flag}"))
}

// restoredModes is a terminal as a shell leaves it.
const restoredModes = "alternate=0 cursor=1 keypad=0 mouse=0"

// topScript runs top under sh between two lines, the first of which
// must come back with the normal screen, then waits.
func topScript(args ...string) string {
	return "echo before-top; '" + bin + "' top " + strings.Join(args, " ") + "; echo top-exited-$?; exec sleep 600"
}

func TestTopInTmuxShowsMailboxRowsAndQuitRestoresTheScreen(t *testing.T) {
	p := startBroker(t)
	c := p.Dial(t)
	ctx := context.Background()
	orders, err := c.Create(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := orders.Send(ctx, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	tm := startTmux(t, topScript("--interval", "200ms", "--socket", p.Socket))
	s := tm.waitFor(`(?m)^orders\s+mailbox\s+3\s`)
	if !regexp.MustCompile(`(?m)^jobs\s+mailbox\s+0\s`).MatchString(s) || !strings.Contains(s, "NAME↑") ||
		!strings.Contains(s, "[Mailboxes 2]") || strings.Contains(s, "before-top") {
		t.Fatalf("screen:\n%s", s)
	}
	if m := tm.modes(); !strings.HasPrefix(m, "alternate=1 cursor=0") {
		t.Fatalf("while top runs the pane's modes are %q, want the alternate screen with no cursor", m)
	}
	for range 4 {
		if _, err := orders.Send(ctx, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	tm.waitFor(`(?m)^orders\s+mailbox\s+7\s`)

	tm.run("send-keys", "-t", "top", "3", "3") // DEPTH, descending: orders first
	tm.waitFor(`DEPTH↓(?s:.*)\norders .*\njobs `)
	tm.run("send-keys", "-t", "top", "Tab")
	tm.waitFor(`\[Subjects 0\]`)
	tm.run("send-keys", "-t", "top", "Tab")
	tm.waitFor(`\[Mailboxes 2\]`)

	// A steady sender: its mailbox's SEND/S becomes a positive rate.
	stop := make(chan struct{})
	sent := make(chan error, 1)
	go func() {
		jobs := c.Mailbox("jobs")
		for {
			select {
			case <-stop:
				sent <- nil
				return
			case <-time.After(2 * time.Millisecond):
			}
			if _, err := jobs.Send(ctx, []byte("x")); err != nil {
				sent <- err
				return
			}
		}
	}()
	tm.waitFor(`(?m)^jobs\s+mailbox\s+\d+\s+\d+\s+[1-9]\S*\s`)
	close(stop)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}

	tm.run("send-keys", "-t", "top", "q")
	s = tm.waitExit()
	if !strings.Contains(s, "before-top\ntop-exited-0") || strings.Contains(s, "orders") || strings.Contains(s, "NAME") {
		t.Fatalf("after q the normal screen is not back:\n%s", s)
	}
	if m := tm.modes(); m != restoredModes {
		t.Fatalf("after q the pane's modes are %q, want %q", m, restoredModes)
	}
}

func TestTopInTmuxSaysTheBrokerIsUnreachableAndKeepsRetrying(t *testing.T) {
	dir, err := os.MkdirTemp("", "pbtop-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	tm := startTmux(t, topScript("--interval", "200ms", "--socket", sock))
	tm.waitFor(`broker unreachable \(retrying every 200ms, failing for \d+s\): dial `)

	testbroker.CheckGoroutines(t)
	p := testbroker.StartProcessAt(t, bin, sock)
	if _, err := p.Dial(t).Create(context.Background(), "late"); err != nil {
		t.Fatal(err)
	}
	s := tm.waitFor(`(?m)^late\s+mailbox\s+0\s`)
	if strings.Contains(s, "unreachable") {
		t.Fatalf("the broker is up, the screen says otherwise:\n%s", s)
	}
	tm.run("send-keys", "-t", "top", "C-c")
	if s := tm.waitExit(); !strings.Contains(s, "top-exited-0") {
		t.Fatalf("after Ctrl-C:\n%s", s)
	}
	if m := tm.modes(); m != restoredModes {
		t.Fatalf("after Ctrl-C the pane's modes are %q, want %q", m, restoredModes)
	}
}

func TestTopWithoutATerminalSaysItNeedsOne(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "top", "--socket", "/nonexistent")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no controlling terminal
	out, err := cmd.CombinedOutput()
	if code := testbroker.ExitCode(err); code != exitError || !strings.Contains(string(out), "top needs a terminal") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestTopRejectsATooShortInterval(t *testing.T) {
	r := exits(t, nil, exitUsage, "top", "--interval", "10ms")
	if !strings.Contains(r.stderr, "--interval must be at least 100ms") {
		t.Fatalf("stderr %q", r.stderr)
	}
}
