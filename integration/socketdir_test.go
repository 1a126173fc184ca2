package integration_test

// Socket path rules with real `postbox serve` and `postbox ls` processes,
// as root and as uid 65534. The default paths are moved into fresh
// directories through $XDG_RUNTIME_DIR, $TMPDIR (the /tmp/postbox-<uid>
// rule uses os.TempDir) and $POSTBOX_SYSTEM_SOCKET, so nothing depends on
// or touches the machine's /tmp/postbox-0 or /run/postbox.

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// pathEnv is the environment with the socket-path variables replaced by
// kv (and $POSTBOX_SOCKET unset, so that the defaults apply).
func pathEnv(kv ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		switch k {
		case postbox.SocketEnv, postbox.SystemSocketEnv, "XDG_RUNTIME_DIR", "TMPDIR":
			continue
		}
		env = append(env, e)
	}
	return append(env, kv...)
}

func cliCmd(ctx context.Context, t *testing.T, cred *syscall.Credential, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, cli(t), args...)
	cmd.Env = env
	cmd.Dir = "/"
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return cmd
}

// runCLI runs the postbox command to completion and returns its exit code
// and output.
func runCLI(t *testing.T, cred *syscall.Credential, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	out, err := cliCmd(ctx, t, cred, env, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("postbox %q still running after %v\n%s", args, hangGuard, out)
	}
	return testbroker.ExitCode(err), string(out)
}

// serveDefault runs `postbox serve --memory` (as cred, under umask 077)
// with env and no --socket, waits until sock accepts connections, and
// stops it when t ends, checking that it removed its socket.
func serveDefault(t *testing.T, cred *syscall.Credential, env []string, sock string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `umask 077 && exec "$0" serve --memory`, cli(t))
	cmd.Env, cmd.Dir = env, "/"
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(hangGuard):
			cmd.Process.Kill()
			<-exited
			t.Errorf("postbox serve did not exit on SIGTERM")
		}
		if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("postbox serve left its socket %s behind (%v)", sock, err)
		}
	})
	deadline := time.Now().Add(hangGuard)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("postbox serve exited before listening on %s: %v\n%s", sock, err, log.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("postbox serve not listening on %s after %v", sock, hangGuard)
		}
	}
}

func wantMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != want {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
	}
}

