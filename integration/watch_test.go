package integration_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/postbox-ipc/postbox"
)

// TestAWatchedProcessKilledWithSIGKILLGetsExactlyOneDeathNotice: two
// watchers in this process and one postbox watch CLI process watch a
// client process; it is killed with SIGKILL. Each watcher gets exactly
// one ENDPOINT_EXITED naming its pid, then the watch ends.
func TestAWatchedProcessKilledWithSIGKILLGetsExactlyOneDeathNotice(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	role := startChild(t, b.Socket, nil, "join", "#watched")
	r := role.result(t)
	if r.Err != "" {
		t.Fatalf("role: %+v", r)
	}
	target := postbox.InboxName(r.Endpoint)
	var ws []*postbox.Watcher
	for range 2 {
		w, err := c.Watch(ctxT(t), target)
		if err != nil {
			t.Fatal(err)
		}
		if a := w.Armed(); a.PID != int32(r.PID) || a.Endpoint != r.Endpoint {
			t.Fatalf("armed: %+v, want pid %d endpoint %d", a, r.PID, r.Endpoint)
		}
		ws = append(ws, w)
	}
	cmd := exec.Command(cli(t), "--socket", b.Socket, "watch", target, "-o", "json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(stderr).ReadString('\n'); err != nil || !strings.HasPrefix(line, "watching "+target) {
		t.Fatalf("postbox watch said %q (%v)", line, err)
	}

	if err := role.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	role.wait(t) // reaped: the kernel can now tell the broker its status
	for i, w := range ws {
		n := nextNotice(t, w)
		if n.Kind != postbox.NoticeEndpointExited || n.PID != int32(r.PID) || n.Endpoint != r.Endpoint {
			t.Fatalf("watcher %d: %+v", i, n)
		}
		if n.Reason != postbox.ExitProcessExited && n.Reason != postbox.ExitDisconnected {
			t.Fatalf("watcher %d: reason %v", i, n.Reason)
		}
		if n.StatusKnown && n.Status&0x7f != int32(syscall.SIGKILL) {
			t.Fatalf("watcher %d: wait status %#x, want killed by SIGKILL", i, n.Status)
		}
		t.Logf("watcher %d: %s, status known %v (%#x)", i, n.Reason, n.StatusKnown, n.Status)
		wantEnded(t, w, nil)
	}

	// The CLI prints one notice and exits 0 on its own.
	sc := bufio.NewScanner(stdout)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("postbox watch: %v", err)
	}
	if len(lines) != 1 {
		t.Fatalf("postbox watch printed %d lines, want 1: %q", len(lines), lines)
	}
	var j struct {
		Kind   string
		PID    int
		Reason string
	}
	if err := json.Unmarshal([]byte(lines[0]), &j); err != nil || j.Kind != "endpoint-exited" || j.PID != r.PID {
		t.Fatalf("postbox watch printed %s (%v)", lines[0], err)
	}

	if _, err := c.Watch(ctxT(t), target); !errors.Is(err, postbox.ErrNotFound) {
		t.Fatalf("watching the dead endpoint: %v, want ErrNotFound", err)
	}
}

