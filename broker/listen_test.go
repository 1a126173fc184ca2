package broker_test

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/broker"
)

const otherUID = 65534

// stickyTmp makes a fresh directory like /tmp (root's, mode 1777, so that
// another uid can plant things in it), removed when t ends.
func stickyTmp(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: another uid (65534) plants the socket directory")
	}
	dir, err := os.MkdirTemp("", "postbox-listen-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// asOther runs a command as uid/gid 65534: the other user planting things.
func asOther(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: otherUID, Gid: otherUID, Groups: []uint32{}}}
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %q as uid %d: %v\n%s", name, args, otherUID, err, out)
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

// refused checks that Listen(sock) fails with ErrUnsafeSocket, naming
// the path and saying why, and creates nothing.
func refused(t *testing.T, sock, why string, check ...string) {
	t.Helper()
	l, err := broker.Listen(sock, 0o666)
	if err == nil {
		l.Close()
		t.Fatalf("Listen(%s) succeeded; want it refused: %s", sock, why)
	}
	if !errors.Is(err, broker.ErrUnsafeSocket) {
		t.Fatalf("Listen(%s): %v; want ErrUnsafeSocket (%s)", sock, err, why)
	}
	if !strings.Contains(err.Error(), filepath.Dir(sock)) || !strings.Contains(err.Error(), why) {
		t.Errorf("Listen(%s): error %q does not name the directory and say %q", sock, err, why)
	}
	for _, p := range append(check, sock) {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("refused Listen left %s behind (%v)", p, err)
		}
	}
}

func TestListenRefusesDirectoryPlantedByAnotherUser(t *testing.T) {
	tmp := stickyTmp(t)
	dir := filepath.Join(tmp, "postbox-0")
	asOther(t, "mkdir", "-m", "0777", dir)
	refused(t, filepath.Join(dir, "postbox.sock"), "owned by uid 65534")

	// Not writable by anyone else, but still theirs.
	dir2 := filepath.Join(tmp, "postbox-1")
	asOther(t, "mkdir", "-m", "0755", dir2)
	refused(t, filepath.Join(dir2, "postbox.sock"), "owned by uid 65534")
}

func TestListenRefusesSymlinkToAnotherUsersDirectory(t *testing.T) {
	tmp := stickyTmp(t)
	theirs := filepath.Join(tmp, "theirs")
	asOther(t, "mkdir", "-m", "0777", theirs)
	link := filepath.Join(tmp, "postbox-0")
	asOther(t, "ln", "-s", theirs, link)
	refused(t, filepath.Join(link, "postbox.sock"), "symlink", filepath.Join(theirs, "postbox.sock"))

	// A symlink to a directory of ours is refused too: whoever made the
	// link can repoint it.
	ours := t.TempDir()
	link2 := filepath.Join(tmp, "postbox-1")
	asOther(t, "ln", "-s", ours, link2)
	refused(t, filepath.Join(link2, "postbox.sock"), "symlink", filepath.Join(ours, "postbox.sock"))
}

func TestListenRefusesGroupOrOtherWritableDirectory(t *testing.T) {
	for _, m := range []os.FileMode{0o770, 0o707, 0o777, 0o1777, 0o1733} {
		dir := filepath.Join(t.TempDir(), "sock")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Chmod(dir, uint32(m)); err != nil { // raw bits: 01000 is the sticky bit
			t.Fatal(err)
		}
		refused(t, filepath.Join(dir, "postbox.sock"), "writable by group or others")
	}
}

// withUmask runs f under umask u (tests in this package do not run in
// parallel, so nothing else creates files meanwhile).
func withUmask(u int, f func()) {
	old := syscall.Umask(u)
	defer syscall.Umask(old)
	f()
}

