package broker

import (
	"os"

	"golang.org/x/sys/unix"
)

// watchPeer ends the connection when the process that opened it exits,
// even if the socket lives on in a child that inherited it: every message
// is stamped with the opener's pid, and once that process is gone its pid
// may be recycled, so nothing more may be sent under it. The pidfd
// (SO_PEERPIDFD) becomes readable when the process exits; the wait parks
// in Go's network poller, costing no thread. Without a pidfd (kernels
// before 6.5) the socket's hang-up is the only signal.
func (c *conn) watchPeer(f *os.File) {
	defer c.b.wg.Done()
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	exited := false
	err = rc.Read(func(fd uintptr) bool {
		// Called once at first, then each time the poller says the pidfd
		// is readable; poll confirms so a spurious wake-up is ignored.
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ := unix.Poll(pfd, 0)
		exited = n > 0
		return exited
	})
	if exited {
		c.b.log.Info("connection's process exited; closing the connection it left behind", "endpoint", c.id, "pid", c.ident.PID)
		c.nc.Close()
	}
}

// pidFile wraps a pidfd so that waiting on it parks in the poller, and so
// that closing it (in cleanup) ends the wait.
func pidFile(fd int) *os.File {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil
	}
	return os.NewFile(uintptr(fd), "pidfd")
}
