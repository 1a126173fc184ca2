package postbox_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
)

const otherUID = 65534

// defaultEnv points the default socket paths into a fresh directory:
// $XDG_RUNTIME_DIR (mode 0700, ours, with no postbox directory yet) and
// $POSTBOX_SYSTEM_SOCKET, with $POSTBOX_SOCKET unset. It returns the
// per-user and system socket paths.
func defaultEnv(t *testing.T) (user, system string) {
	t.Helper()
	base := t.TempDir()
	xdg := filepath.Join(base, "xdg")
	if err := os.Mkdir(xdg, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv(postbox.SocketEnv, "")
	t.Setenv("XDG_RUNTIME_DIR", xdg)
	system = filepath.Join(base, "run", "postbox", "postbox.sock")
	t.Setenv(postbox.SystemSocketEnv, system)
	return filepath.Join(xdg, "postbox", "postbox.sock"), system
}

// serveAt runs a real broker on sock (directory created with dirMode)
// until t ends, with a mailbox named marker so a test can tell brokers
// apart.
func serveAt(t *testing.T, sock string, dirMode os.FileMode, marker string) {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := broker.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := broker.ListenDir(sock, 0o666, dirMode)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	go b.Serve(l)
	t.Cleanup(func() { b.Close() })
	c, err := postbox.Dial(ctxT(t), postbox.WithSocket(sock))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Create(ctxT(t), marker); err != nil {
		t.Fatal(err)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// reaches dials with opts and checks it reached the broker with marker.
func reaches(t *testing.T, marker string, opts ...postbox.DialOption) {
	t.Helper()
	c, err := postbox.Dial(ctxT(t), opts...)
	if err != nil {
		t.Fatalf("Dial: %v; want the broker with %q", err, marker)
	}
	defer c.Close()
	if _, err := c.Mailbox(marker).Stat(ctxT(t)); err != nil {
		t.Fatalf("Dial reached a broker without %q: %v", marker, err)
	}
}

// trap listens on sock with a bare listener (a planted socket) and
// returns a check that nobody connected to it.
func trap(t *testing.T, sock string) func() {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return func() {
		t.Helper()
		l.SetDeadline(time.Now().Add(50 * time.Millisecond))
		if c, err := l.Accept(); err == nil {
			c.Close()
			t.Errorf("the planted socket %s was dialled", sock)
		}
	}
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the socket directory belongs to uid 65534")
	}
}

func TestDialRefusesUnsafeDefaultSocket(t *testing.T) {
	needRoot(t)
	for _, c := range []struct {
		name, why string
		plant     func(t *testing.T, dir string) (sock string)
	}{
		{"dir of another uid", "owned by uid 65534", func(t *testing.T, dir string) string {
			mkdir(t, dir, 0o755, otherUID)
			return filepath.Join(dir, "postbox.sock")
		}},
		{"world-writable dir of another uid", "owned by uid 65534", func(t *testing.T, dir string) string {
			mkdir(t, dir, 0o777, otherUID)
			return filepath.Join(dir, "postbox.sock")
		}},
		{"group-writable dir of ours", "writable by group or others", func(t *testing.T, dir string) string {
			mkdir(t, dir, 0o770, 0)
			return filepath.Join(dir, "postbox.sock")
		}},
		{"sticky world-writable dir of root", "writable by group or others", func(t *testing.T, dir string) string {
			mkdir(t, dir, 0o1777, 0)
			return filepath.Join(dir, "postbox.sock")
		}},
		{"symlink to a dir of another uid", "symlink", func(t *testing.T, dir string) string {
			theirs := filepath.Join(t.TempDir(), "theirs")
			mkdir(t, theirs, 0o755, otherUID)
			if err := os.Symlink(theirs, dir); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(theirs, "postbox.sock")
		}},
		{"symlink to a safe dir", "symlink", func(t *testing.T, dir string) string {
			safe := filepath.Join(t.TempDir(), "safe")
			mkdir(t, safe, 0o700, 0)
			if err := os.Symlink(safe, dir); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(safe, "postbox.sock")
		}},
		{"socket of another uid", "socket is owned by uid 65534", func(t *testing.T, dir string) string {
			mkdir(t, dir, 0o700, 0)
			return filepath.Join(dir, "postbox.sock") // chowned once planted
		}},
		{"symlink to a socket", "not a socket", func(t *testing.T, dir string) string {
			mkdir(t, dir, 0o700, 0)
			other := filepath.Join(t.TempDir(), "other.sock")
			if err := os.Symlink(other, filepath.Join(dir, "postbox.sock")); err != nil {
				t.Fatal(err)
			}
			return other
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			user, system := defaultEnv(t)
			serveAt(t, system, 0o755, "system") // never a way around the refusal
			sock := c.plant(t, filepath.Dir(user))
			dialled := trap(t, sock)
			if c.why == "socket is owned by uid 65534" {
				if err := os.Lchown(sock, otherUID, otherUID); err != nil {
					t.Fatal(err)
				}
			}
			for _, opts := range [][]postbox.DialOption{nil, {postbox.WithSocket(postbox.DefaultSocketPath())}} {
				cl, err := postbox.Dial(ctxT(t), opts...)
				if err == nil {
					cl.Close()
					t.Fatalf("Dial(%d options) succeeded; want ErrUnsafeSocket: %s", len(opts), c.why)
				}
				if !errors.Is(err, postbox.ErrUnsafeSocket) || !strings.Contains(err.Error(), user) ||
					!strings.Contains(err.Error(), c.why) || !strings.HasPrefix(err.Error(), "postbox: ") {
					t.Errorf("Dial: %v; want postbox.ErrUnsafeSocket naming %s and saying %q", err, user, c.why)
				}
			}
			dialled()
		})
	}
}

func mkdir(t *testing.T, dir string, mode uint32, uid int) {
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

func TestDialReachesSafeDefaultSocket(t *testing.T) {
	user, system := defaultEnv(t)
	serveAt(t, system, 0o755, "system")
	serveAt(t, user, 0o700, "user") // Listen creates the 0700 directory
	reaches(t, "user")
	reaches(t, "user", postbox.WithSocket(postbox.DefaultSocketPath()))

	// Root's directory (0755) is trusted too.
	needRoot(t)
	if err := os.Chmod(filepath.Dir(user), 0o755); err != nil {
		t.Fatal(err)
	}
	reaches(t, "user")
}

// Explicit paths are the caller's choice and are not checked: a broker
// whose directory has since become another uid's, world-writable, is
// dialled by WithSocket and $POSTBOX_SOCKET, but not as the default.
func TestDialDoesNotCheckExplicitPaths(t *testing.T) {
	needRoot(t)
	user, _ := defaultEnv(t)
	serveAt(t, user, 0o700, "user")
	dir := filepath.Dir(user)
	if err := os.Chown(dir, otherUID, otherUID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := postbox.Dial(ctxT(t)); !errors.Is(err, postbox.ErrUnsafeSocket) {
		t.Fatalf("Dial of the default path: %v; want ErrUnsafeSocket", err)
	}
	// An explicit path other than the default is not checked.
	alias := filepath.Join(t.TempDir(), "alias")
	if err := os.Symlink(dir, alias); err != nil {
		t.Fatal(err)
	}
	reaches(t, "user", postbox.WithSocket(filepath.Join(alias, "postbox.sock")))
	t.Setenv(postbox.SocketEnv, user)
	reaches(t, "user")
	reaches(t, "user", postbox.WithSocket(user))
}

func TestDialFallsBackToSystemSocket(t *testing.T) {
	user, system := defaultEnv(t)
	serveAt(t, system, 0o755, "system")
	// No per-user directory.
	reaches(t, "system")
	reaches(t, "system", postbox.WithSocket(postbox.DefaultSocketPath()))
	// A per-user directory with no socket.
	if err := os.Mkdir(filepath.Dir(user), 0o700); err != nil {
		t.Fatal(err)
	}
	reaches(t, "system")
	// A stale per-user socket: nobody listens.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: user, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	reaches(t, "system")
}

func TestDialWithNoBrokerNamesEveryPath(t *testing.T) {
	user, system := defaultEnv(t)
	_, err := postbox.Dial(ctxT(t))
	if err == nil || errors.Is(err, postbox.ErrUnsafeSocket) || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Dial with no broker: %v; want ENOENT", err)
	}
	for _, p := range []string{user, system, "postbox serve"} {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("Dial with no broker: %q does not mention %s", err, p)
		}
	}
}

func TestDefaultSocketPaths(t *testing.T) {
	user, system := defaultEnv(t)
	if got := postbox.DefaultSocketPaths(); !slices.Equal(got, []string{user, system}) {
		t.Errorf("DefaultSocketPaths() = %q, want %q", got, []string{user, system})
	}
	if got := postbox.DefaultSocketPath(); got != user {
		t.Errorf("DefaultSocketPath() = %q, want %q", got, user)
	}
	t.Setenv(postbox.SystemSocketEnv, "")
	if got := postbox.SystemSocketPath(); got != "/run/postbox/postbox.sock" {
		t.Errorf("SystemSocketPath() = %q, want /run/postbox/postbox.sock", got)
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	tmpUser := filepath.Join(os.TempDir(), "postbox-"+strconv.Itoa(os.Getuid()), "postbox.sock")
	if got := postbox.DefaultSocketPaths(); !slices.Equal(got, []string{tmpUser, postbox.SystemSocket}) {
		t.Errorf("without $XDG_RUNTIME_DIR: DefaultSocketPaths() = %q, want %q", got, []string{tmpUser, postbox.SystemSocket})
	}
	t.Setenv(postbox.SocketEnv, "/somewhere/else.sock")
	if got := postbox.DefaultSocketPaths(); !slices.Equal(got, []string{"/somewhere/else.sock"}) {
		t.Errorf("with $POSTBOX_SOCKET: DefaultSocketPaths() = %q, want only it", got)
	}
	if got, mode := postbox.ServeSocketPath(); got != "/somewhere/else.sock" || mode != 0o700 {
		t.Errorf("with $POSTBOX_SOCKET: ServeSocketPath() = %q, %v", got, mode)
	}
	t.Setenv(postbox.SocketEnv, "")
	want, wantMode := tmpUser, os.FileMode(0o700)
	if os.Geteuid() == 0 {
		want, wantMode = postbox.SystemSocket, 0o755
	}
	if got, mode := postbox.ServeSocketPath(); got != want || mode != wantMode {
		t.Errorf("ServeSocketPath() = %q, %v; want %q, %v", got, mode, want, wantMode)
	}
}
