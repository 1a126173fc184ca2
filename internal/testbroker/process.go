package testbroker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
)

// HangGuard bounds every wait in this package and in the tests that use
// it. It is not a timing assumption: a correct broker answers in well
// under a millisecond; the guard only turns a hang into a failure.
const HangGuard = 10 * time.Second

// SharedDir makes a fresh directory that every user may read and enter
// (mode 0755), for binaries run under another uid, and removes it when t
// ends. t may be nil; the caller then removes it.
func SharedDir(t testing.TB, pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	if t != nil {
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	return dir, nil
}

// BuildCLI builds the postbox command into dir/postbox (mode 0755) and
// returns its path. Build it once per test binary (in TestMain, or behind
// a sync.Once) and pass the path around.
func BuildCLI(dir string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "postbox")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, "github.com/postbox-ipc/postbox/cmd/postbox")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/postbox: %v\n%s", err, out)
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		return "", err
	}
	return bin, nil
}

// CopyExecutable copies the running binary (e.g. a test binary that
// re-executes itself to play a client role) into dir with mode 0755, so
// that a process running as another uid can execute it.
func CopyExecutable(dir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	src, err := os.Open(self)
	if err != nil {
		return "", err
	}
	defer src.Close()
	dst := filepath.Join(dir, filepath.Base(self))
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return dst, os.Chmod(dst, 0o755)
}

// Process is a broker running as a separate `postbox serve` process.
type Process struct {
	Socket string
	Cmd    *exec.Cmd

	log    syncBuffer
	exited chan struct{} // closed when the process has been waited for
	err    error         // Wait's result, read after exited is closed
}

// StartProcess runs `bin serve --socket <fresh 0755 dir>/postbox.sock
// args...` (with --data in that directory unless args give --data or
// --memory) and returns once the socket accepts connections. When t ends
// the broker is sent SIGTERM (SIGKILL if it has not exited within
// HangGuard) and its directory removed.
func StartProcess(t testing.TB, bin string, args ...string) *Process {
	t.Helper()
	dir, err := SharedDir(t, "postbox-serve-")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--data") || a == "--memory" }) {
		// Never the user's default data directory: each broker its own.
		args = append([]string{"--data", filepath.Join(dir, "data")}, args...)
	}
	return StartProcessAt(t, bin, filepath.Join(dir, "postbox.sock"), args...)
}

// StartProcessAt is StartProcess on a given socket path, for a broker
// restarted where an earlier one (now exited) listened: its clients
// reconnect to the same path. args should give --data or --memory.
func StartProcessAt(t testing.TB, bin, socket string, args ...string) *Process {
	t.Helper()
	p := &Process{Socket: socket, exited: make(chan struct{})}
	p.Cmd = exec.Command(bin, append([]string{"serve", "--socket", p.Socket}, args...)...)
	p.Cmd.Stderr = &p.log
	p.Cmd.Stdout = &p.log
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(HangGuard):
			t.Errorf("broker process %d did not exit on SIGTERM; killing it\n%s", p.Cmd.Process.Pid, p.Log())
			p.Cmd.Process.Kill()
			<-p.exited
		}
	})
	deadline := time.Now().Add(HangGuard)
	for {
		if c, err := net.Dial("unix", p.Socket); err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.exited:
			t.Fatalf("broker process exited before listening: %v\n%s", p.err, p.Log())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker process not listening on %s after %v\n%s", p.Socket, HangGuard, p.Log())
		}
	}
}

// Signal sends sig to the broker process.
func (p *Process) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Wait waits (at most HangGuard) for the process to exit and returns its
// exit status: nil for status 0, an *exec.ExitError otherwise.
func (p *Process) Wait() error {
	select {
	case <-p.exited:
		return p.err
	case <-time.After(HangGuard):
		return fmt.Errorf("broker process %d still running after %v", p.Cmd.Process.Pid, HangGuard)
	}
}

// Log returns everything the process wrote to stdout and stderr so far.
func (p *Process) Log() string { return p.log.String() }

// WaitLog waits (at most HangGuard) until the log contains s.
func (p *Process) WaitLog(t testing.TB, s string) {
	t.Helper()
	deadline := time.Now().Add(HangGuard)
	for !strings.Contains(p.Log(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("broker log does not contain %q after %v:\n%s", s, HangGuard, p.Log())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Dial connects a client to the process, closed when t ends.
func (p *Process) Dial(t testing.TB) *postbox.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), HangGuard)
	defer cancel()
	c, err := postbox.Dial(ctx, postbox.WithSocket(p.Socket), postbox.WithName(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ExitCode returns err's exit status: 0 for nil, -1 if err is not an exit.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
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
