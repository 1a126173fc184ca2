package broker

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerCredentials reads the kernel's view of who is at the other end of a
// Unix socket: SO_PEERCRED (uid, gid, pid at connect time) and, where the
// kernel has it (Linux 6.5+), SO_PEERPIDFD: a pidfd for that exact
// process, which stays valid (and keeps naming the same process) even if
// the pid is recycled. PIDFD is nil when unavailable.
func peerCredentials(uc *net.UnixConn) (id Principal, err error) {
	id.Kind = KindUnix
	raw, err := uc.SyscallConn()
	if err != nil {
		return id, err
	}
	pidfd := -1
	var cerr error
	err = raw.Control(func(fd uintptr) {
		var cred *unix.Ucred
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if cerr != nil {
			return
		}
		id.UID, id.GID, id.PID = cred.Uid, cred.Gid, cred.Pid
		if pfd, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD); err == nil {
			unix.CloseOnExec(pfd)
			pidfd = pfd
		}
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
		return id, err
	}
	if pidfd >= 0 {
		id.PIDFD = pidFile(pidfd)
	}
	return id, nil
}