// havePeerPIDFD reports whether the kernel gives a Unix socket's peer
// pidfd (SO_PEERPIDFD, Linux 6.5).
func havePeerPIDFD() bool {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	fd, err := unix.GetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// TestAWatchedProcessWhoseSocketLivesOnInAChildIsReportedExited: the
// watched process hands its socket to a child and is killed; the
// connection is still open (the child holds it), but the broker sees the
// process exit through its pidfd, so the one notice says PROCESS_EXITED.
func TestAWatchedProcessWhoseSocketLivesOnInAChildIsReportedExited(t *testing.T) {
	if !havePeerPIDFD() {
		t.Skip("the kernel gives no SO_PEERPIDFD (Linux 6.5): a connection that outlives its process cannot be told apart")
	}
	b := start(t, nil)
	c := b.Dial(t)
	role := startChild(t, b.Socket, nil, "handoff")
	r := role.result(t)
	if r.Err != "" {
		t.Fatalf("role: %+v", r)
	}
	sleeper := int(r.ID)
	t.Cleanup(func() { syscall.Kill(sleeper, syscall.SIGKILL) })
	w, err := c.Watch(ctxT(t), postbox.InboxName(r.Endpoint))
	if err != nil {
		t.Fatal(err)
	}
	if err := role.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	role.wait(t)
	if procState(sleeper) == 0 {
		t.Fatalf("the child %d holding the socket is gone", sleeper)
	}
	n := nextNotice(t, w)
	if n.Kind != postbox.NoticeEndpointExited || n.Reason != postbox.ExitProcessExited || n.PID != int32(r.PID) {
		t.Fatalf("notice %+v, want endpoint-exited, process exited, pid %d", n, r.PID)
	}
	t.Logf("%s; status known %v (%#x)", n.Reason, n.StatusKnown, n.Status)
	wantEnded(t, w, nil)
}

// TestAClientThatClosesItsConnectionIsReportedDisconnected: the watched
// endpoint closes its connection and its process lives on.
func TestAClientThatClosesItsConnectionIsReportedDisconnected(t *testing.T) {
	b := start(t, nil)
	c, gone := b.Dial(t), b.Dial(t)
	w, err := c.Watch(ctxT(t), postbox.InboxName(gone.Identity().Endpoint))
	if err != nil {
		t.Fatal(err)
	}
	gone.Close()
	n := nextNotice(t, w)
	if n.Kind != postbox.NoticeEndpointExited || n.Reason != postbox.ExitDisconnected || n.StatusKnown {
		t.Fatalf("notice %+v, want endpoint-exited, disconnected, status unknown", n)
	}
	wantEnded(t, w, nil)
}

// TestAnEndpointWatchEndsWithTheBrokersShutdown.
func TestAnEndpointWatchEndsWithTheBrokersShutdown(t *testing.T) {
	b := start(t, nil)
	c, other := b.Dial(t), b.Dial(t)
	w, err := c.Watch(ctxT(t), postbox.InboxName(other.Identity().Endpoint))
	if err != nil {
		t.Fatal(err)
	}
	box, err := c.Watch(ctxT(t), "not-yet")
	if err != nil {
		t.Fatal(err)
	}
	b.Stop(t)
	n := nextNotice(t, w)
	if n.Kind != postbox.NoticeEndpointExited || n.Reason != postbox.ExitBrokerShutdown {
		t.Fatalf("notice %+v, want endpoint-exited, broker shutdown", n)
	}
	wantEnded(t, w, nil)
	wantEnded(t, box, postbox.ErrClosed)
}

// TestMailboxWatchReportsEachEdgeToEveryWatcher: two watchers follow a
// mailbox from before it exists to after it is destroyed; each edge is
// reported each time it happens, without re-arming, and nothing else.
func TestMailboxWatchReportsEachEdgeToEveryWatcher(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	var ws []*postbox.Watcher
	for _, wc := range []*postbox.Client{c, b.Dial(t)} {
		w, err := wc.Watch(ctxT(t), "jobs")
		if err != nil {
			t.Fatal(err)
		}
		if w.Armed().Exists {
			t.Fatal("armed says jobs exists")
		}
		ws = append(ws, w)
	}
	mb := create(t, c, "jobs", postbox.Capacity(2))
	send(t, mb, "1") // non-empty
	send(t, mb, "2") // full: no notice
	m := recv(t, mb) // below capacity
	m.Ack(ctxT(t))
	m = recv(t, mb) // empty: no notice
	m.Ack(ctxT(t))
	send(t, mb, "3") // non-empty again
	if err := mb.Destroy(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	want := []string{"created 0", "non-empty 1", "below-capacity 1", "non-empty 1", "destroyed 0"}
	for i, w := range ws {
		var got []string
		for range want {
			n := nextNotice(t, w)
			got = append(got, fmt.Sprintf("%s %d", n.Kind, n.Depth))
		}
		if strings.Join(got, ", ") != strings.Join(want, ", ") {
			t.Fatalf("watcher %d: %v, want %v", i, got, want)
		}
		if err := w.Close(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		wantEnded(t, w, postbox.ErrCanceled)
	}
}

// TestWatchingAMailboxNeedsReceivePermission: uid 65534 may not watch a
// 0600 mailbox, and a watch on a name whose mailbox is then created by
// root with 0600 ends with PERMISSION.
func TestWatchingAMailboxNeedsReceivePermission(t *testing.T) {
	needRoot(t)
	b := start(t, nil)
	c := b.Dial(t)
	create(t, c, "private", postbox.Mode(0o600))
	r := asNobody(t, b.Socket, "watch", "private")
	wantRoleErr(t, r, "ErrPermission", "watch a 0600 mailbox")

	later := startChild(t, b.Socket, nobody, "watchnext", "later")
	if r := later.result(t); r.Err != "" {
		t.Fatalf("watching a name with no mailbox: %+v", r)
	}
	create(t, c, "later", postbox.Mode(0o600))
	if r := later.result(t); r.Err != "ErrPermission" || r.Body != "" {
		t.Fatalf("after root created it 0600: %+v, want the watch ended with ErrPermission", r)
	}
	shared := startChild(t, b.Socket, nobody, "watchnext", "shared")
	if r := shared.result(t); r.Err != "" {
		t.Fatalf("watching a name with no mailbox: %+v", r)
	}
	create(t, c, "shared", postbox.Mode(0o644))
	if r := shared.result(t); r.Err != "" || r.Body != "created" {
		t.Fatalf("after root created it 0644: %+v, want a created notice", r)
	}
}

func TestWatchRefusesBadTargets(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	if _, err := c.Watch(ctxT(t), "#group"); !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("watch a group: %v, want ErrInvalid", err)
	}
	if _, err := c.Watch(ctxT(t), postbox.InboxName(c.Epoch()<<32|999)); !errors.Is(err, postbox.ErrNotFound) {
		t.Fatalf("watch an endpoint never connected: %v, want ErrNotFound", err)
	}
	// Other clients are unaffected.
	if err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}