func mkdirOwned(t *testing.T, dir string, mode uint32, uid int) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// Root's broker is the machine's: with no --socket it listens on the
// system socket, in a 0755 directory with a 0666 socket whatever its
// umask, and another user's `postbox ls`, finding no per-user broker,
// falls back to it, the way ipcs shows the whole machine.
func TestRootBrokerServesTheMachineAndClientsFallBackToIt(t *testing.T) {
	needRoot(t)
	base, err := testbroker.SharedDir(t, "postbox-sockdir-")
	if err != nil {
		t.Fatal(err)
	}
	sys := filepath.Join(base, "run", "postbox", "postbox.sock")
	serveDefault(t, nil, pathEnv(postbox.SystemSocketEnv+"="+sys, "XDG_RUNTIME_DIR="+filepath.Join(base, "root-xdg")), sys)
	wantMode(t, filepath.Dir(sys), os.ModeDir|0o755)
	wantMode(t, filepath.Dir(filepath.Dir(sys)), os.ModeDir|0o755) // a parent it made
	wantMode(t, sys, os.ModeSocket|0o666)

	c, err := postbox.Dial(ctxT(t), postbox.WithSocket(sys))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	create(t, c, "machine-wide", postbox.Mode(0o666))

	nobodyXDG := filepath.Join(base, "nobody-xdg")
	mkdirOwned(t, nobodyXDG, 0o700, 65534)
	code, out := runCLI(t, nobody, pathEnv("XDG_RUNTIME_DIR="+nobodyXDG, postbox.SystemSocketEnv+"="+sys), "ls")
	if code != 0 || !strings.Contains(out, "machine-wide") {
		t.Errorf("postbox ls as uid 65534 with no per-user broker: exit %d, output %q; want the system broker's mailboxes", code, out)
	}
	// The same without $XDG_RUNTIME_DIR: the per-user path is then
	// $TMPDIR/postbox-65534, which does not exist.
	code, out = runCLI(t, nobody, pathEnv("TMPDIR="+base, postbox.SystemSocketEnv+"="+sys), "ls")
	if code != 0 || !strings.Contains(out, "machine-wide") {
		t.Errorf("postbox ls as uid 65534 via $TMPDIR: exit %d, output %q; want the system broker's mailboxes", code, out)
	}

	// A per-user directory that root owns (0755) is trusted: here it is
	// the system broker's own.
	code, out = runCLI(t, nobody, pathEnv("XDG_RUNTIME_DIR="+filepath.Join(base, "run"),
		postbox.SystemSocketEnv+"="+filepath.Join(base, "none", "postbox.sock")), "ls")
	if code != 0 || !strings.Contains(out, "machine-wide") {
		t.Errorf("postbox ls as uid 65534, per-user directory root's: exit %d, output %q", code, out)
	}

	// A per-user directory owned by another non-root uid, or a symlink,
	// is refused, even though the system broker would answer.
	for _, plant := range []struct {
		why string
		do  func(dir string)
	}{
		{"owned by uid 65533", func(dir string) { mkdirOwned(t, dir, 0o755, 65533) }},
		{"symlink", func(dir string) {
			if err := os.Symlink(filepath.Dir(sys), dir); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		xdg := filepath.Join(base, "planted-"+strings.Fields(plant.why)[0])
		mkdirOwned(t, xdg, 0o755, 65534)
		plant.do(filepath.Join(xdg, "postbox"))
		code, out := runCLI(t, nobody, pathEnv("XDG_RUNTIME_DIR="+xdg, postbox.SystemSocketEnv+"="+sys), "ls")
		path := filepath.Join(xdg, "postbox", "postbox.sock")
		if code != 77 || !strings.Contains(out, "unsafe socket "+path) || !strings.Contains(out, plant.why) || strings.Contains(out, "machine-wide") {
			t.Errorf("postbox ls as uid 65534, per-user directory %s: exit %d, output %q; want exit 77 saying the socket %s is unsafe", plant.why, code, out, path)
		}
		if plant.why != "symlink" {
			continue
		}
		// --socket naming the default path is the default path: checked.
		code, out = runCLI(t, nobody, pathEnv("XDG_RUNTIME_DIR="+xdg), "ls", "--socket", path)
		if code != 77 || !strings.Contains(out, "unsafe socket "+path) {
			t.Errorf("postbox ls --socket %s (the default path) as uid 65534: exit %d, output %q; want it refused", path, code, out)
		}
		// Any other --socket (or $POSTBOX_SOCKET) is the user's choice:
		// not checked.
		code, out = runCLI(t, nobody, pathEnv("XDG_RUNTIME_DIR="+nobodyXDG), "ls", "--socket", path)
		if code != 0 || !strings.Contains(out, "machine-wide") {
			t.Errorf("postbox ls --socket %s as uid 65534: exit %d, output %q", path, code, out)
		}
		code, out = runCLI(t, nobody, pathEnv("XDG_RUNTIME_DIR="+nobodyXDG, postbox.SocketEnv+"="+path), "ls")
		if code != 0 || !strings.Contains(out, "machine-wide") {
			t.Errorf("POSTBOX_SOCKET=%s postbox ls as uid 65534: exit %d, output %q", path, code, out)
		}
	}
}

// A broker refuses a socket directory another user planted before it
// started (in a sticky, world-writable directory like /tmp), and a
// non-root broker makes its own per-user directory 0700.
func TestServeRefusesPlantedSocketDirectory(t *testing.T) {
	needRoot(t)
	tmp, err := testbroker.SharedDir(t, "postbox-sockdir-tmp-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o1777); err != nil {
		t.Fatal(err)
	}
	asNobodyRun := func(args ...string) {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
		cmd.Dir = "/"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%q as uid 65534: %v\n%s", args, err, out)
		}
	}
	planted := filepath.Join(tmp, "postbox-0")
	asNobodyRun("mkdir", "-m", "0777", planted)
	theirs := filepath.Join(tmp, "theirs")
	asNobodyRun("mkdir", "-m", "0777", theirs)
	link := filepath.Join(tmp, "postbox-link")
	asNobodyRun("ln", "-s", theirs, link)

	for _, c := range []struct{ dir, why string }{{planted, "owned by uid 65534"}, {link, "symlink"}} {
		sock := filepath.Join(c.dir, "postbox.sock")
		code, out := runCLI(t, nil, pathEnv(postbox.SystemSocketEnv+"="+sock), "serve", "--memory")
		if code != 1 || !strings.Contains(out, "unsafe socket path") || !strings.Contains(out, c.dir) || !strings.Contains(out, c.why) {
			t.Errorf("postbox serve as root on %s: exit %d, output %q; want exit 1 naming the directory and saying %q", sock, code, out, c.why)
		}
		if _, err := os.Lstat(filepath.Join(theirs, "postbox.sock")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("refused broker created a socket in the other user's directory (%v)", err)
		}
	}

	// uid 65534's own broker: /tmp/postbox-65534 (here $TMPDIR) is made
	// 0700; one that root made instead is not its own, so refused.
	env := pathEnv("TMPDIR=" + tmp)
	mine := filepath.Join(tmp, "postbox-65534")
	sock := filepath.Join(mine, "postbox.sock")
	serveDefault(t, nobody, env, sock)
	wantMode(t, mine, os.ModeDir|0o700)
	wantMode(t, sock, os.ModeSocket|0o666)
	if code, out := runCLI(t, nobody, env, "ls"); code != 0 {
		t.Errorf("postbox ls as uid 65534 with its own broker: exit %d, output %q", code, out)
	}

	rootMade, err := testbroker.SharedDir(t, "postbox-sockdir-tmp2-")
	if err != nil {
		t.Fatal(err)
	}
	mkdirOwned(t, filepath.Join(rootMade, "postbox-65534"), 0o755, 0)
	code, out := runCLI(t, nobody, pathEnv("TMPDIR="+rootMade), "serve", "--memory")
	if code != 1 || !strings.Contains(out, "owned by uid 0, not by this broker's uid 65534") {
		t.Errorf("postbox serve as uid 65534 in root's directory: exit %d, output %q", code, out)
	}
}
