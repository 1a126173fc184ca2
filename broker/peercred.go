package broker

import (
	"net"

	"golang.org/x/sys/unix"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// credentials says who is at the other end of nc: for a Unix socket the
// kernel's peer credentials (PrincipalUnix), else nobody known
// (PrincipalNone). pidfd is -1 when there is none.
func (b *Broker) credentials(nc net.Conn) (id mailbox.Identity, pidfd int, err error) {
	if uc, ok := nc.(*net.UnixConn); ok {
		return peerCredentials(uc)
	}
	return mailbox.Identity{Kind: wire.PrincipalNone}, -1, nil
}

// peerCredentials reads the kernel's view of who is at the other end of a
// Unix socket: SO_PEERCRED (uid, gid, pid at connect time) and, where the
// kernel has it (Linux 6.5+), SO_PEERPIDFD: a pidfd for that exact
// process, which stays valid (and keeps naming the same process) even if
// the pid is recycled. pidfd is -1 when unavailable.
func peerCredentials(uc *net.UnixConn) (id mailbox.Identity, pidfd int, err error) {
	id.Kind = wire.PrincipalUnix
	raw, err := uc.SyscallConn()
	if err != nil {
		return id, -1, err
	}
	pidfd = -1
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
	return id, pidfd, err
}
