package postbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SocketEnv names the environment variable that overrides the socket path.
const SocketEnv = "POSTBOX_SOCKET"

// SystemSocketEnv names the environment variable that moves the
// system-wide broker's socket away from SystemSocket (for tests, and for
// machines that keep it elsewhere).
const SystemSocketEnv = "POSTBOX_SYSTEM_SOCKET"

// SystemSocket is where the system-wide broker listens: the one `postbox
// serve` runs when started as root. Its directory is root's, mode 0755,
// and the socket 0666: every user may connect, and who may do what is
// decided per mailbox from each peer's kernel credentials.
const SystemSocket = "/run/postbox/postbox.sock"

// ErrUnsafeSocket is returned by Dial when a default socket path is not
// safe to connect to: its directory is a symlink, is owned by a user
// other than the caller and root, or is writable by group or others, or
// the socket itself is not a socket owned by the caller or root. Another
// user could then have planted the socket to receive the caller's
// traffic. The error names the path and the reason.
var ErrUnsafeSocket = errors.New("postbox: unsafe socket")

// unsafeSocketError says which path is unsafe and why; it matches
// ErrUnsafeSocket.
type unsafeSocketError struct{ path, reason string }

func (e *unsafeSocketError) Error() string {
	return "postbox: unsafe socket " + e.path + ": " + e.reason
}

func (e *unsafeSocketError) Is(target error) bool { return target == ErrUnsafeSocket }

// DefaultSocketPath returns where clients look for the broker first, and
// where a broker run by a user other than root listens, unless told
// otherwise: $POSTBOX_SOCKET, else $XDG_RUNTIME_DIR/postbox/postbox.sock,
// else /tmp/postbox-<uid>/postbox.sock. It is the first of
// DefaultSocketPaths.
func DefaultSocketPath() string { return DefaultSocketPaths()[0] }

// DefaultSocketPaths returns, in order, where Dial looks for the broker
// when not given a path: $POSTBOX_SOCKET alone if it is set; else the
// per-user socket ($XDG_RUNTIME_DIR/postbox/postbox.sock, else
// /tmp/postbox-<uid>/postbox.sock), then the system-wide one
// (SystemSocketPath).
func DefaultSocketPaths() []string {
	if p := os.Getenv(SocketEnv); p != "" {
		return []string{p}
	}
	user, system := userSocketPath(), SystemSocketPath()
	if user == system {
		return []string{user}
	}
	return []string{user, system}
}

// SystemSocketPath returns where the system-wide broker listens:
// $POSTBOX_SYSTEM_SOCKET, else SystemSocket.
func SystemSocketPath() string {
	if p := os.Getenv(SystemSocketEnv); p != "" {
		return p
	}
	return SystemSocket
}

// ServeSocketPath returns where `postbox serve` listens when not given a
// path, and the mode of the directory it creates there if missing:
// $POSTBOX_SOCKET (0700); else, run as root, the system-wide socket
// (SystemSocketPath, 0755, so that every user can reach it); else the
// per-user socket (0700: only the user can reach it).
func ServeSocketPath() (path string, dirMode os.FileMode) {
	if p := os.Getenv(SocketEnv); p != "" {
		return p, 0o700
	}
	if os.Geteuid() == 0 {
		return SystemSocketPath(), 0o755
	}
	return userSocketPath(), 0o700
}

func userSocketPath() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "postbox", "postbox.sock")
	}
	return filepath.Join(os.TempDir(), "postbox-"+strconv.Itoa(os.Getuid()), "postbox.sock")
}

// dialSocket connects to the broker at path. A path given explicitly (by
// WithSocket or $POSTBOX_SOCKET) is dialled as it is: the caller chose
// it. The default path (path is DefaultSocketPath() and $POSTBOX_SOCKET
// is unset, however it reached Dial) means DefaultSocketPaths() in
// order, each checked by checkSocket first: one with no socket, or no
// broker listening on it, is passed over for the next; an unsafe one is
// an error matching ErrUnsafeSocket, never dialled and never passed over.
func dialSocket(ctx context.Context, d *net.Dialer, path string) (net.Conn, error) {
	paths := DefaultSocketPaths()
	if os.Getenv(SocketEnv) != "" || path != paths[0] {
		nc, err := d.DialContext(ctx, "unix", path)
		if err != nil {
			return nil, fmt.Errorf("postbox: dial %s: %w (is `postbox serve` running?)", path, err)
		}
		return nc, nil
	}
	var tried []string
	var last error
	for _, p := range paths {
		err := checkSocket(p)
		if err == nil {
			var nc net.Conn
			if nc, err = d.DialContext(ctx, "unix", p); err == nil {
				return nc, nil
			}
		}
		if errors.Is(err, ErrUnsafeSocket) {
			return nil, err
		}
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ECONNREFUSED) || ctx.Err() != nil {
			return nil, fmt.Errorf("postbox: dial %s: %w", p, err)
		}
		tried, last = append(tried, p), err
	}
	return nil, fmt.Errorf("postbox: dial %s: %w (no broker at %s; is `postbox serve` running?)",
		paths[0], last, strings.Join(tried, " nor "))
}

// checkSocket checks a default socket path before it is dialled: its
// directory must be a directory (not a symlink), owned by the caller or
// root, and not writable by group or others (the sticky bit does not make
// it safe: another user could still plant the socket before the broker
// made it); the socket must be a socket (not a symlink) owned by the
// caller or root. Ancestors are not checked: for every default path they
// are root's or the user's, or sticky (/tmp), so nobody else can swap the
// directory. A missing directory or socket returns an error matching
// unix.ENOENT.
func checkSocket(path string) error {
	dir, name := filepath.Split(path)
	dir = filepath.Clean(dir)
	euid := uint32(os.Geteuid())
	trusted := func(uid uint32) bool { return uid == euid || uid == 0 }
	want := fmt.Sprintf("uid %d or root", euid)
	if euid == 0 {
		want = "root"
	}
	unsafe := func(format string, args ...any) error {
		return &unsafeSocketError{path, fmt.Sprintf(format, args...)}
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: dir, Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return unsafe("directory %s is a symlink", dir)
	}
	// Decide on the directory itself: open it without following a
	// symlink swapped in since the Lstat, and look at what was opened.
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return unsafe("%s is not a directory (or is a symlink)", dir)
		}
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: dir, Err: err}
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return unsafe("%s is not a directory", dir)
	case !trusted(st.Uid):
		return unsafe("directory %s is owned by uid %d, not by %s", dir, st.Uid, want)
	case st.Mode&0o022 != 0:
		return unsafe("directory %s (mode %04o) is writable by group or others", dir, st.Mode&0o7777)
	}
	if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFSOCK:
		return unsafe("not a socket (file type %o)", st.Mode&unix.S_IFMT)
	case !trusted(st.Uid):
		return unsafe("socket is owned by uid %d, not by %s", st.Uid, want)
	}
	return nil
}
