package main

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
	"time"
)

// Errors of starting the peers.
var (
	errBuild    = errors.New("peers: build failed")
	errNotReady = errors.New("peers: server did not become ready")
	errExited   = errors.New("peers: server exited")
)

// readyTimeout bounds how long a server may take to start: generous, as
// the machine may be busy. A variable for the test of errNotReady.
var readyTimeout = 60 * time.Second

// proc is a server started as its own process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string         // its stdout and stderr
	in   io.WriteCloser // its stdin: closing it asks peerserver to stop
	done chan struct{}  // closed when it has exited
	err  error          // its exit status, once done is closed

	stopOnce sync.Once // asks it to stop once
}

// exited reports the error to give if the process has ended.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%w: %s (%v): %s", errExited, p.name, p.err, tail(p.log))
	default:
		return nil
	}
}

// procs owns every process the bench starts; stopAll ends them all, and
// is safe to call more than once and from a signal watcher.
type procs struct {
	dir string // logs go here
	mu  sync.Mutex
	// mu guards list, the processes started, and all, their pids.
	list []*proc
	all  []int
}

// start runs bin with args as its own process, its output to a log file
// in p.dir. The child is killed with SIGKILL should this process die
// without stopping it (Pdeathsig).
func (p *procs) start(name, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(p.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	pr := &proc{name: name, cmd: cmd, log: logPath, in: in, done: make(chan struct{})}
	// Pdeathsig follows the thread that forked: keep it alive for the
	// child's whole life by starting and waiting on one locked thread.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.mu.Lock()
		p.list = append(p.list, pr)
		p.all = append(p.all, cmd.Process.Pid)
		p.mu.Unlock()
		started <- nil
		pr.err = cmd.Wait()
		close(pr.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return pr, nil
}

// stopAll asks every process to stop (SIGTERM, stdin closed), kills any
// still running after a few seconds, and waits for all of them. Calls
// may overlap: each returns once every process has exited.
func (p *procs) stopAll() {
	p.mu.Lock()
	list := slices.Clone(p.list)
	p.mu.Unlock()
	for _, pr := range list {
		pr.stopOnce.Do(func() {
			pr.in.Close()
			pr.cmd.Process.Signal(syscall.SIGTERM)
		})
	}
	for _, pr := range list {
		select {
		case <-pr.done:
		case <-time.After(5 * time.Second):
			pr.cmd.Process.Kill()
			<-pr.done
		}
	}
}

// pids lists every process started.
func (p *procs) pids() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.all...)
}

// waitReady calls ready until it succeeds, the process exits, ctx ends or
// readyTimeout passes.
func waitReady(ctx context.Context, pr *proc, ready func(context.Context) error) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		if err := pr.exited(); err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := ready(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s after %v: %v: %s", errNotReady, pr.name, readyTimeout, err, tail(pr.log))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// goBuild runs `go build -o out pkg` in dir.
func goBuild(ctx context.Context, dir, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: go build %s in %s: %v\n%s", errBuild, pkg, dir, err, buf.String())
	}
	return nil
}

// moduleDir is this module's directory (bench/peers), from the path this
// file was compiled from, else from the working directory.
func moduleDir() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		dir := filepath.Dir(file)
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for _, dir := range []string{wd, filepath.Join(wd, "bench", "peers")} {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/postbox-ipc/postbox/bench/peers\n")) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%w: cannot find the bench/peers module from %s: run from it or the repository root", errBuild, wd)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail is the end of a log file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}
