package brokerbench

// The shapes of load `postbox bench` can be asked for (--size, --count,
// --senders, --receivers): the message sizes, a fixed message count
// instead of a duration, and several sending and receiving clients.

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/benchfmt"
)

func (cfg Config) throughputSizes() []int {
	if len(cfg.Sizes) > 0 {
		return cfg.Sizes
	}
	return []int{64, 4096}
}

func (cfg Config) latencySizes() []int {
	if len(cfg.Sizes) > 0 {
		return cfg.Sizes
	}
	return []int{64}
}

func (cfg Config) progress(what string, size int) {
	if cfg.Progress != nil {
		cfg.Progress(fmt.Sprintf("%s, %d B", what, size))
	}
}

// latencies appends the latency figures, each beside the raw round trip
// at its size, to rows and returns the first (the one the URL's latency
// is measured at).
func latencies(ctx context.Context, sock, rawPath string, cfg Config, rows *[]benchfmt.Row) (first benchfmt.Row, err error) {
	for i, size := range cfg.latencySizes() {
		cfg.progress("latency", size)
		lat, err := Latency(ctx, sock, size, cfg.Samples)
		if err != nil {
			return first, fmt.Errorf("latency %d B: %w", size, err)
		}
		raw, err := RawLatency(ctx, rawPath, size, cfg.Samples)
		if err != nil {
			return first, fmt.Errorf("raw latency %d B: %w", size, err)
		}
		proc, err := RawProcLatency(ctx, filepath.Join(filepath.Dir(rawPath), "rawproc.sock"), size, cfg.Samples)
		if err != nil {
			return first, fmt.Errorf("raw inter-process latency %d B: %w", size, err)
		}
		// Through a broker process (cfg.Socket, --use-socket) a message
		// crosses into another process and back out, as the inter-process
		// echo's bytes do: that echo is the latency's baseline, the
		// in-process echo beside it as the floor of the socket alone. A
		// broker in this process is compared with the in-process echo,
		// which has no process wake-up either.
		if cfg.Socket != "" {
			lat.Baseline, raw.Baseline = proc.Name, proc.Name
		} else {
			lat.Baseline, proc.Baseline = raw.Name, raw.Name
		}
		*rows = append(*rows, lat, proc, raw)
		if i == 0 {
			first = lat
		}
	}
	return first, nil
}

// load is throughput with cfg.Senders sending clients (each a Publisher
// with cfg.Window sends in flight) and cfg.Receivers receiving clients
// (each a consumer acking every message) on one mailbox, for cfg.Count
// messages in all or, without a count, for cfg.Duration.
func load(ctx context.Context, dial []postbox.DialOption, size int, cfg Config) (benchfmt.Row, error) {
	senders, receivers := max(cfg.Senders, 1), max(cfg.Receivers, 1)
	row := benchfmt.Row{Name: NameThroughput, Size: size,
		Note: fmt.Sprintf("Publisher, %d sends in flight", cfg.Window)}
	if senders > 1 || receivers > 1 {
		row.Name = fmt.Sprintf("mailbox throughput (%d senders, %d receivers, acks on)", senders, receivers)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var clients []*postbox.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for range senders + receivers {
		c, err := postbox.Dial(ctx, dial...)
		if err != nil {
			return row, err
		}
		clients = append(clients, c)
	}
	mb, err := tempMailbox(ctx, clients[0], 4096)
	if err != nil {
		return row, err
	}
	defer mb.Destroy(context.Background())

	// quota hands out the messages to send: Count in all, else unbounded
	// until stop.
	var quota atomic.Int64
	quota.Store(int64(cfg.Count))
	var stop atomic.Bool
	take := func() bool {
		if stop.Load() {
			return false
		}
		return cfg.Count == 0 || quota.Add(-1) >= 0
	}
	var received, frames, sent atomic.Int64
	errc := make(chan error, senders+receivers)
	var wg sync.WaitGroup
	body := make([]byte, size)
	start := time.Now()
	for _, c := range clients[:senders] {
		pub := c.Mailbox(mb.Name()).Publisher(cfg.Window)
		wg.Go(func() {
			for take() {
				if err := pub.Send(ctx, body); err != nil {
					errc <- err
					return
				}
			}
			if err := pub.Flush(ctx); err != nil {
				errc <- err
			}
			frames.Add(int64(pub.Frames()))
			sent.Add(int64(pub.Sent()))
		})
	}
	done := make(chan struct{}) // closed when Count messages are in
	var doneOnce sync.Once
	var rwg sync.WaitGroup
	for _, c := range clients[senders:] {
		cons, err := c.Mailbox(mb.Name()).Consume(ctx, postbox.Prefetch(1024))
		if err != nil {
			stop.Store(true)
			cancel()
			wg.Wait()
			rwg.Wait()
			return row, err
		}
		rwg.Go(func() {
			defer cons.Close(context.Background())
			for {
				m, err := cons.Next(ctx)
				if err != nil {
					if ctx.Err() == nil {
						errc <- err
					}
					return
				}
				m.AckNoWait()
				if n := received.Add(1); cfg.Count > 0 && n >= int64(cfg.Count) {
					doneOnce.Do(func() { close(done) })
				}
			}
		})
	}
	var timeout <-chan time.Time
	if cfg.Count == 0 {
		timeout = time.After(cfg.Duration)
	}
	var failed error
	select {
	case <-done:
	case <-timeout:
	case failed = <-errc:
	case <-ctx.Done():
		failed = ctx.Err()
	}
	elapsed := time.Since(start)
	n := received.Load()
	stop.Store(true)
	wg.Wait() // the senders flush what they sent; the receivers drain it
	cancel()
	rwg.Wait()
	if failed != nil {
		return row, failed
	}
	row.MsgsPerSec = float64(n) / elapsed.Seconds()
	row.BytesPerSec = row.MsgsPerSec * float64(size)
	if f := frames.Load(); f > 0 {
		row.Note += fmt.Sprintf(", %.0f per SEND frame", float64(sent.Load())/float64(f))
	}
	if cfg.Count > 0 {
		row.Note += fmt.Sprintf(", %d messages in %v", n, elapsed.Round(time.Millisecond))
	}
	return row, nil
}
