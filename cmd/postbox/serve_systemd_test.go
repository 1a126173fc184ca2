package main

// These tests hand `postbox serve` what systemd hands it: listening
// sockets as descriptors 3 and up with LISTEN_FDS, LISTEN_FDNAMES and
// LISTEN_PID (which must be the pid of the process that runs postbox,
// known only once it runs: the test binary re-executes itself as a shim
// that sets LISTEN_PID to its own pid and then execs postbox, keeping its
// pid and descriptors, as systemd's own child does), and a NOTIFY_SOCKET
// the test listens on.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/internal/testcerts"
)

const shimEnv = "POSTBOX_TEST_SYSTEMD_SHIM"

// The shim: `testbinary BIN ARGS...` with shimEnv set sets LISTEN_PID to
// its pid (or, with shimEnv=other, to another) and becomes BIN ARGS.
func init() {
	how := os.Getenv(shimEnv)
	if how == "" {
		return
	}
	os.Unsetenv(shimEnv)
	pid := os.Getpid()
	if how == "other" {
		pid++
	}
	os.Setenv("LISTEN_PID", strconv.Itoa(pid))
	err := syscall.Exec(os.Args[1], os.Args[1:], os.Environ())
	os.Stderr.WriteString("systemd shim: exec " + os.Args[1] + ": " + err.Error() + "\n")
	os.Exit(127)
}

// servedProc is a `postbox serve` started the way systemd starts it.
type servedProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex // guards out
	out    bytes.Buffer
	exited chan struct{}
	err    error // after exited
}

func (p *servedProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *servedProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// wait waits (at most the hang guard) for the process to exit.
func (p *servedProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
		return testbroker.ExitCode(p.err)
	case <-time.After(testbroker.HangGuard):
		t.Fatalf("postbox serve still running after %v\n%s", testbroker.HangGuard, p.log())
		return -1
	}
}

// startActivated runs `postbox serve args...` through the shim with files
// as descriptors 3, 4, ... named names, and env added (shimEnv=other in
// env: LISTEN_PID names another process). It is sent SIGTERM (then
// SIGKILL) when t ends.
func startActivated(t *testing.T, files []*os.File, names []string, env []string, args ...string) *servedProc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &servedProc{exited: make(chan struct{})}
	p.cmd = exec.Command(self, append([]string{bin, "serve"}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	if len(files) > 0 {
		p.cmd.Env = append([]string{shimEnv + "=1"}, p.cmd.Env...) // env may override it
		p.cmd.Env = append(p.cmd.Env, "LISTEN_FDS="+strconv.Itoa(len(files)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
	}
	p.cmd.ExtraFiles = files
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		f.Close() // the child has them; serve must not depend on ours
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(testbroker.HangGuard):
			t.Errorf("postbox serve did not exit on SIGTERM\n%s", p.log())
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// unixListenerFile is a listening Unix socket at path, as a file to pass.
func unixListenerFile(t *testing.T, path string) *os.File {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false) // the file stays, as systemd's does
	f, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	return f
}

// dialWhenUp connects to socket, waiting (at most the hang guard) for the
// broker to answer.
func dialWhenUp(t *testing.T, p *servedProc, socket string) *postbox.Client {
	t.Helper()
	deadline := time.Now().Add(testbroker.HangGuard)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
		c, err := postbox.Dial(ctx, postbox.WithSocket(socket), postbox.WithName(t.Name()))
		cancel()
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		select {
		case <-p.exited:
			t.Fatalf("postbox serve exited: %v\n%s", p.err, p.log())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no broker on %s after %v: %v\n%s", socket, testbroker.HangGuard, err, p.log())
		}
	}
}

func sdCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	t.Cleanup(cancel)
	return ctx
}

// roundTrip creates a mailbox on c, sends to it and receives the message.
func roundTrip(t *testing.T, c *postbox.Client, name string) {
	t.Helper()
	ctx := sdCtx(t)
	mb, err := c.Create(ctx, name, postbox.Mode(0o666)) // a plain TCP peer is anonymous: "others"
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Send(ctx, []byte("through "+name)); err != nil {
		t.Fatal(err)
	}
	m, err := mb.Receive(ctx, postbox.AutoAck())
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Body) != "through "+name {
		t.Fatalf("received %q", m.Body)
	}
}

func TestServeUsesTheUnixSocketSystemdPasses(t *testing.T) {
	testbroker.CheckGoroutines(t)
	dir, err := testbroker.SharedDir(t, "postbox-sd-")
	if err != nil {
		t.Fatal(err)
	}
	passed := filepath.Join(dir, "passed.sock")
	own := filepath.Join(dir, "own.sock")
	p := startActivated(t, []*os.File{unixListenerFile(t, passed)}, []string{"postbox"}, nil,
		"--memory", "--socket", own)
	roundTrip(t, dialWhenUp(t, p, passed), "activated")
	if _, err := os.Lstat(own); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("serve made its own socket %s beside the passed one (%v)", own, err)
	}
	if !strings.Contains(p.log(), "from=systemd") {
		t.Errorf("the log does not say the socket came from systemd:\n%s", p.log())
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.log())
	}
	if _, err := os.Lstat(passed); err != nil {
		t.Errorf("serve removed systemd's socket file %s: %v", passed, err)
	}
}

