package broker

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/postbox-ipc/postbox/wire"
)

// Endpoint notices: how a watched endpoint ended (watch.go).
//
// The connection's cleanup runs once, whatever ended it, and calls
// endpointGone first: the endpoint's watches leave the table there, so
// each gets one ENDPOINT_EXITED. The reason:
//
//   - PROCESS_EXITED when the peer's pidfd (SO_PEERPIDFD, pidfd.go) says
//     its process exited. When the process dies its socket usually closes
//     a moment before its pidfd becomes readable, so the broker gives the
//     pidfd up to exitGrace to confirm; when a child that inherited the
//     socket keeps the connection open, the pidfd ends the connection
//     (pidfd.go) and the exit is seen at once. The exit status is known
//     when the kernel reports it (PIDFD_GET_INFO, Linux 6.15 or later,
//     once the process's parent has reaped it): the broker waits up to
//     statusGrace for it, else the notice says the status is unknown.
//   - DISCONNECTED when the connection ended and the pidfd did not
//     confirm an exit within exitGrace (or there is no pidfd: a TCP or
//     TLS peer, an older kernel).
//   - BROKER_SHUTDOWN for the watches Shutdown ends (notices.shutdown).
//
// The waiting happens on a goroutine of its own (counted in Broker.wg,
// ended early by Shutdown or Close), with a duplicate of the pidfd, so
// the connection's cleanup never waits; it starts only if the endpoint
// is watched.

const (
	exitGrace   = 200 * time.Millisecond
	statusGrace = 500 * time.Millisecond
)

// endpointGone is called once by c's cleanup, before its inbox goes.
func (b *Broker) endpointGone(c *conn) {
	n := &b.notices
	n.connGone(c)
	n.mu.Lock()
	list := append([]*watch(nil), n.endpoints[c.id]...)
	for _, w := range list {
		n.removeLocked(w)
	}
	n.mu.Unlock()
	if len(list) == 0 {
		return
	}
	m := wire.Notice{Kind: wire.NoticeEndpointExited, Reason: wire.ExitDisconnected,
		Endpoint: c.id, PID: c.ident.PID, UID: c.ident.UID}
	pidfd := -1
	if c.pidf != nil {
		// Not c.pidf.Fd(): that would make the pidfd blocking under
		// watchPeer's poller wait.
		if rc, err := c.pidf.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) {
				if d, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0); err == nil {
					pidfd = d
				}
			})
		}
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if pidfd >= 0 {
			b.learnExit(pidfd, &m)
			unix.Close(pidfd)
		}
		select {
		case <-b.done:
			if m.Reason != wire.ExitProcessExited {
				m.Reason = wire.ExitBrokerShutdown
			}
		default:
		}
		m.UnixNano = time.Now().UnixNano()
		for _, w := range list {
			nm := m
			nm.Target = []byte(w.target)
			w.push(&nm)
			w.end(wire.OK, "")
		}
	}()
}

// learnExit waits (within the graces, or until the broker stops) for
// the pidfd to say its process exited, and for its exit status, and
// fills m's reason and status.
func (b *Broker) learnExit(pidfd int, m *wire.Notice) {
	deadline := time.Now().Add(exitGrace)
	for {
		pfd := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		if n, _ := unix.Poll(pfd, 0); n > 0 {
			break
		}
		if time.Now().After(deadline) || b.stopping(5*time.Millisecond) {
			return // still running as far as the broker can tell: DISCONNECTED
		}
	}
	m.Reason = wire.ExitProcessExited
	deadline = time.Now().Add(statusGrace)
	for {
		if status, ok := pidfdExitStatus(pidfd); ok {
			m.Flags |= wire.NoticeStatusKnown
			m.Status = status
			return
		}
		if time.Now().After(deadline) || b.stopping(10*time.Millisecond) {
			return
		}
	}
}

// stopping waits d and reports whether the broker is shutting down.
func (b *Broker) stopping(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-b.done:
		return true
	case <-t.C:
		return false
	}
}

// pidfdInfo is the kernel's struct pidfd_info, its first version (64
// bytes).
type pidfdInfo struct {
	Mask                                                              uint64
	CgroupID                                                          uint64
	PID, TGID, PPID, RUID, RGID, EUID, EGID, SUID, SGID, FSUID, FSGID uint32
	ExitCode                                                          int32
}

const (
	pidfdGetInfo  = 0xC040FF0B // _IOWR(PIDFS_IOCTL_MAGIC 0xFF, 11, struct pidfd_info)
	pidfdInfoExit = 1 << 3     // PIDFD_INFO_EXIT
)

// pidfdExitStatus returns the wait status of the exited process behind
// pidfd, if the kernel knows it (PIDFD_INFO_EXIT: Linux 6.15 or later,
// once the process is reaped).
func pidfdExitStatus(pidfd int) (int32, bool) {
	info := pidfdInfo{Mask: pidfdInfoExit}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(pidfd), pidfdGetInfo, uintptr(unsafe.Pointer(&info)))
	if errno != 0 || info.Mask&pidfdInfoExit == 0 {
		return 0, false
	}
	return info.ExitCode, true
}
