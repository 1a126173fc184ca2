package rpcfault_test

// The server role: the test binary re-executed with
// POSTBOX_RPCFAULT_ROLE=server is an rpc server process serving every
// method of service_test.go on one service, appending its executions to
// an execution log. It prints "ready PID" on stdout once it serves, and
// runs until stdin closes (then it shuts down gracefully and exits 0) or
// it is killed.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
)

func init() {
	if os.Getenv(roleEnv) == "server" {
		os.Exit(serverRole(os.Args[1:]))
	}
}

func serverRole(args []string) int {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	socket := fs.String("socket", "", "broker socket")
	service := fs.String("service", "", "service name")
	logPath := fs.String("log", "", "execution log")
	handlers := fs.Int("handlers", 4, "concurrent handlers")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "rpcfault server %d: %v\n", os.Getpid(), err)
		return 1
	}
	log, err := openExecLog(*logPath)
	if err != nil {
		return fail(err)
	}
	defer log.Close()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	c, err := postbox.Dial(ctx, postbox.WithSocket(*socket), postbox.WithName(fmt.Sprintf("rpcfault-server-%d", os.Getpid())))
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	srv, err := startServer(ctx, c, serverConfig{service: *service, handlers: *handlers}, log)
	if err != nil {
		return fail(err)
	}
	fmt.Printf("ready %d\n", os.Getpid())
	io.Copy(io.Discard, os.Stdin) // until the test closes stdin
	sctx, scancel := context.WithTimeout(context.Background(), hangGuard)
	defer scancel()
	if err := srv.shutdown(sctx); err != nil {
		return fail(fmt.Errorf("shutdown: %w", err))
	}
	return 0
}

// serverProc is a running server role process.
type serverProc struct {
	cmd    *exec.Cmd
	pid    int
	stdin  io.WriteCloser
	stderr *syncBuffer
	exited chan struct{} // closed once the process has been waited for
	err    error         // Wait's result, read after exited is closed
}

// startServerProc starts a server process on service against socket,
// logging to logPath, and returns once it serves. When t ends it is
// stopped gracefully if still running (killed if it does not exit).
func startServerProc(t *testing.T, socket, service, logPath string, handlers int) *serverProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-socket", socket, "-service", service, "-log", logPath, "-handlers", fmt.Sprint(handlers))
	// GORACE: a race-enabled binary otherwise sleeps 1 s at exit.
	cmd.Env = append(os.Environ(), roleEnv+"=server", "GORACE=atexit_sleep_ms=0")
	p := &serverProc{cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.pid = cmd.Process.Pid
	ready, drained := make(chan string, 1), make(chan struct{})
	go func() {
		defer close(drained)
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		<-drained // not before the reader is done with stdout (exec's rule)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
	select {
	case line := <-ready:
		if want := fmt.Sprintf("ready %d\n", p.pid); line != want {
			<-p.exited
			t.Fatalf("server process: got %q, want %q: %v\n%s", line, want, p.err, p.stderr)
		}
	case <-time.After(hangGuard):
		p.cmd.Process.Kill()
		t.Fatalf("server process %d not ready after %v\n%s", p.pid, hangGuard, p.stderr)
	}
	return p
}

// kill kills the process with SIGKILL and waits until it is gone.
func (p *serverProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill -9 server %d: %v", p.pid, err)
	}
	select {
	case <-p.exited:
	case <-time.After(hangGuard):
		t.Fatalf("server %d still running %v after SIGKILL", p.pid, hangGuard)
	}
}

// stop closes the process's stdin, so that it shuts down gracefully, and
// waits for it; it reports a server that did not exit cleanly.
func (p *serverProc) stop(t *testing.T) {
	select {
	case <-p.exited:
		return
	default:
	}
	p.stdin.Close()
	select {
	case <-p.exited:
		if p.err != nil {
			t.Errorf("server %d: %v\n%s", p.pid, p.err, p.stderr)
		}
	case <-time.After(hangGuard):
		t.Errorf("server %d did not exit after its stdin closed; killing it\n%s", p.pid, p.stderr)
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// syncBuffer is a strings.Builder safe for one writer and concurrent
// readers.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