func TestListenCreatesDirectoryAndSocketWithExactModes(t *testing.T) {
	for _, c := range []struct {
		umask           int
		sock, dir, want os.FileMode
	}{
		{0o777, 0o666, 0o700, 0o666}, // hostile: would make both unusable
		{0o077, 0o666, 0o755, 0o666}, // system-wide broker under a private umask
		{0o000, 0o600, 0o700, 0o600}, // hostile: would make the socket 0777
		{0o022, 0o660, 0o750, 0o660},
	} {
		base := t.TempDir()
		dir := filepath.Join(base, "a", "postbox")
		sock := filepath.Join(dir, "postbox.sock")
		var l *net.UnixListener
		var err error
		withUmask(c.umask, func() { l, err = broker.ListenDir(sock, c.sock, c.dir) })
		if err != nil {
			t.Fatalf("umask %03o: ListenDir(%s, %04o, %04o): %v", c.umask, sock, c.sock, c.dir, err)
		}
		if m := mode(t, dir); m != os.ModeDir|c.dir {
			t.Errorf("umask %03o: directory mode %v, want %v", c.umask, m, os.ModeDir|c.dir)
		}
		if m := mode(t, filepath.Dir(dir)); m != os.ModeDir|0o755 {
			t.Errorf("umask %03o: parent directory mode %v, want drwxr-xr-x", c.umask, m)
		}
		if m := mode(t, sock); m != os.ModeSocket|c.want {
			t.Errorf("umask %03o: socket mode %v, want %v", c.umask, m, os.ModeSocket|c.want)
		}
		l.Close()
		if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket %s left behind after Close (%v)", sock, err)
		}
	}
	// Listen creates the directory 0700.
	sock := filepath.Join(t.TempDir(), "fresh", "postbox.sock")
	var l *net.UnixListener
	var err error
	withUmask(0, func() { l, err = broker.Listen(sock, 0o666) })
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if m := mode(t, filepath.Dir(sock)); m != os.ModeDir|0o700 {
		t.Errorf("Listen created the directory with mode %v, want drwx------", m)
	}
}

func TestListenLeavesAnExistingDirectoryAlone(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o751); err != nil {
		t.Fatal(err)
	}
	l, err := broker.Listen(filepath.Join(dir, "postbox.sock"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if m := mode(t, dir); m != os.ModeDir|0o751 {
		t.Errorf("existing directory's mode became %v, want drwxr-x--x", m)
	}
}

func TestListenRefusesDirectoryModeWritableByOthers(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d", "postbox.sock")
	if l, err := broker.ListenDir(sock, 0o666, 0o777); err == nil {
		l.Close()
		t.Fatal("ListenDir with directory mode 0777 succeeded")
	}
	if _, err := os.Lstat(filepath.Dir(sock)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused ListenDir created %s", filepath.Dir(sock))
	}
}

func TestListenReplacesOnlyOurStaleSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "postbox.sock")

	// Ours and stale (nobody listens): replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	l, err := broker.Listen(sock, 0o600)
	if err != nil {
		t.Fatalf("Listen over our stale socket: %v", err)
	}

	// A live broker: refused, and still listening.
	if l2, err := broker.Listen(sock, 0o600); err == nil {
		l2.Close()
		t.Fatal("second Listen on a live socket succeeded")
	} else if !strings.Contains(err.Error(), "already listening") {
		t.Errorf("second Listen: %v, want it to say a broker is already listening", err)
	}
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	if c, err := net.DialTimeout("unix", sock, time.Second); err != nil {
		t.Errorf("first listener no longer reachable: %v", err)
	} else {
		c.Close()
	}
	l.Close()

	// Another user's socket (even a stale one): refused, not removed.
	stale, err = net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if os.Geteuid() == 0 {
		if err := os.Lchown(sock, otherUID, otherUID); err != nil {
			t.Fatal(err)
		}
		if l, err := broker.Listen(sock, 0o600); err == nil {
			l.Close()
			t.Fatal("Listen replaced a socket owned by uid 65534")
		} else if !errors.Is(err, broker.ErrUnsafeSocket) || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("Listen over uid 65534's socket: %v, want ErrUnsafeSocket saying who owns it", err)
		}
		if _, err := os.Lstat(sock); err != nil {
			t.Errorf("the other user's socket was removed: %v", err)
		}
	}
	os.Remove(sock)

	// A symlink or a regular file at the socket path: refused, the
	// target untouched.
	target := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, plant := range []func() error{
		func() error { return os.Symlink(target, sock) },
		func() error { return os.WriteFile(sock, nil, 0o600) },
	} {
		if err := plant(); err != nil {
			t.Fatal(err)
		}
		if l, err := broker.Listen(sock, 0o666); err == nil {
			l.Close()
			t.Fatal("Listen replaced a file that is not a socket")
		} else if !errors.Is(err, broker.ErrUnsafeSocket) || !strings.Contains(err.Error(), "not a socket") {
			t.Errorf("Listen over a non-socket: %v, want ErrUnsafeSocket saying it is not a socket", err)
		}
		if b, err := os.ReadFile(target); err != nil || string(b) != "keep" || mode(t, target) != 0o644 {
			t.Errorf("symlink target changed: %q %v", b, err)
		}
		os.Remove(sock)
	}
}
