package shmbench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/postbox-ipc/postbox/shm"
)

// peerEnv marks a process started by Run as the benchmark peer.
const peerEnv = "POSTBOX_SHMBENCH_PEER"

// The peer inherits, in order: the busy-poll channel's memfd and control
// socket, the default-policy channel's, the read end of the parent-to-peer
// pipe, the write end of the peer-to-parent pipe, and one end of a Unix
// stream socket pair.
const (
	fdBusyMem = 3 + iota
	fdBusyCtl
	fdDefMem
	fdDefCtl
	fdPipeR
	fdPipeW
	fdSock
)

// Commands are 16 bytes: op u32, size u32, count u64. Every command ends
// with a 16-byte reply: the peer's CPU time for it in ns, and a checksum.
const (
	opEcho     = 1 // count round trips of size bytes, copy API
	opEchoLoan = 2 // count round trips, loan API (shm only)
	opSink     = 3 // receive count messages of size, then reply
	opSinkLoan = 4 // receive count messages with ReceiveBatch (shm only)
	opQuit     = 5
	cmdSize    = 16
)

func putCmd(b []byte, op, size uint32, count uint64) {
	binary.LittleEndian.PutUint32(b, op)
	binary.LittleEndian.PutUint32(b[4:], size)
	binary.LittleEndian.PutUint64(b[8:], count)
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// MaybeRunPeer must be called first thing in main() (and in TestMain) of
// any binary that calls Run: if this process was started by Run as its
// peer, it plays the peer and exits; otherwise it returns at once.
func MaybeRunPeer() {
	if os.Getenv(peerEnv) == "" {
		return
	}
	if err := runPeer(); err != nil {
		fmt.Fprintln(os.Stderr, "shmbench peer:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runPeer() error {
	busy, err := shm.FromInherited(fdBusyMem, fdBusyCtl, shm.Config{Wait: shm.BusyPoll})
	if err != nil {
		return err
	}
	defer busy.Close()
	def, err := shm.FromInherited(fdDefMem, fdDefCtl, shm.Config{})
	if err != nil {
		return err
	}
	defer def.Close()
	pr, pw := os.NewFile(fdPipeR, "pipe-r"), os.NewFile(fdPipeW, "pipe-w")
	sf := os.NewFile(fdSock, "sock")
	sock, err := net.FileConn(sf)
	sf.Close()
	if err != nil {
		return err
	}
	errc := make(chan error, 4)
	go func() { errc <- serveShm(busy, true) }()
	go func() { errc <- serveShm(def, false) }()
	go func() { errc <- serveStream(pr, pw) }()
	go func() { errc <- serveStream(sock, sock) }()
	for i := 0; i < 4; i++ {
		if err := <-errc; err != nil {
			return err
		}
	}
	return nil
}

// serveShm runs commands on an shm channel. A busy-poll channel waits for
// commands by polling with sleeps, so that it does not spin (and steal a
// core from other measurements) between them.
func serveShm(c *shm.Chan, sleepy bool) error {
	ctx := context.Background()
	buf := make([]byte, 2<<20)
	var cmd [cmdSize]byte
	for {
		var err error
		if sleepy {
			for {
				_, err = c.TryReceive(cmd[:])
				if !errors.Is(err, shm.ErrEmpty) {
					break
				}
				time.Sleep(200 * time.Microsecond)
			}
		} else {
			_, err = c.Receive(ctx, cmd[:])
		}
		if err != nil {
			return nil // the parent went
		}
		op, size := binary.LittleEndian.Uint32(cmd[:]), int(binary.LittleEndian.Uint32(cmd[4:]))
		count := binary.LittleEndian.Uint64(cmd[8:])
		if op == opQuit {
			return nil
		}
		start := cpuNow()
		for i := uint64(0); i < count && err == nil; i++ {
			switch op {
			case opEcho:
				var n int
				if n, err = c.Receive(ctx, buf); err == nil {
					err = c.Send(ctx, buf[:n])
				}
			case opEchoLoan:
				var l shm.Loan
				if l, err = c.ReceiveLoan(ctx); err != nil {
					break
				}
				var r shm.Reservation
				if r, err = c.Reserve(ctx, len(l.Bytes())); err == nil {
					copy(r.Bytes()[:min(8, size)], l.Bytes())
					l.Release()
					err = r.Commit()
				}
			case opSink:
				_, err = c.Receive(ctx, buf)
			case opSinkLoan:
				var n int
				n, err = c.ReceiveBatch(ctx, int(count-i), func(m []byte) { copy(buf, m) })
				i += uint64(n) - 1
			}
		}
		if err != nil {
			return err
		}
		putCmd(cmd[:], 0, 0, uint64(cpuNow()-start))
		if err := c.Send(ctx, cmd[:]); err != nil {
			return err
		}
	}
}

// serveStream runs commands on a byte stream (pipe or Unix socket).
func serveStream(r io.Reader, w io.Writer) error {
	buf := make([]byte, 2<<20)
	var cmd [cmdSize]byte
	for {
		if _, err := io.ReadFull(r, cmd[:]); err != nil {
			return nil
		}
		op, size := binary.LittleEndian.Uint32(cmd[:]), int(binary.LittleEndian.Uint32(cmd[4:]))
		count := binary.LittleEndian.Uint64(cmd[8:])
		if op == opQuit {
			return nil
		}
		start := cpuNow()
		for i := uint64(0); i < count; i++ {
			if _, err := io.ReadFull(r, buf[:size]); err != nil {
				return err
			}
			if op == opEcho {
				if _, err := w.Write(buf[:size]); err != nil {
					return err
				}
			}
		}
		putCmd(cmd[:], 0, 0, uint64(cpuNow()-start))
		if _, err := w.Write(cmd[:]); err != nil {
			return err
		}
	}
}
