package testbroker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/postbox-ipc/postbox/broker"
)

// Stop shuts b down now, for a test that restarts a broker on the same
// data directory: the store is closed (its lock released) when Stop
// returns. The cleanup Start registered still runs and finds b stopped.
func (b *Broker) Stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), HangGuard)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("broker shutdown: %v", err)
	}
	if err := b.Served(); !errors.Is(err, broker.ErrServerClosed) {
		t.Fatalf("Serve returned %v, want ErrServerClosed", err)
	}
}

// Crash kills the broker process with SIGKILL, so that it can neither
// flush nor close anything, and waits (at most HangGuard) until it is
// gone. Its data directory is then exactly what a crash leaves behind.
func (p *Process) Crash(t testing.TB) {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill -9 broker %d: %v", p.Cmd.Process.Pid, err)
	}
	err := p.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("broker %d after kill -9: %v\n%s", p.Cmd.Process.Pid, err, p.Log())
	}
}

// MountTmpfs mounts a tmpfs of the given size (mount(8) syntax: "2m") on
// a fresh directory and unmounts it when t ends. It skips t, with the
// reason, where mounting is not permitted (not root, no CAP_SYS_ADMIN,
// a container that forbids it).
func MountTmpfs(t testing.TB, size string) string {
	t.Helper()
	dir, err := SharedDir(t, "postbox-tmpfs-")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		t.Skipf("mount -t tmpfs -o size=%s on %s not permitted here: %v", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("umount %s: %v", dir, err)
		}
	})
	return dir
}

// Open is Start for a broker that may fail to open (a data directory it
// cannot use): it returns broker.Open's error instead of panicking, and
// otherwise runs and cleans up the broker exactly as Start does.
func Open(t testing.TB, cfg broker.Config) (*Broker, error) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	bb, err := broker.Open(cfg)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "postbox-test-")
	if err != nil {
		bb.Close()
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "postbox.sock")
	l, err := broker.Listen(sock, 0o666)
	if err != nil {
		bb.Close()
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	b := &Broker{Broker: bb, Socket: sock, served: make(chan struct{})}
	go func() {
		b.serveErr = b.Serve(l)
		close(b.served)
	}()
	t.Cleanup(func() {
		b.Stop(t)
		os.RemoveAll(dir)
	})
	return b, nil
}

// testLogger is the logger Start gives a broker whose config has none.
func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
