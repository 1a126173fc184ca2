package shm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Segment is a fresh channel made by a third party, typically a broker,
// for two clients: the segment memfd and the two ends of a control socket
// pair. Hand each client Files(side) over SCM_RIGHTS (SendFDs); each calls
// Attach with them and its side. Then Close the Segment: the broker must
// not keep the control socket ends open, or a client's death would go
// unnoticed by the other.
type Segment struct {
	mem *os.File
	ctl [2]*os.File
}

// Create makes a new segment (a memfd; nothing is created in /dev/shm or
// anywhere else in the file system) and its control socket pair.
func Create(cfg Config) (*Segment, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	mem, err := newSegmentFile(cfg)
	if err != nil {
		return nil, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		mem.Close()
		return nil, fmt.Errorf("shm: socketpair: %w", err)
	}
	return &Segment{mem: mem, ctl: [2]*os.File{
		os.NewFile(uintptr(fds[0]), "postbox-shm-ctl-a"),
		os.NewFile(uintptr(fds[1]), "postbox-shm-ctl-b"),
	}}, nil
}

// Files returns the segment memfd and the control socket end for side.
// They stay owned by the Segment.
func (s *Segment) Files(side Side) (mem, ctl *os.File) {
	return s.mem, s.ctl[side&1]
}

// Close closes the Segment's descriptors. Attached channels are not
// affected.
func (s *Segment) Close() error {
	return errors.Join(s.mem.Close(), s.ctl[0].Close(), s.ctl[1].Close())
}

// NewPair makes a channel for a parent and the child it is about to start.
// It returns the parent's end (side A) and the files the child inherits:
// put them in exec.Cmd.ExtraFiles, in order, and close them after Start.
// The child then calls FromInherited with their descriptor numbers (3 and
// 4 if they are the only ExtraFiles).
func NewPair(cfg Config) (*Chan, []*os.File, error) {
	seg, err := Create(cfg)
	if err != nil {
		return nil, nil, err
	}
	c, err := Attach(seg.mem, seg.ctl[SideA], SideA, cfg)
	seg.ctl[SideA].Close()
	if err != nil {
		seg.mem.Close()
		seg.ctl[SideB].Close()
		return nil, nil, err
	}
	return c, []*os.File{seg.mem, seg.ctl[SideB]}, nil
}

// FromInherited attaches a child to the channel its parent made with
// NewPair, given the inherited descriptor numbers of the two files. It
// takes ownership of (and closes) both descriptors.
func FromInherited(memFD, ctlFD uintptr, cfg Config) (*Chan, error) {
	mem := os.NewFile(memFD, "postbox-shm")
	ctl := os.NewFile(ctlFD, "postbox-shm-ctl")
	if mem == nil || ctl == nil {
		return nil, fmt.Errorf("shm: bad inherited descriptors %d, %d", memFD, ctlFD)
	}
	defer mem.Close()
	defer ctl.Close()
	unix.CloseOnExec(int(memFD))
	unix.CloseOnExec(int(ctlFD))
	return Attach(mem, ctl, SideB, cfg)
}

// Listener accepts channels from unrelated processes on a Unix socket
// (SOCK_SEQPACKET). Each accepted connection becomes the control socket
// of a fresh segment whose memfd is passed to the dialer with SCM_RIGHTS.
// The socket file is removed by Close. Accept and Close are safe to call
// concurrently.
type Listener struct {
	l   *net.UnixListener
	cfg Config
}

// Listen listens on the Unix socket path. Config.AllowedUIDs (or its
// default, this process's uid) restricts who may connect.
func Listen(path string, cfg Config) (*Listener, error) {
	if _, err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("shm: listen %s: %w", path, err)
	}
	return &Listener{l: l, cfg: cfg}, nil
}

// Addr is the listening address.
func (l *Listener) Addr() net.Addr { return l.l.Addr() }

// Close stops listening. Channels already accepted are not affected.
func (l *Listener) Close() error { return l.l.Close() }

