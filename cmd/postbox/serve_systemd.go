package main

// postbox serve under systemd: socket activation and readiness.
//
// Socket activation: when LISTEN_PID is this process's pid, the
// LISTEN_FDS descriptors from 3 on are listening sockets systemd made (a
// .socket unit's ListenStream= lines), named by LISTEN_FDNAMES (the
// unit's FileDescriptorName=, else the unit's name). serve uses them
// instead of making its own:
//
//   - every Unix stream socket, whatever its name, is a broker socket:
//     --socket (and the default path) is then not used, nor --socket-mode
//     (the file's mode is the unit's SocketMode=); the file is systemd's,
//     so serve does not remove it on exit;
//   - a TCP socket named "tls" serves TLS with --tls-cert, --tls-key and
//     --tls-client-ca (or their config keys), as a --listen tls:// one;
//   - a TCP socket named "tcp" serves plain TCP, as --listen tcp://: only
//     with --insecure and on a loopback address;
//   - anything else (another name for a TCP socket, a datagram socket, a
//     socket not listening, as Accept=yes passes) is refused: serve exits
//     1 with an error matching errActivation that names the descriptor.
//
// --listen URLs are opened besides the passed sockets; without a passed
// Unix socket serve makes its own as usual. LISTEN_PID, LISTEN_FDS and
// LISTEN_FDNAMES are unset at once, whether or not they were for this
// process, so nothing serve starts inherits them, and the descriptors are
// made close-on-exec.
//
// Notification (sd_notify, to the datagram socket in NOTIFY_SOCKET; none
// of it happens when that is unset): READY=1 with a STATUS= line once
// every listener is served (after the durable mailboxes were recovered,
// which broker.Open does); STATUS= again when the counts change (looked
// at every statusEvery); on SIGHUP RELOADING=1 then READY=1; STOPPING=1
// when shutdown starts. With WATCHDOG_USEC (for this pid, when
// WATCHDOG_PID is set) WATCHDOG=1 every half of it, each after the broker
// answered Status, which takes its main lock: a broker stuck holding that
// lock stops pinging and systemd restarts it. WATCHDOG_USEC and
// WATCHDOG_PID are unset at start, NOTIFY_SOCKET once STOPPING=1 is sent.
//
// The protocol is spoken by github.com/coreos/go-systemd/v22 (packages
// activation and daemon).

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"syscall"

	"github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"

	"github.com/postbox-ipc/postbox/broker"
)

// errActivation is the error (wrapped, naming the descriptor) for a
// passed descriptor serve cannot use.
var errActivation = errors.New("socket activation")

// activated is what systemd passed, ready to serve.
type activated struct {
	unix   []net.Listener // broker sockets
	remote []net.Listener // tls and tcp sockets, TLS already wrapped
	labels []string       // remote's, for the log: tls://ADDR
}

// takeActivated takes the sockets systemd passed (none: an empty
// activated). n gives the TLS files and --insecure.
func takeActivated(n *netListen) (*activated, error) {
	files := activation.Files(true)
	a := &activated{}
	var tcfg *tls.Config
	for i, f := range files {
		fd, name := 3+i, f.Name()
		l, err := activatedListener(f)
		f.Close() // FileListener made its own descriptor
		if err != nil {
			for _, g := range files[i+1:] {
				g.Close()
			}
			a.close()
			return nil, fmt.Errorf("%w: descriptor %d (%s): %v", errActivation, fd, name, err)
		}
		refuse := func(format string, args ...any) (*activated, error) {
			l.Close()
			for _, g := range files[i+1:] {
				g.Close()
			}
			a.close()
			return nil, fmt.Errorf("%w: descriptor %d (%s, %s): %s", errActivation, fd, name, l.Addr(), fmt.Sprintf(format, args...))
		}
		switch l.Addr().(type) {
		case *net.UnixAddr:
			if name == "tls" || name == "tcp" {
				return refuse("a Unix socket cannot be named %q: that name is for a TCP socket", name)
			}
			a.unix = append(a.unix, l)
			continue
		case *net.TCPAddr:
		default:
			return refuse("want a Unix or TCP stream socket")
		}
		var rl net.Listener
		switch name {
		case "tls":
			if tcfg == nil {
				if tcfg, err = broker.ServerTLSConfig(n.cert, n.key, n.clientCA); err != nil {
					return refuse("%v", err)
				}
			}
			rl, err = broker.TLSListener(l, tcfg)
		case "tcp":
			if !n.insecure {
				return refuse("plain TCP has no authentication (every peer is anonymous); name it tls, or add --insecure for a loopback address")
			}
			rl, err = broker.TCPListener(l)
		default:
			return refuse("a TCP socket must be named tls or tcp (FileDescriptorName= in the .socket unit)")
		}
		if err != nil {
			return refuse("%v", err)
		}
		a.remote = append(a.remote, rl)
		a.labels = append(a.labels, name+"://"+l.Addr().String())
	}
	return a, nil
}

// activatedListener makes f a listener, refusing a socket that is not a
// listening stream socket.
func activatedListener(f *os.File) (net.Listener, error) {
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("not a stream socket: %v", err)
	}
	sc, ok := l.(syscall.Conn)
	if !ok {
		l.Close()
		return nil, errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		l.Close()
		return nil, err
	}
	var accepting int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		accepting, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	}); err != nil || serr != nil {
		l.Close()
		return nil, errors.Join(err, serr)
	}
	if accepting == 0 {
		l.Close()
		return nil, errors.New("the socket is not listening (Accept=yes is not supported: use Accept=no)")
	}
	if ul, ok := l.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false) // systemd's file
	}
	return l, nil
}

// close closes every listener not yet served.
func (a *activated) close() {
	for _, l := range append(a.unix, a.remote...) {
		l.Close()
	}
}

// more logs the passed sockets and returns those serve's own code does
// not serve as its main socket: Unix sockets past the first, and the tls
// and tcp ones. It logs when the first replaces --socket.
func (a *activated) more(log *slog.Logger) []net.Listener {
	if len(a.unix) == 0 && len(a.remote) == 0 {
		return nil
	}
	for _, l := range a.unix {
		log.Info("postbox broker listening", "socket", l.Addr().String(), "from", "systemd")
	}
	for _, s := range a.labels {
		log.Info("postbox broker listening", "listen", s, "from", "systemd")
	}
	var more []net.Listener
	if len(a.unix) > 1 {
		more = append(more, a.unix[1:]...)
	}
	return append(more, a.remote...)
}
