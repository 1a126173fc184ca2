package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/brokerbench"
	"github.com/postbox-ipc/postbox/internal/grpcpeer"
)

// result is one measurement of one system.
type result struct {
	rate     float64 // messages or calls per second
	p50, p99 float64 // nanoseconds
	note     string
}

// latencies turns samples into a result's percentiles.
func latencies(lat []time.Duration) result {
	if len(lat) == 0 {
		return result{}
	}
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) }
	return result{p50: at(0.50), p99: at(0.99)}
}

// postboxThroughput is `postbox bench --use-socket`'s throughput figure:
// one Publisher with cfg.Window sends in flight (each send acked by the
// broker), one consumer (prefetch 1024) acking every message.
func postboxThroughput(ctx context.Context, sock string, size int, cfg Config) (result, error) {
	bc := brokerbench.DefaultConfig()
	bc.Duration, bc.Window = cfg.Duration, cfg.Window
	row, err := brokerbench.Throughput(ctx, sock, size, bc)
	if err != nil {
		return result{}, err
	}
	return result{rate: row.MsgsPerSec, note: row.Note}, nil
}

// postboxLatency is `postbox bench --use-socket`'s latency figure: a Send
// (returning once the broker has the message) in one client to the
// message coming out of Next in another.
func postboxLatency(ctx context.Context, sock string, size, samples int) (result, error) {
	row, err := brokerbench.Latency(ctx, sock, size, samples)
	if err != nil {
		return result{}, err
	}
	return result{p50: float64(row.P50), p99: float64(row.P99)}, nil
}

// rawLatency is the round trip of size bytes through the raw echo
// process: a write and the echo read back, no broker.
func rawLatency(ctx context.Context, path string, size, samples int) (result, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	buf := make([]byte, size)
	lat := make([]time.Duration, 0, samples)
	for i := range samples + samples/10 {
		if ctx.Err() != nil {
			return result{}, ctx.Err()
		}
		t0 := time.Now()
		if _, err := c.Write(buf); err != nil {
			return result{}, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return result{}, err
		}
		if i >= samples/10 {
			lat = append(lat, time.Since(t0))
		}
	}
	return latencies(lat), nil
}

// rawFsync writes size bytes and fdatasyncs them, in a loop, for d, to a
// file in dir: one writer, one sync per message, no server. It is what a
// server that syncs each message alone (without group commit) can reach
// at best on this disk.
func rawFsync(ctx context.Context, dir string, size int, d time.Duration) (result, error) {
	f, err := os.CreateTemp(dir, "fsync-")
	if err != nil {
		return result{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	return concurrent(ctx, 1, d, func(context.Context) (func(context.Context) error, func(), error) {
		body := make([]byte, size)
		return func(context.Context) error {
			if _, err := f.Write(body); err != nil {
				return err
			}
			return syscall.Fdatasync(int(f.Fd()))
		}, func() {}, nil
	})
}

var mailboxSeq atomic.Uint64

// postboxDurable has senders clients, each on its own connection, send
// size-byte messages to one durable mailbox, one at a time, for d. The
// broker's store syncs before it answers a durable send, so an answer
// means the message is on disk.
func postboxDurable(ctx context.Context, sock string, senders, size int, d time.Duration) (result, error) {
	c, err := postbox.Dial(ctx, postbox.WithSocket(sock))
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	mb, err := c.Create(ctx, fmt.Sprintf("peers-durable-%d", mailboxSeq.Add(1)), postbox.Durable(), postbox.Capacity(-1))
	if err != nil {
		return result{}, err
	}
	defer mb.Destroy(context.Background())
	return concurrent(ctx, senders, d, func(ctx context.Context) (func(context.Context) error, func(), error) {
		sc, err := postbox.Dial(ctx, postbox.WithSocket(sock))
		if err != nil {
			return nil, nil, err
		}
		m := sc.Mailbox(mb.Name())
		body := make([]byte, size)
		return func(ctx context.Context) error {
			_, err := m.Send(ctx, body)
			return err
		}, func() { sc.Close() }, nil
	})
}

// postboxCalls has callers goroutines share one client and call the
// responder process with Mailbox.Call (CALL, answered with
// Message.Reply), one call at a time each, for d.
func postboxCalls(ctx context.Context, sock string, callers, size int, d time.Duration) (result, error) {
	c, err := postbox.Dial(ctx, postbox.WithSocket(sock))
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	mb := c.Mailbox(rpcMailbox)
	return concurrent(ctx, callers, d, func(context.Context) (func(context.Context) error, func(), error) {
		body := make([]byte, size)
		return func(ctx context.Context) error {
			_, err := mb.Call(ctx, body)
			return err
		}, func() {}, nil
	})
}

// grpcCalls is postboxCalls against gRPC-go's unary echo: callers share
// one connection (HTTP/2).
func grpcCalls(ctx context.Context, path string, callers, size int, d time.Duration) (result, error) {
	c, err := grpcpeer.Dial(ctx, path)
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	return concurrent(ctx, callers, d, func(context.Context) (func(context.Context) error, func(), error) {
		body := make([]byte, size)
		var out []byte
		return func(ctx context.Context) error {
			return c.Call(ctx, body, &out, false)
		}, func() {}, nil
	})
}

// concurrent sets up n workers, then runs each one's op in a loop for d,
// all at once, and reports ops/s and the latency of each op.
func concurrent(ctx context.Context, n int, d time.Duration, setup func(context.Context) (op func(context.Context) error, closer func(), err error)) (result, error) {
	ops := make([]func(context.Context) error, n)
	for i := range n {
		op, closer, err := setup(ctx)
		if err != nil {
			return result{}, err
		}
		defer closer()
		ops[i] = op
	}
	lats := make([][]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(d)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) && ctx.Err() == nil {
				t0 := time.Now()
				if err := ops[i](ctx); err != nil {
					errs[i] = err
					return
				}
				lats[i] = append(lats[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	var all []time.Duration
	for i := range n {
		if errs[i] != nil {
			return result{}, errs[i]
		}
		all = append(all, lats[i]...)
	}
	r := latencies(all)
	r.rate = float64(len(all)) / elapsed.Seconds()
	return r, nil
}
