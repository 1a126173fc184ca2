package integration_test

// Client roles: the test binary re-executed with POSTBOX_TEST_ROLE=client
// is a separate client process (possibly under another uid) that performs
// one command against $POSTBOX_SOCKET and prints one JSON line, so that a
// test can compare what the broker reports with what the process really
// is.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
)

// roleResult is the JSON line a client role prints.
type roleResult struct {
	PID, UID, GID int
	Endpoint      uint64
	// Err is the name of the postbox sentinel the error matched ("" if
	// none, "other" if it matched none); ErrText is the full message.
	Err, ErrText string
	// For receives.
	ID           uint64
	Body         string
	Redeliveries uint32
	Sender       postbox.Identity
}

var sentinels = []struct {
	name string
	err  error
}{
	{"ErrPermission", postbox.ErrPermission}, {"ErrNotFound", postbox.ErrNotFound},
	{"ErrFull", postbox.ErrFull}, {"ErrEmpty", postbox.ErrEmpty}, {"ErrTimeout", postbox.ErrTimeout},
	{"ErrDestroyed", postbox.ErrDestroyed}, {"ErrClosed", postbox.ErrClosed}, {"ErrLimit", postbox.ErrLimit},
	{"ErrStaleLease", postbox.ErrStaleLease}, {"ErrExists", postbox.ErrExists},
}

func errName(err error) string {
	if err == nil {
		return ""
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	return "other"
}

// runRole is the child's main. Commands:
//
//	hello                  report who the broker thinks we are
//	send NAME BODY         send one message
//	recv NAME              receive one message and ack it
//	hold NAME              receive one message, report it, then wait
//	                       (without acking) until stdin closes or we are killed
//	chmod NAME MODE, rm NAME
func runRole(role string, args []string) int {
	if role != "client" || len(args) == 0 {
		fmt.Fprintf(os.Stderr, "unknown role %q %q\n", role, args)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	out := roleResult{PID: os.Getpid(), UID: os.Getuid(), GID: os.Getgid()}
	report := func(err error) int {
		out.Err, out.ErrText = errName(err), ""
		if err != nil {
			out.ErrText = err.Error()
		}
		json.NewEncoder(os.Stdout).Encode(out)
		return 0
	}
	c, err := dialRole(ctx, "role-"+args[0])
	if err != nil {
		return report(err)
	}
	defer c.Close()
	out.Endpoint = c.Identity().Endpoint
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	mb := c.Mailbox(arg(1))
	switch args[0] {
	case "hello":
		return report(nil)
	case "send":
		_, err := mb.Send(ctx, []byte(arg(2)))
		return report(err)
	case "recv", "hold":
		m, err := mb.Receive(ctx)
		if err == nil {
			out.ID, out.Body, out.Redeliveries, out.Sender = m.ID, string(m.Body), m.Redeliveries, m.Sender
			if args[0] == "recv" {
				err = m.Ack(ctx)
			}
		}
		report(err)
		if args[0] == "hold" {
			io.Copy(io.Discard, os.Stdin) // until the parent closes stdin or kills us
		}
		return 0
	case "chmod":
		mode, _ := strconv.ParseUint(arg(2), 8, 32)
		return report(mb.Chmod(ctx, os.FileMode(mode)))
	case "rm":
		return report(mb.Destroy(ctx))
	}
	if ok, err := quotaRole(ctx, c, args, &out); ok { // quota_test.go
		return report(err)
	}
	if code, ok := groupsRole(ctx, c, args, &out, report); ok { // groups_role_test.go
		return code
	}
	if ok, err := pubsubRole(ctx, c, args, &out); ok { // pubsub_more_test.go
		return report(err)
	}
	fmt.Fprintf(os.Stderr, "unknown command %q\n", args[0])
	return 2
}

// tcpEnv, when set for a client role, is the broker's TCP address to
// connect to instead of $POSTBOX_SOCKET.
const tcpEnv = "POSTBOX_TEST_TCP"

// dialRole connects a client role: over TCP to $POSTBOX_TEST_TCP if set,
// else to the socket.
func dialRole(ctx context.Context, name string) (*postbox.Client, error) {
	addr := os.Getenv(tcpEnv)
	if addr == "" {
		return postbox.Dial(ctx, postbox.WithName(name))
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c, err := postbox.NewClient(ctx, nc, postbox.WithName(name))
	if err != nil {
		nc.Close()
	}
	return c, err
}

// child is a client role process.
type child struct {
	cmd   *exec.Cmd
	out   *bufio.Reader
	stdin io.WriteCloser
	done  chan struct{} // closed once the process has been waited for
	err   error
}

// startChild starts a client role against socket, as cred if non-nil.
func startChild(t *testing.T, socket string, cred *syscall.Credential, args ...string) *child {
	t.Helper()
	return startChildEnv(t, []string{postbox.SocketEnv + "=" + socket}, cred, args...)
}

// startChildEnv starts a client role with env added to its environment.
func startChildEnv(t *testing.T, env []string, cred *syscall.Credential, args ...string) *child {
	t.Helper()
	cmd := exec.Command(self(t), args...)
	// GORACE: a race-enabled binary otherwise sleeps 1 s at exit.
	cmd.Env = append(append(os.Environ(), roleEnv+"=client", "GORACE=atexit_sleep_ms=0"), env...)
	cmd.Stderr = os.Stderr
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = "/"
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &child{cmd: cmd, out: bufio.NewReader(stdout), stdin: stdin, done: make(chan struct{})}
	t.Cleanup(func() {
		ch.stdin.Close()
		select {
		case <-ch.done:
		default:
			cmd.Process.Kill()
			ch.wait(t)
		}
	})
	return ch
}

// result reads the child's report line (waiting at most the hang guard).
func (ch *child) result(t *testing.T) roleResult {
	t.Helper()
	lines := make(chan string, 1)
	go func() {
		line, _ := ch.out.ReadString('\n')
		lines <- line
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(hangGuard):
		ch.cmd.Process.Kill()
		<-lines
		t.Fatalf("client role %q: no report after %v", ch.cmd.Args[1:], hangGuard)
	}
	var r roleResult
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("client role %q: bad report %q: %v", ch.cmd.Args[1:], strings.TrimSpace(line), err)
	}
	return r
}

// wait waits for the child to exit and returns its Wait error.
func (ch *child) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-ch.done:
		return ch.err
	default:
	}
	exited := make(chan error, 1)
	go func() { exited <- ch.cmd.Wait() }()
	select {
	case ch.err = <-exited:
	case <-time.After(hangGuard):
		ch.cmd.Process.Kill()
		ch.err = <-exited
		t.Errorf("client role %q did not exit after %v", ch.cmd.Args[1:], hangGuard)
	}
	close(ch.done)
	return ch.err
}

// runChild runs a client role to completion and returns its report.
func runChild(t *testing.T, socket string, cred *syscall.Credential, args ...string) roleResult {
	t.Helper()
	ch := startChild(t, socket, cred, args...)
	ch.stdin.Close()
	r := ch.result(t)
	if err := ch.wait(t); err != nil {
		t.Fatalf("client role %q: %v", args, err)
	}
	return r
}
