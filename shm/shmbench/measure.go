package shmbench

import (
	"context"
	"io"
	"time"

	"github.com/postbox-ipc/postbox/internal/benchfmt"
	"github.com/postbox-ipc/postbox/shm"
)

// Each measurement sends a command, runs, and reads the peer's reply with
// its CPU time, which is added to this process's for Row.CPUSeconds.

func (p *peer) shmCommand(c *shm.Chan, op uint32, size, count int) error {
	return c.Send(context.Background(), cmdBytes(op, size, count))
}

func (p *peer) shmReply(c *shm.Chan) (time.Duration, error) {
	n, err := c.Receive(context.Background(), p.reply)
	if err != nil {
		return 0, err
	}
	if n != cmdSize {
		return 0, errShortReply
	}
	return peerCPU(p.reply), nil
}

// shmLatency measures round trips of size bytes; one-way latency is half.
// With gap > 0 it sleeps between pings so that the peer parks.
func (p *peer) shmLatency(name string, c *shm.Chan, op uint32, size, n int, gap time.Duration) (benchfmt.Row, error) {
	ctx := context.Background()
	warm := n / 10
	if err := p.shmCommand(c, op, size, n+warm); err != nil {
		return benchfmt.Row{}, err
	}
	cpu0 := cpuNow()
	samples := make([]time.Duration, 0, n)
	msg := p.buf[:size]
	for i := 0; i < n+warm; i++ {
		if gap > 0 {
			time.Sleep(gap)
		}
		t0 := time.Now()
		if op == opEchoLoan {
			r, err := c.Reserve(ctx, size)
			if err != nil {
				return benchfmt.Row{}, err
			}
			r.Bytes()[0] = byte(i)
			if err := r.Commit(); err != nil {
				return benchfmt.Row{}, err
			}
			l, err := c.ReceiveLoan(ctx)
			if err != nil {
				return benchfmt.Row{}, err
			}
			_ = l.Bytes()[0]
			l.Release()
		} else {
			if err := c.Send(ctx, msg); err != nil {
				return benchfmt.Row{}, err
			}
			if _, err := c.Receive(ctx, p.buf); err != nil {
				return benchfmt.Row{}, err
			}
		}
		if i >= warm {
			samples = append(samples, time.Since(t0)/2)
		}
	}
	cpu := cpuNow() - cpu0
	peerCPU, err := p.shmReply(c)
	if err != nil {
		return benchfmt.Row{}, err
	}
	p50, p99 := benchfmt.Latencies(samples)
	note := "one-way = round trip / 2"
	if gap > 0 {
		note += ", " + gap.String() + " between pings"
	}
	return benchfmt.Row{Name: name, Size: size, P50: p50, P99: p99,
		CPUSeconds: (cpu + peerCPU).Seconds(), Note: note}, nil
}

// streamLatency is shmLatency over a byte stream; with gap > 0 it sleeps
// between pings, so that the peer has gone to sleep in the poller.
func (p *peer) streamLatency(name string, r io.Reader, w io.Writer, size, n int, gap time.Duration) (benchfmt.Row, error) {
	warm := n / 10
	if _, err := w.Write(cmdBytes(opEcho, size, n+warm)); err != nil {
		return benchfmt.Row{}, err
	}
	cpu0 := cpuNow()
	samples := make([]time.Duration, 0, n)
	for i := 0; i < n+warm; i++ {
		if gap > 0 {
			time.Sleep(gap)
		}
		t0 := time.Now()
		if _, err := w.Write(p.buf[:size]); err != nil {
			return benchfmt.Row{}, err
		}
		if _, err := io.ReadFull(r, p.buf[:size]); err != nil {
			return benchfmt.Row{}, err
		}
		if i >= warm {
			samples = append(samples, time.Since(t0)/2)
		}
	}
	cpu := cpuNow() - cpu0
	if _, err := io.ReadFull(r, p.reply); err != nil {
		return benchfmt.Row{}, err
	}
	p50, p99 := benchfmt.Latencies(samples)
	note := "one-way = round trip / 2"
	if gap > 0 {
		note += ", " + gap.String() + " between pings"
	}
	return benchfmt.Row{Name: name, Size: size, P50: p50, P99: p99,
		CPUSeconds: (cpu + peerCPU(p.reply)).Seconds(), Note: note}, nil
}

// shmThroughput streams n messages and waits for the peer's reply after
// the last: the time covers delivery of every message.
func (p *peer) shmThroughput(name string, c *shm.Chan, size, n int, batched bool) (benchfmt.Row, error) {
	ctx := context.Background()
	op := uint32(opSink)
	if batched {
		op = opSinkLoan
	}
	if err := p.shmCommand(c, op, size, n); err != nil {
		return benchfmt.Row{}, err
	}
	batch := make([][]byte, batchLen)
	for i := range batch {
		batch[i] = p.buf[:size]
	}
	cpu0 := cpuNow()
	t0 := time.Now()
	for sent := 0; sent < n; {
		if batched {
			k, err := c.SendBatch(ctx, batch[:min(batchLen, n-sent)])
			if err != nil {
				return benchfmt.Row{}, err
			}
			sent += k
			continue
		}
		if err := c.Send(ctx, p.buf[:size]); err != nil {
			return benchfmt.Row{}, err
		}
		sent++
	}
	peerCPU, err := p.shmReply(c)
	if err != nil {
		return benchfmt.Row{}, err
	}
	el := time.Since(t0).Seconds()
	cpu := cpuNow() - cpu0
	note := "copy in and out, unbatched"
	if batched {
		note = "copy in and out; SendBatch of 64, ReceiveBatch"
	}
	return benchfmt.Row{Name: name, Size: size, MsgsPerSec: float64(n) / el,
		BytesPerSec: float64(n) * float64(size) / el, CPUSeconds: (cpu + peerCPU).Seconds(), Note: note}, nil
}

func (p *peer) streamThroughput(name string, r io.Reader, w io.Writer, size, n int) (benchfmt.Row, error) {
	if _, err := w.Write(cmdBytes(opSink, size, n)); err != nil {
		return benchfmt.Row{}, err
	}
	cpu0 := cpuNow()
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if _, err := w.Write(p.buf[:size]); err != nil {
			return benchfmt.Row{}, err
		}
	}
	if _, err := io.ReadFull(r, p.reply); err != nil {
		return benchfmt.Row{}, err
	}
	el := time.Since(t0).Seconds()
	cpu := cpuNow() - cpu0
	return benchfmt.Row{Name: name, Size: size, MsgsPerSec: float64(n) / el,
		BytesPerSec: float64(n) * float64(size) / el, CPUSeconds: (cpu + peerCPU(p.reply)).Seconds(),
		Note: "one write per message"}, nil
}