func TestServeUsesPassedTCPSocketsByName(t *testing.T) {
	testbroker.CheckGoroutines(t)
	dir, err := testbroker.SharedDir(t, "postbox-sd-")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := tl.Addr().String()
	tf, err := tl.File()
	if err != nil {
		t.Fatal(err)
	}
	tl.Close()
	sock := filepath.Join(dir, "passed.sock")
	p := startActivated(t, []*os.File{unixListenerFile(t, sock), tf}, []string{"postbox.socket", "tcp"}, nil,
		"--memory", "--insecure")
	dialWhenUp(t, p, sock)
	roundTrip(t, testbroker.DialTCP(t, addr), "over-tcp")
	if !strings.Contains(p.log(), "tcp://"+addr) {
		t.Errorf("the log does not name tcp://%s:\n%s", addr, p.log())
	}
}

func TestServeRefusesPassedDescriptorsItCannotUse(t *testing.T) {
	testbroker.CheckGoroutines(t)
	tcpFile := func(t *testing.T) *os.File {
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		f, err := l.File()
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		return f
	}
	for _, tc := range []struct {
		name, fdname string
		file         func(t *testing.T) *os.File
		args         []string
		want         string
	}{
		{"tcp socket with another name", "postbox.socket", tcpFile, nil, "must be named tls or tcp"},
		{"plain tcp without --insecure", "tcp", tcpFile, nil, "--insecure"},
		{"tls without certificates", "tls", tcpFile, nil, "--tls-cert"},
		{"datagram socket", "postbox", func(t *testing.T) *os.File {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			f, err := c.File()
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			return f
		}, nil, "not a stream socket"},
		{"stream socket not listening", "postbox", func(t *testing.T) *os.File {
			fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			return os.NewFile(uintptr(fd), "unbound")
		}, nil, "not listening"},
		{"unix socket named tls", "tls", func(t *testing.T) *os.File {
			return unixListenerFile(t, filepath.Join(t.TempDir(), "s"))
		}, nil, "cannot be named"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "own.sock")
			p := startActivated(t, []*os.File{tc.file(t)}, []string{tc.fdname}, nil,
				append([]string{"--memory", "--socket", sock}, tc.args...)...)
			code := p.wait(t)
			out := p.log()
			if code != exitError || !strings.Contains(out, "socket activation") || !strings.Contains(out, "descriptor 3") ||
				!strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output %q; want exit %d, saying socket activation, descriptor 3 and %q", code, out, exitError, tc.want)
			}
			if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("refused serve made its socket (%v)", err)
			}
		})
	}
}

// Descriptors passed for another pid (LISTEN_PID is not ours) are not
// taken: serve makes its own socket.
func TestServeIgnoresDescriptorsForAnotherPid(t *testing.T) {
	testbroker.CheckGoroutines(t)
	dir, err := testbroker.SharedDir(t, "postbox-sd-")
	if err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(dir, "own.sock")
	p := startActivated(t, []*os.File{unixListenerFile(t, filepath.Join(dir, "passed.sock"))}, []string{"postbox"},
		[]string{shimEnv + "=other"}, "--memory", "--socket", own)
	roundTrip(t, dialWhenUp(t, p, own), "own")
	if strings.Contains(p.log(), "from=systemd") {
		t.Errorf("serve took descriptors passed to another pid:\n%s", p.log())
	}
}

// systemd's own tool for running a program socket-activated: it listens,
// and on the first connection execs `postbox serve` with LISTEN_FDS set,
// as a .socket unit does.
func TestServeUnderSystemdSocketActivate(t *testing.T) {
	tool, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate is not installed")
	}
	testbroker.CheckGoroutines(t)
	dir, err := testbroker.SharedDir(t, "postbox-sd-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "activated.sock")
	p := &servedProc{exited: make(chan struct{})}
	p.cmd = exec.Command(tool, "--listen="+sock, "--fdname=postbox", bin, "serve", "--memory",
		"--socket", filepath.Join(dir, "own.sock"))
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(testbroker.HangGuard):
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	// The first connection makes it exec postbox, which then accepts it.
	roundTrip(t, dialWhenUp(t, p, sock), "socket-activate")
	if !strings.Contains(p.log(), "from=systemd") {
		t.Errorf("postbox serve did not take the socket from systemd-socket-activate:\n%s", p.log())
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.log())
	}
}

// A TCP socket named tls is served with the broker's certificate, and
// clients must present theirs, as with --listen tls://.
func TestServeServesAPassedSocketNamedTLSWithTLS(t *testing.T) {
	testbroker.CheckGoroutines(t)
	dir, err := testbroker.SharedDir(t, "postbox-sd-")
	if err != nil {
		t.Fatal(err)
	}
	ca := testcerts.NewCA(t, dir, "test")
	srv, alice := ca.Server(t, "127.0.0.1"), ca.Client(t, "alice", "Example", "spiffe://example.org/alice")
	tl, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := tl.Addr().String()
	tf, err := tl.File()
	if err != nil {
		t.Fatal(err)
	}
	tl.Close()
	sock := filepath.Join(dir, "passed.sock")
	p := startActivated(t, []*os.File{unixListenerFile(t, sock), tf}, []string{"postbox", "tls"}, nil,
		"--memory", "--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile, "--tls-client-ca", ca.CertFile)
	dialWhenUp(t, p, sock)
	ctx := sdCtx(t)
	c, err := postbox.Dial(ctx, postbox.WithURL("tls://"+addr), postbox.WithTLS(testcerts.ClientConfig(alice, ca)))
	if err != nil {
		t.Fatalf("TLS dial of the passed socket: %v\n%s", err, p.log())
	}
	defer c.Close()
	roundTrip(t, c, "over-tls")
	// Without a client certificate the handshake fails.
	nc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	if err == nil {
		nc.SetDeadline(time.Now().Add(testbroker.HangGuard))
		_, err = nc.Read(make([]byte, 1)) // TLS 1.3 reports the refusal on the first read
		nc.Close()
	}
	if err == nil {
		t.Fatal("a TLS client without a certificate was served")
	}
}
