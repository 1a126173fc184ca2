// Package shmbench measures shared-memory channels (package shm) against
// a Go pipe and a Go Unix socket, with the peer in a separate process, and
// reports the figures as benchfmt rows. `postbox bench shm` calls Run.
//
// Run re-executes the current binary as the peer, so every binary that
// calls Run must call MaybeRunPeer first thing in main (tests: in
// TestMain).
package shmbench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"time"

	"github.com/postbox-ipc/postbox/internal/benchfmt"
	"github.com/postbox-ipc/postbox/shm"
	"golang.org/x/sys/unix"
)

// Config selects what Run measures. The zero value is the full run.
type Config struct {
	// Quick runs about a hundredth of the iterations, for tests and smoke
	// checks; its figures are noisier.
	Quick bool
	// Sizes are the message sizes; nil means 64 B, 4 KiB, 64 KiB, 1 MiB.
	Sizes []int
}

// Row names. Shared-memory rows name the Unix socket row of the same kind
// and size as their baseline.
const (
	latUnix = "baseline: unix socket latency"
	latPipe = "baseline: pipe latency"
	// The peer-asleep pair: 64 B pings asleepGap apart.
	latUnixAsleep = "baseline: unix socket latency, peer asleep"
	latShmAsleep  = "shm latency default, peer asleep"
	asleepGap     = 2 * time.Millisecond
	thrUnix       = "baseline: unix socket throughput"
	thrPipe       = "baseline: pipe throughput"
	batchLen      = 64
)

// peer is the running peer process and the parent's ends of every link.
type peer struct {
	cmd        *exec.Cmd
	busy, def  *shm.Chan
	pipeW      *os.File // parent -> peer
	pipeR      *os.File // peer -> parent
	sock       net.Conn
	buf, reply []byte
}

// Run measures the shared-memory channel against a Go pipe and a Go Unix
// socket, in one run, with the peer in a separate process, and returns
// rows with baselines and ratios filled in.
func Run(ctx context.Context, cfg Config) ([]benchfmt.Row, error) {
	sizes := cfg.Sizes
	if sizes == nil {
		sizes = []int{64, 4 << 10, 64 << 10, 1 << 20}
	}
	for _, s := range sizes {
		if s < 8 || s > 1<<20 {
			return nil, fmt.Errorf("shmbench: size %d out of [8, 1 MiB]", s)
		}
	}
	p, err := startPeer()
	if err != nil {
		return nil, err
	}
	defer p.close()
	scale := 1
	if cfg.Quick {
		scale = 100
	}
	var rows []benchfmt.Row
	add := func(r benchfmt.Row, err error) error {
		if err == nil {
			rows = append(rows, r)
		}
		if err == nil {
			err = ctx.Err()
		}
		return err
	}
	for _, size := range sizes {
		n := max(latIters(size)/scale, 20)
		steps := []func() (benchfmt.Row, error){
			func() (benchfmt.Row, error) { return p.streamLatency(latUnix, p.sock, p.sock, size, n, 0) },
			func() (benchfmt.Row, error) { return p.streamLatency(latPipe, p.pipeR, p.pipeW, size, n, 0) },
			func() (benchfmt.Row, error) {
				return p.shmLatency("shm latency busy-poll copy", p.busy, opEcho, size, n, 0)
			},
			func() (benchfmt.Row, error) {
				return p.shmLatency("shm latency busy-poll loan", p.busy, opEchoLoan, size, n, 0)
			},
			func() (benchfmt.Row, error) {
				return p.shmLatency("shm latency default copy", p.def, opEcho, size, n, 0)
			},
			func() (benchfmt.Row, error) {
				return p.shmLatency("shm latency default loan", p.def, opEchoLoan, size, n, 0)
			},
		}
		for _, step := range steps {
			if err := add(step()); err != nil {
				return nil, err
			}
		}
	}
	// A peer that has parked between messages: each ping waits for a
	// kernel wake-up. Its baseline is the Unix socket with the same gap,
	// whose peer has gone to sleep the same way (back-to-back pings find
	// it awake, or barely asleep).
	asleep := max(300/scale, 20)
	if err := add(p.streamLatency(latUnixAsleep, p.sock, p.sock, 64, asleep, asleepGap)); err != nil {
		return nil, err
	}
	if err := add(p.shmLatency(latShmAsleep, p.def, opEcho, 64, asleep, asleepGap)); err != nil {
		return nil, err
	}
	for _, size := range sizes {
		n := max(thrCount(size)/scale, 50)
		steps := []func() (benchfmt.Row, error){
			func() (benchfmt.Row, error) { return p.streamThroughput(thrUnix, p.sock, p.sock, size, n/10+1) },
			func() (benchfmt.Row, error) { return p.streamThroughput(thrPipe, p.pipeR, p.pipeW, size, n/10+1) },
			func() (benchfmt.Row, error) {
				return p.shmThroughput("shm throughput default copy", p.def, size, n, false)
			},
			func() (benchfmt.Row, error) {
				return p.shmThroughput("shm throughput default copy batched", p.def, size, n, true)
			},
			func() (benchfmt.Row, error) {
				return p.shmThroughput("shm throughput busy-poll copy", p.busy, size, n, false)
			},
			func() (benchfmt.Row, error) {
				return p.shmThroughput("shm throughput busy-poll copy batched", p.busy, size, n, true)
			},
		}
		for _, step := range steps {
			if err := add(step()); err != nil {
				return nil, err
			}
		}
	}
	for i := range rows {
		r := &rows[i]
		switch {
		case r.Name == latUnix || r.Name == thrUnix || r.Name == latUnixAsleep:
		case r.Name == latShmAsleep:
			r.Baseline = latUnixAsleep
		case r.Name == latPipe || r.P50 > 0:
			r.Baseline = latUnix
		default:
			r.Baseline = thrUnix
		}
	}
	benchfmt.Fill(rows)
	return rows, nil
}

