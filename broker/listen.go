package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrUnsafeSocket is returned (wrapped, with the path and the reason) by
// Listen when the socket's directory, or a file already at the socket's
// path, is not safe to listen in: another user could replace the socket
// and receive the clients' traffic.
var ErrUnsafeSocket = errors.New("broker: unsafe socket path")

type unsafeSocketError struct{ path, reason string }

func (e *unsafeSocketError) Error() string {
	return "broker: listen " + e.path + ": unsafe socket path: " + e.reason
}

func (e *unsafeSocketError) Is(target error) bool { return target == ErrUnsafeSocket }

// Listen is ListenDir with a 0700 directory: a socket only its user can
// reach, unless the directory already exists with a wider mode.
func Listen(path string, mode os.FileMode) (*net.UnixListener, error) {
	return ListenDir(path, mode, 0o700)
}

// ListenDir creates a Unix socket listener at path whose file has exactly
// mode (e.g. 0666: access is decided per mailbox, from the peer's
// credentials), whatever the process umask. The socket's directory is
// created with exactly dirMode if missing (missing parents exactly 0755); dirMode may
// not be writable by group or others.
//
// The directory must be safe: a directory (not a symlink), owned by the
// broker's effective uid and not writable by group or others (the sticky
// bit does not make it safe). Otherwise ListenDir fails with an error
// matching ErrUnsafeSocket that names the path and says why; it does not
// change an existing directory's mode or owner. The decision is made on
// the directory opened with O_NOFOLLOW, and the socket is bound, checked
// and chmod-ed relative to that open directory, so a symlink or directory
// swapped in meanwhile is detected, never followed.
//
// A file already at path is replaced only if it is a stale socket: a
// socket (not a symlink) owned by the broker's uid that refuses
// connections. A live broker there, or anything else, is an error.
func ListenDir(path string, mode, dirMode os.FileMode) (*net.UnixListener, error) {
	if mode&^os.ModePerm != 0 || dirMode&^os.ModePerm != 0 {
		return nil, fmt.Errorf("broker: listen %s: socket mode %v and directory mode %v must be permission bits only", path, mode, dirMode)
	}
	if dirMode&0o022 != 0 {
		return nil, fmt.Errorf("broker: listen %s: directory mode %04o would be writable by group or others", path, uint32(dirMode))
	}
	path = filepath.Clean(path)
	dir, name := filepath.Split(path)
	dir = filepath.Clean(dir)
	unsafe := func(format string, args ...any) error {
		return &unsafeSocketError{path, fmt.Sprintf(format, args...)}
	}
	created := false
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		if err := mkdirParents(filepath.Dir(dir)); err != nil {
			return nil, fmt.Errorf("broker: listen %s: %w", path, err)
		}
		// The umask may narrow the mode; Fchmod below sets it exactly.
		if err := os.Mkdir(dir, dirMode); err == nil {
			created = true
		} else if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("broker: listen %s: %w", path, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return nil, fmt.Errorf("broker: listen %s: %w", path, &os.PathError{Op: "lstat", Path: dir, Err: err})
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		target, _ := os.Readlink(dir)
		return nil, unsafe("directory %s is a symlink (to %s)", dir, target)
	}
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return nil, unsafe("%s is not a directory (or is a symlink)", dir)
		}
		return nil, fmt.Errorf("broker: listen %s: %w", path, &os.PathError{Op: "open", Path: dir, Err: err})
	}
	defer unix.Close(dfd)
	var dst unix.Stat_t
	if err := unix.Fstat(dfd, &dst); err != nil {
		return nil, fmt.Errorf("broker: listen %s: %w", path, &os.PathError{Op: "fstat", Path: dir, Err: err})
	}
	euid := uint32(os.Geteuid())
	switch {
	case dst.Uid != euid:
		return nil, unsafe("directory %s is owned by uid %d, not by this broker's uid %d", dir, dst.Uid, euid)
	case dst.Mode&0o022 != 0:
		return nil, unsafe("directory %s (mode %04o) is writable by group or others", dir, dst.Mode&0o7777)
	}
	if created {
		if err := unix.Fchmod(dfd, uint32(dirMode)); err != nil {
			return nil, fmt.Errorf("broker: listen %s: chmod %s: %w", path, dir, err)
		}
	}

	// A file already there: replace it only if it is our stale socket.
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		switch {
		case st.Mode&unix.S_IFMT != unix.S_IFSOCK:
			return nil, unsafe("%s exists and is not a socket (file type %o)", path, st.Mode&unix.S_IFMT)
		case st.Uid != euid:
			return nil, unsafe("socket %s is owned by uid %d, not by this broker's uid %d", path, st.Uid, euid)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("broker: listen %s: a broker is already listening there", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("broker: listen %s: cannot tell whether a broker listens there: %w", path, err)
		}
		if err := unix.Unlinkat(dfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("broker: listen %s: removing the stale socket: %w", path, err)
		}
	} else if !errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("broker: listen %s: %w", path, &os.PathError{Op: "lstat", Path: path, Err: err})
	}

	// The socket file's mode is the socket inode's mode less the umask
	// at bind time: Fchmod before bind (after bind it no longer reaches
	// the file) makes it mode or narrower, never wider, without touching
	// the process-wide umask. Fchmodat below then widens it to exactly
	// mode.
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var ferr error
		if err := rc.Control(func(fd uintptr) { ferr = unix.Fchmod(int(fd), uint32(mode)) }); err != nil {
			return err
		}
		return ferr
	}}
	nl, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		return nil, fmt.Errorf("broker: listen %s: %w", path, err)
	}
	l := nl.(*net.UnixListener)
	l.SetUnlinkOnClose(true)
	fail := func(err error) (*net.UnixListener, error) {
		l.Close()
		return nil, err
	}
	// The bind went by path: make sure it landed in the directory we
	// checked, and that what is there is our socket. Only this uid (or
	// root) can write in that directory, so nobody else can swap the
	// socket for a symlink before the chmod.
	var now unix.Stat_t
	if err := unix.Lstat(dir, &now); err != nil || now.Dev != dst.Dev || now.Ino != dst.Ino {
		l.SetUnlinkOnClose(false)
		return fail(unsafe("directory %s was replaced while binding", dir))
	}
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil ||
		st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Uid != euid {
		l.SetUnlinkOnClose(false)
		return fail(unsafe("socket %s was replaced while binding", path))
	}
	if st.Mode&0o777 != uint32(mode) {
		if err := unix.Fchmodat(dfd, name, uint32(mode), 0); err != nil {
			return fail(fmt.Errorf("broker: listen %s: chmod: %w", path, err))
		}
	}
	return l, nil
}

// mkdirParents makes the missing directories of dir mode 0755 exactly,
// whatever the umask (a system-wide broker's clients must be able to
// pass through them). The mode is set on the directory opened with
// O_NOFOLLOW, and only if it is this uid's: a symlink swapped in is
// never chmod-ed.
func mkdirParents(dir string) error {
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		return nil // there (the socket directory's checks follow), or unknowable here
	}
	if err := mkdirParents(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil
		}
		return err
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: dir, Err: err}
	}
	if st.Uid != uint32(os.Geteuid()) {
		return nil
	}
	if err := unix.Fchmod(fd, 0o755); err != nil {
		return &os.PathError{Op: "chmod", Path: dir, Err: err}
	}
	return nil
}