// Accept waits for a dialer and returns the listener's end (side A) of a
// new channel. A dialer whose uid is not allowed is refused with an error
// wrapping ErrPeerNotAllowed; the listener remains usable. After Close it
// returns an error wrapping net.ErrClosed.
func (l *Listener) Accept() (*Chan, error) {
	conn, err := l.l.AcceptUnix()
	if err != nil {
		return nil, fmt.Errorf("shm: accept: %w", err)
	}
	c, err := l.handshake(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (l *Listener) handshake(conn *net.UnixConn) (*Chan, error) {
	if err := checkPeer(conn, l.cfg); err != nil {
		return nil, err
	}
	cfg, _ := l.cfg.withDefaults()
	mem, err := newSegmentFile(cfg)
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	var frame [frameSize]byte
	putFrame(frame[:], frameHello, layoutVersion)
	if err := SendFDs(conn, frame[:], mem); err != nil {
		return nil, fmt.Errorf("shm: hello: %w", err)
	}
	return attach(mem, conn, SideA, l.cfg)
}

// Dial connects to a Listener at path and returns the dialer's end (side
// B). The listener's uid is checked against Config.AllowedUIDs too.
func Dial(ctx context.Context, path string, cfg Config) (*Chan, error) {
	if _, err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unixpacket", path)
	if err != nil {
		return nil, fmt.Errorf("shm: dial %s: %w", path, err)
	}
	conn := nc.(*net.UnixConn)
	c, err := dialHandshake(ctx, conn, cfg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("shm: dial %s: %w", path, err)
	}
	return c, nil
}

func dialHandshake(ctx context.Context, conn *net.UnixConn, cfg Config) (*Chan, error) {
	if err := checkPeer(conn, cfg); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	var frame [frameSize]byte
	n, files, err := ReceiveFDs(conn, frame[:], 1)
	if !stop() && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		closeFiles(files)
		return nil, fmt.Errorf("hello: %w", err)
	}
	if n != frameSize || len(files) != 1 || binary.LittleEndian.Uint32(frame[:]) != ctlMagic ||
		binary.LittleEndian.Uint32(frame[4:]) != frameHello || binary.LittleEndian.Uint64(frame[8:]) != layoutVersion {
		closeFiles(files)
		return nil, fmt.Errorf("%w: bad hello", ErrBadSegment)
	}
	conn.SetReadDeadline(time.Time{})
	defer files[0].Close()
	return attach(files[0], conn, SideB, cfg)
}

// checkPeer applies cfg's uid rule to the process at the other end of
// conn, as the kernel recorded it when the connection was made.
func checkPeer(conn *net.UnixConn, cfg Config) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("shm: SO_PEERCRED: %w", cerr)
	}
	if !cfg.uidAllowed(int(cred.Uid)) {
		return fmt.Errorf("%w: uid %d (pid %d)", ErrPeerNotAllowed, cred.Uid, cred.Pid)
	}
	return nil
}

// SendFDs writes msg on conn with files attached (SCM_RIGHTS). The
// receiver gets duplicates; the caller still owns files.
func SendFDs(conn *net.UnixConn, msg []byte, files ...*os.File) error {
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	_, _, err := conn.WriteMsgUnix(msg, unix.UnixRights(fds...), nil)
	return err
}

// ReceiveFDs reads one message into msg and up to maxFiles descriptors
// sent with it (SCM_RIGHTS), returning the message length and the files,
// which the caller owns. Descriptors beyond maxFiles are closed.
func ReceiveFDs(conn *net.UnixConn, msg []byte, maxFiles int) (int, []*os.File, error) {
	oob := make([]byte, unix.CmsgSpace(4*max(maxFiles, 1)))
	n, oobn, _, _, err := conn.ReadMsgUnix(msg, oob)
	fds := parseRights(oob[:oobn])
	var files []*os.File
	for i, fd := range fds {
		if i >= maxFiles {
			unix.Close(fd)
			continue
		}
		unix.CloseOnExec(fd)
		files = append(files, os.NewFile(uintptr(fd), "postbox-shm-fd"))
	}
	if err == nil && n == 0 && oobn == 0 {
		err = ErrPeerGone
	}
	return n, files, err
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