func latIters(size int) int {
	switch {
	case size <= 4<<10:
		return 20000
	case size <= 64<<10:
		return 3000
	}
	return 300
}

func thrCount(size int) int {
	switch {
	case size <= 64:
		return 2_000_000
	case size <= 4<<10:
		return 200_000
	case size <= 64<<10:
		return 20_000
	}
	return 1000
}

func startPeer() (*peer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p := &peer{buf: make([]byte, 2<<20), reply: make([]byte, cmdSize)}
	var files []*os.File
	defer closeFiles(files)
	var bf, df []*os.File
	if p.busy, bf, err = shm.NewPair(shm.Config{Wait: shm.BusyPoll}); err != nil {
		return nil, err
	}
	files = append(files, bf...)
	if p.def, df, err = shm.NewPair(shm.Config{}); err != nil {
		p.close()
		return nil, err
	}
	files = append(files, df...)
	toPeerR, toPeerW, err := os.Pipe()
	if err != nil {
		p.close()
		return nil, err
	}
	fromPeerR, fromPeerW, err := os.Pipe()
	if err != nil {
		toPeerR.Close()
		toPeerW.Close()
		p.close()
		return nil, err
	}
	p.pipeW, p.pipeR = toPeerW, fromPeerR
	files = append(files, toPeerR, fromPeerW)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		p.close()
		return nil, err
	}
	mine := os.NewFile(uintptr(fds[0]), "sock")
	p.sock, err = net.FileConn(mine)
	mine.Close()
	theirs := os.NewFile(uintptr(fds[1]), "sock")
	files = append(files, theirs)
	if err != nil {
		closeFiles(files)
		p.close()
		return nil, err
	}
	p.cmd = exec.Command(exe)
	p.cmd.Env = append(os.Environ(), peerEnv+"=1")
	p.cmd.ExtraFiles = files
	p.cmd.Stdout, p.cmd.Stderr = os.Stderr, os.Stderr
	if err := p.cmd.Start(); err != nil {
		closeFiles(files)
		p.close()
		return nil, fmt.Errorf("shmbench: start peer: %w", err)
	}
	closeFiles(files)
	files = nil
	return p, nil
}

func (p *peer) close() {
	for _, c := range []*shm.Chan{p.busy, p.def} {
		if c != nil {
			c.Close()
		}
	}
	for _, c := range []io.Closer{p.pipeW, p.pipeR, p.sock} {
		if c != nil && c != (*os.File)(nil) {
			c.Close()
		}
	}
	if p.cmd != nil && p.cmd.Process != nil {
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
	}
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

func cmdBytes(op uint32, size, count int) []byte {
	b := make([]byte, cmdSize)
	putCmd(b, op, uint32(size), uint64(count))
	return b
}

func peerCPU(reply []byte) time.Duration {
	return time.Duration(binary.LittleEndian.Uint64(reply[8:]))
}

var errShortReply = errors.New("shmbench: bad reply from peer")
