package main

// sd_notify as systemd receives it: a real datagram socket in
// NOTIFY_SOCKET that the test reads.

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// notifySocket listens where NOTIFY_SOCKET will point and delivers each
// datagram on the returned channel until t ends.
func notifySocket(t *testing.T, path string) <-chan string {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			select {
			case ch <- string(buf[:n]):
			default: // the test stopped reading: drop
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return ch
}

// nextNotice waits (at most the hang guard) for a datagram containing
// want, returning the ones before it.
func nextNotice(t *testing.T, ch <-chan string, want string) (skipped []string, got string) {
	t.Helper()
	timeout := time.After(testbroker.HangGuard)
	for {
		select {
		case m := <-ch:
			if slicesContainsLine(m, want) {
				return skipped, m
			}
			skipped = append(skipped, m)
		case <-timeout:
			t.Fatalf("no %q from postbox serve after %v; got %q", want, testbroker.HangGuard, skipped)
		}
	}
}

func slicesContainsLine(msg, line string) bool {
	for _, l := range strings.Split(msg, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

func TestServeNotifiesReadyWatchdogAndStopping(t *testing.T) {
	testbroker.CheckGoroutines(t)
	dir, err := testbroker.SharedDir(t, "postbox-sd-")
	if err != nil {
		t.Fatal(err)
	}
	notices := notifySocket(t, filepath.Join(dir, "notify"))
	sock := filepath.Join(dir, "passed.sock")
	// 400ms: a ping every 200ms. Nothing is timed: the test only counts pings.
	p := startActivated(t, []*os.File{unixListenerFile(t, sock)}, []string{"postbox"},
		[]string{"NOTIFY_SOCKET=" + filepath.Join(dir, "notify"), "WATCHDOG_USEC=400000"},
		"--data", filepath.Join(dir, "data"))

	before, ready := nextNotice(t, notices, "READY=1")
	if len(before) > 0 {
		t.Errorf("notices before READY=1: %q", before)
	}
	if !strings.Contains(ready, "STATUS=serving 0 connections, 0 mailboxes (no data directory open)") {
		t.Errorf("READY notice %q lacks the status line", ready)
	}
	// Ready means ready: the first dial succeeds.
	ctx := sdCtx(t)
	c, err := postbox.Dial(ctx, postbox.WithSocket(sock))
	if err != nil {
		t.Fatalf("dial right after READY=1: %v\n%s", err, p.log())
	}
	defer c.Close()
	if _, err := c.Create(ctx, "disk", postbox.Durable()); err != nil {
		t.Fatal(err)
	}
	// Two pings, and the status line following the counts (on a ping, or
	// on its own within statusEvery).
	pings, status := 0, false
	deadline := time.After(testbroker.HangGuard + statusEvery)
	for pings < 2 || !status {
		select {
		case m := <-notices:
			for _, l := range strings.Split(m, "\n") {
				switch {
				case l == "WATCHDOG=1":
					pings++
				case l == "STATUS=serving 1 connection, 1 mailbox":
					status = true
				case strings.HasPrefix(l, "STATUS="):
				default:
					t.Errorf("unexpected notice %q", m)
				}
			}
		case <-deadline:
			t.Fatalf("%d pings, status line updated: %v", pings, status)
		}
	}

	p.cmd.Process.Signal(syscall.SIGHUP)
	nextNotice(t, notices, "RELOADING=1")
	nextNotice(t, notices, "READY=1")

	p.cmd.Process.Signal(syscall.SIGTERM)
	nextNotice(t, notices, "STOPPING=1")
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.log())
	}
	select {
	case m := <-notices:
		if slicesContainsLine(m, "WATCHDOG=1") {
			t.Errorf("a ping after STOPPING=1: %q", m)
		}
	default:
	}
}

func TestServeWithoutNotifySocketSaysNothing(t *testing.T) {
	testbroker.CheckGoroutines(t)
	dir, err := testbroker.SharedDir(t, "postbox-sd-")
	if err != nil {
		t.Fatal(err)
	}
	p := startActivated(t, []*os.File{unixListenerFile(t, filepath.Join(dir, "passed.sock"))}, []string{"postbox"},
		[]string{"WATCHDOG_USEC=100000"}, "--memory")
	dialWhenUp(t, p, filepath.Join(dir, "passed.sock"))
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.log())
	}
	if out := p.log(); strings.Contains(out, "sd_notify") || strings.Contains(out, "watchdog") {
		t.Errorf("serve without NOTIFY_SOCKET spoke of notification:\n%s", out)
	}
}
