package brokerbench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/benchfmt"
	"github.com/postbox-ipc/postbox/store/storebench"
)

// Names of the durability figures measured through the broker.
const (
	NameDurableSend = "broker durable send"
	NameMemorySend  = "baseline: broker non-durable send"
)

// RunDurable measures durability in one run on the disk holding dir: the
// store alone (package storebench: durable appends with 1, 16 and 64
// writers beside a raw write+fdatasync loop and a NoSync run), and whole
// sends through the broker to a durable mailbox with 1, 16 and 64
// concurrent senders beside the same sends to a non-durable one.
func RunDurable(ctx context.Context, dir string, quick bool) ([]benchfmt.Row, error) {
	rows, err := storebench.Run(ctx, dir, quick)
	if err != nil {
		return nil, err
	}
	d := 2 * time.Second
	if quick {
		d = 300 * time.Millisecond
	}
	for _, senders := range []int{1, 16, 64} {
		for _, size := range []int{256, 4096} {
			mem, err := brokerSends(ctx, dir, false, senders, size, d)
			if err != nil {
				return nil, err
			}
			dur, err := brokerSends(ctx, dir, true, senders, size, d)
			if err != nil {
				return nil, err
			}
			mem.Name = fmt.Sprintf("%s, %d senders", NameMemorySend, senders)
			dur.Name = fmt.Sprintf("%s, %d senders", NameDurableSend, senders)
			dur.Baseline = mem.Name
			rows = append(rows, dur, mem)
		}
	}
	benchfmt.Fill(rows)
	return rows, nil
}

// brokerSends runs an in-process broker with a data directory under dir
// and has senders clients each send size-byte messages, one at a time, for
// d, while one consumer acks them. Each send's latency is its whole round
// trip, including the group commit when durable.
func brokerSends(ctx context.Context, dir string, durable bool, senders, size int, d time.Duration) (benchfmt.Row, error) {
	row := benchfmt.Row{Size: size}
	data, err := os.MkdirTemp(dir, "brokerbench-")
	if err != nil {
		return row, err
	}
	defer os.RemoveAll(data)
	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.DataDir = filepath.Join(data, "data")
	b, err := broker.Open(cfg)
	if err != nil {
		return row, err
	}
	sock := filepath.Join(data, "s.sock")
	l, err := broker.Listen(sock, 0o600)
	if err != nil {
		b.Close()
		return row, err
	}
	go b.Serve(l)
	defer b.Close()

	before, _ := b.DiskStats()
	row, err = sends(ctx, sock, "bench", durable, senders, size, d)
	if err != nil {
		return row, err
	}
	after, _ := b.DiskStats()
	if durable {
		if fsyncs := after.Fsyncs - before.Fsyncs; fsyncs > 0 {
			row.Note = fmt.Sprintf("%.0f fsyncs/s, %.1f sends per fsync", float64(fsyncs)/d.Seconds(), row.MsgsPerSec*d.Seconds()/float64(fsyncs))
		}
	}
	return row, nil
}

// SocketSends is brokerSends against the running broker at sock (a
// separate process, as deployed): a temporary mailbox, durable or not,
// senders clients each sending size-byte messages one at a time for d,
// one consumer acking them. The broker needs a data directory for a
// durable mailbox.
func SocketSends(ctx context.Context, sock string, durable bool, senders, size int, d time.Duration) (benchfmt.Row, error) {
	name := fmt.Sprintf("bench-sends-%d-%d", os.Getpid(), mailboxSeq.Add(1))
	row, err := sends(ctx, sock, name, durable, senders, size, d)
	if err != nil {
		return row, err
	}
	row.Name = fmt.Sprintf("%s, %d senders", NameMemorySend, senders)
	if durable {
		row.Name = fmt.Sprintf("%s, %d senders", NameDurableSend, senders)
	}
	row.Note = "broker at " + sock
	return row, nil
}

// sends creates mailbox name at sock, has senders clients send size-byte
// messages one at a time for d while one consumer acks them, and destroys
// the mailbox. Each send's latency is its whole round trip, including the
// group commit when durable.
func sends(ctx context.Context, sock, name string, durable bool, senders, size int, d time.Duration) (benchfmt.Row, error) {
	row := benchfmt.Row{Size: size}
	rc, err := postbox.Dial(ctx, postbox.WithSocket(sock))
	if err != nil {
		return row, err
	}
	defer rc.Close()
	opts := []postbox.CreateOption{postbox.Capacity(-1)}
	if durable {
		opts = append(opts, postbox.Durable())
	}
	if _, err := rc.Create(ctx, name, opts...); err != nil {
		return row, err
	}
	defer rc.Mailbox(name).Destroy(context.Background())
	cons, err := rc.Mailbox(name).Consume(ctx, postbox.Prefetch(4096))
	if err != nil {
		return row, err
	}
	go func() {
		for {
			m, err := cons.Next(ctx)
			if err != nil {
				return
			}
			m.AckNoWait()
		}
	}()
	defer cons.Close(ctx)

	// Connected one after another before the clock starts: a broker
	// refuses a uid more than a few connections in the handshake at once.
	clients := make([]*postbox.Client, senders)
	for i := range clients {
		c, err := postbox.Dial(ctx, postbox.WithSocket(sock))
		if err != nil {
			return row, err
		}
		defer c.Close()
		clients[i] = c
	}
	lats := make([][]time.Duration, senders)
	errs := make([]error, senders)
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(d)
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mb := clients[i].Mailbox(name)
			body := make([]byte, size)
			for time.Now().Before(stop) {
				t0 := time.Now()
				if _, err := mb.Send(ctx, body); err != nil {
					errs[i] = err
					return
				}
				lats[i] = append(lats[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return row, err
		}
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	row.MsgsPerSec = float64(len(all)) / elapsed.Seconds()
	row.BytesPerSec = row.MsgsPerSec * float64(size)
	row.P50, row.P99 = benchfmt.Latencies(all)
	return row, nil
}

// RunDurableSocket measures, against the running broker at sock, durable
// sends of size bytes from senders concurrent senders for d beside the same
// sends to a non-durable mailbox, and one Publisher with 1024 sends in
// flight to a durable mailbox, in three interleaved rounds.
func RunDurableSocket(ctx context.Context, sock string, senders, size int, d time.Duration) ([]benchfmt.Row, error) {
	var rows []benchfmt.Row
	for range 3 {
		dur, err := SocketSends(ctx, sock, true, senders, size, d)
		if err != nil {
			return nil, err
		}
		mem, err := SocketSends(ctx, sock, false, senders, size, d)
		if err != nil {
			return nil, err
		}
		dur.Baseline = mem.Name
		// The same durable mailbox fed by one Publisher with 1024 sends
		// in flight (acked after their fsync, as a Send's): what the
		// group commit does when the senders are not one-at-a-time.
		win, err := throughput(ctx, []postbox.DialOption{postbox.WithSocket(sock)}, size,
			Config{Duration: d, Window: 1024, durable: true})
		if err != nil {
			return nil, err
		}
		win.Name = NameDurableWindow
		win.Baseline = mem.Name
		// Each round's ratios are to its own baseline (the rows of all
		// rounds share names, so benchfmt.Fill cannot pair them).
		dur.Ratio, win.Ratio = dur.MsgsPerSec/mem.MsgsPerSec, win.MsgsPerSec/mem.MsgsPerSec
		rows = append(rows, dur, mem, win)
	}
	return rows, nil
}

// NameDurableWindow is RunDurableSocket's row of one pipelined sender to
// a durable mailbox.
const NameDurableWindow = "broker durable send, 1 Publisher, 1024 in flight"
