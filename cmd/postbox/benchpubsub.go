package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/benchfmt"
	"github.com/postbox-ipc/postbox/wire"
)

// bench pubsub: publish/subscribe fan-out, beside the same broker's
// SEND/CONSUME path and a raw Unix socket, in one run.

func newBenchPubSub() *cobra.Command {
	var out string
	var dur time.Duration
	var useSocket bool
	var inflight, window, buffer int
	var cpuprofile string
	cmd := &cobra.Command{
		Use:     "pubsub",
		Example: "  postbox bench pubsub --duration 2s",
		Short:   "Measure publish/subscribe fan-out against mailboxes and a raw Unix socket, in one run",
		Long: `Measure, in one run: one publisher (--inflight publications in flight) to
1, 4 and 16 subscribers at 64 B and 4 KiB, counting the events the
subscribers receive per second, and publish-to-receive latency p50/p99
(one publication at a time); the same fan-outs from one goroutine through
the batched, pipelined publisher (Client.Publisher: --window publications
in flight, up to 1024 a PUBLISH frame), each with its ratio to the
one-publication-per-frame row above it (each subscriber's buffer --buffer
events, policy block); a wildcard-heavy case (10,000 subscriptions, each
publication matching 4, the publications going round 2,500 subjects),
from --inflight Publish calls and from one TopicPublisher's PublishTo;
and as baselines, in the same run, the same
broker's SEND/CONSUME mailbox path (one sender, one consumer, the same
in-flight window) and a raw Unix socket stream of the same sizes. Each
pub/sub row's ratio is to the mailbox row of its size; the mailbox row's
to the raw socket.

The broker runs in this process unless --use-socket measures the one at
--socket (a separate "postbox serve" process).

-o json prints one JSON object per figure: name, subscribers, size,
msgs_per_sec, p50_ns, p99_ns, baseline, ratio.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "table", "json", "csv"); err != nil {
				return err
			}
			if buffer < 1 || buffer > wire.MaxSubscribeBuffer {
				return usageError{fmt.Errorf("--buffer %d: want 1 to %d events", buffer, wire.MaxSubscribeBuffer)}
			}
			if inflight < 1 || window < 1 {
				return usageError{fmt.Errorf("--inflight %d, --window %d: want at least 1", inflight, window)}
			}
			ctx := cmd.Context()
			sock := socketPath()
			if !useSocket {
				tuneGC(broker.DefaultConfig())
				dir, err := os.MkdirTemp("", "postbox-bench-pubsub-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				sock = filepath.Join(dir, "s")
				bcfg := broker.DefaultConfig()
				bcfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil)) // mailbox create/destroy lines are noise here
				b := broker.New(bcfg)
				l, err := broker.Listen(sock, 0o600)
				if err != nil {
					return err
				}
				go b.Serve(l)
				defer b.Close()
			}
			if cpuprofile != "" {
				f, err := os.Create(cpuprofile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			rows, err := runBenchPubSub(ctx, sock, dur, inflight, window, buffer)
			if err != nil {
				return err
			}
			if out == "json" {
				enc := json.NewEncoder(os.Stdout)
				for _, r := range rows {
					enc.Encode(r)
				}
				return nil
			}
			plain := make([]benchfmt.Row, len(rows))
			for i, r := range rows {
				plain[i] = r.Row
			}
			return writeBench(os.Stdout, plain, out, "") // table or csv (benchload.go)
		},
	}
	outputFlag(cmd, &out, "table", "table, csv or json")
	cmd.Flags().DurationVar(&dur, "duration", time.Second, "how long each throughput figure runs")
	cmd.Flags().IntVar(&inflight, "inflight", 64, "publications (and sends) in flight, one per frame")
	cmd.Flags().IntVar(&window, "window", 512, "publications in flight for the batched publisher")
	cmd.Flags().IntVar(&buffer, "buffer", 4096, "each fan-out subscriber's buffer, in events (policy block)")
	cmd.Flags().StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of this process (the client side, and the broker unless --use-socket) to FILE")
	cmd.Flags().BoolVar(&useSocket, "use-socket", false, "measure the running broker at --socket instead of one in this process")
	return cmd
}

// pubsubRow is a benchfmt.Row with the fan-out.
type pubsubRow struct {
	benchfmt.Row
	Subscribers int `json:"subscribers"`
}

func runBenchPubSub(ctx context.Context, sock string, dur time.Duration, inflight, window, buffer int) ([]pubsubRow, error) {
	dial := func() (*postbox.Client, error) { return postbox.Dial(ctx, postbox.WithSocket(sock)) }
	var rows []pubsubRow
	for _, size := range []int{64, 4096} {
		raw, err := benchRawSocket(size, dur)
		if err != nil {
			return nil, err
		}
		rows = append(rows, pubsubRow{Row: benchfmt.Row{Name: "baseline: unix socket stream", Size: size, MsgsPerSec: raw, BytesPerSec: raw * float64(size)}})
		mb, err := benchMailbox(ctx, dial, size, dur, inflight)
		if err != nil {
			return nil, err
		}
		mb.Baseline = "baseline: unix socket stream"
		rows = append(rows, pubsubRow{Row: mb, Subscribers: 1})
		for _, n := range []int{1, 4, 16} {
			r, err := benchFanOut(ctx, dial, size, n, dur, inflight, 0, buffer)
			if err != nil {
				return nil, err
			}
			r.Baseline = "mailbox send/consume"
			rows = append(rows, pubsubRow{Row: r, Subscribers: n})
			bt, err := benchFanOut(ctx, dial, size, n, dur, inflight, window, buffer)
			if err != nil {
				return nil, err
			}
			bt.Baseline = r.Name
			rows = append(rows, pubsubRow{Row: bt, Subscribers: n})
		}
	}
	w, err := benchWildcard(ctx, dial, dur, inflight, 0)
	if err != nil {
		return nil, err
	}
	w.Baseline = "mailbox send/consume"
	rows = append(rows, pubsubRow{Row: w, Subscribers: 10000})
	wb, err := benchWildcard(ctx, dial, dur, inflight, window)
	if err != nil {
		return nil, err
	}
	wb.Baseline = w.Name
	rows = append(rows, pubsubRow{Row: wb, Subscribers: 10000})
	plain := make([]benchfmt.Row, len(rows))
	for i := range rows {
		plain[i] = rows[i].Row
	}
	benchfmt.Fill(plain)
	for i := range rows {
		rows[i].Row = plain[i]
	}
	return rows, nil
}

// pump publishes (or sends) with inflight goroutines until stop.
func pump(inflight int, stop <-chan struct{}, one func() error) (wait func() error) {
	var wg sync.WaitGroup
	var first atomic.Value
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := one(); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	return func() error {
		wg.Wait()
		if err, _ := first.Load().(error); err != nil {
			return err
		}
		return nil
	}
}

// benchFanOut measures one publisher to n subscribers: inflight
// goroutines calling Publish (one publication per frame), or, with
// window > 0, one goroutine feeding the batched TopicPublisher.
func benchFanOut(ctx context.Context, dial func() (*postbox.Client, error), size, n int, dur time.Duration, inflight, window, buffer int) (benchfmt.Row, error) {
	pub, err := dial()
	if err != nil {
		return benchfmt.Row{}, err
	}
	defer pub.Close()
	subject := fmt.Sprintf("bench.fanout.%d.%d", size, n)
	var got atomic.Int64
	var subs []*postbox.Subscription
	var clients []*postbox.Client
	var wg sync.WaitGroup
	defer func() {
		for _, s := range subs {
			s.Close()
		}
		wg.Wait()
		for _, c := range clients {
			c.Close()
		}
	}()
	for range n {
		c, err := dial()
		if err != nil {
			return benchfmt.Row{}, err
		}
		clients = append(clients, c)
		s, err := c.Subscribe(ctx, subject, postbox.Buffer(buffer))
		if err != nil {
			return benchfmt.Row{}, err
		}
		subs = append(subs, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := s.Next(context.Background()); err != nil {
					return
				}
				got.Add(1)
			}
		}()
	}
	body := make([]byte, size)
	stop := make(chan struct{})
	var wait func() error
	var tp *postbox.TopicPublisher
	if window > 0 {
		tp = pub.Publisher(subject, window)
		wait = pump(1, stop, func() error { return tp.Publish(ctx, body) })
	} else {
		wait = pump(inflight, stop, func() error { _, err := pub.Publish(ctx, subject, body); return err })
	}
	time.Sleep(dur / 5) // warm up
	start, before := time.Now(), got.Load()
	time.Sleep(dur)
	rate := float64(got.Load()-before) / time.Since(start).Seconds()
	close(stop)
	if err := wait(); err != nil {
		return benchfmt.Row{}, err
	}
	name := fmt.Sprintf("pubsub fan-out to %d", n)
	note := fmt.Sprintf("%d subscribers, counted at the subscribers; latency: to the last of them", n)
	if tp != nil {
		if err := tp.Close(ctx); err != nil {
			return benchfmt.Row{}, err
		}
		name = fmt.Sprintf("pubsub batched fan-out to %d", n)
		note = fmt.Sprintf("one goroutine, Client.Publisher window %d, %.0f publications a frame; latency: to the last of %d subscribers",
			window, float64(tp.Sent())/float64(max(tp.Frames(), 1)), n)
	}
	// Latency: one publication at a time, to every subscriber.
	var lat []time.Duration
	drain := func() { // let the stream settle
		for last := int64(-1); got.Load() != last; {
			last = got.Load()
			time.Sleep(20 * time.Millisecond)
		}
	}
	drain()
	for range 200 {
		target := got.Load() + int64(n)
		t0 := time.Now()
		if _, err := pub.Publish(ctx, subject, body); err != nil {
			return benchfmt.Row{}, err
		}
		for got.Load() < target {
			time.Sleep(0)
		}
		lat = append(lat, time.Since(t0))
	}
	p50, p99 := benchfmt.Latencies(lat)
	return benchfmt.Row{Name: name, Size: size, MsgsPerSec: rate, BytesPerSec: rate * float64(size),
		P50: p50, P99: p99, Note: note}, nil
}

// benchWildcard measures 10,000 subscriptions, 4 matching each
// publication, the publications going round 2,500 subjects: inflight
// goroutines calling Publish, or, with window > 0, one goroutine feeding
// a TopicPublisher's PublishTo.
func benchWildcard(ctx context.Context, dial func() (*postbox.Client, error), dur time.Duration, inflight, window int) (benchfmt.Row, error) {
	pub, err := dial()
	if err != nil {
		return benchfmt.Row{}, err
	}
	defer pub.Close()
	const nsubs, groups = 10000, 2500 // each publication matches nsubs/groups = 4
	var got atomic.Int64
	var subs []*postbox.Subscription
	var wg sync.WaitGroup
	var clients []*postbox.Client
	defer func() {
		for _, s := range subs {
			s.Close()
		}
		wg.Wait()
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := range 4 {
		c, err := dial()
		if err != nil {
			return benchfmt.Row{}, err
		}
		clients = append(clients, c)
		for j := range nsubs / 4 {
			k := i*(nsubs/4) + j
			pattern := fmt.Sprintf("w.%d.*", k%groups)
			if k/groups%2 == 1 {
				pattern = fmt.Sprintf("w.%d.>", k%groups)
			}
			s, err := c.Subscribe(ctx, pattern, postbox.Buffer(256))
			if err != nil {
				return benchfmt.Row{}, err
			}
			subs = append(subs, s)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					if _, err := s.Next(context.Background()); err != nil {
						return
					}
					got.Add(1)
				}
			}()
		}
	}
	body := make([]byte, 64)
	var seq atomic.Int64
	stop := make(chan struct{})
	subjects := make([]string, groups)
	for g := range subjects {
		subjects[g] = fmt.Sprintf("w.%d.x", g)
	}
	var wait func() error
	var tp *postbox.TopicPublisher
	if window > 0 {
		tp = pub.Publisher("w.0.x", window)
		wait = pump(1, stop, func() error { return tp.PublishTo(ctx, subjects[seq.Add(1)%groups], body) })
	} else {
		wait = pump(inflight, stop, func() error {
			_, err := pub.Publish(ctx, subjects[seq.Add(1)%groups], body)
			return err
		})
	}
	time.Sleep(dur / 5)
	start, before := time.Now(), got.Load()
	time.Sleep(dur)
	rate := float64(got.Load()-before) / time.Since(start).Seconds()
	close(stop)
	if err := wait(); err != nil {
		return benchfmt.Row{}, err
	}
	name, note := "pubsub wildcard-heavy", "10,000 subscriptions (w.N.* and w.N.>), 4 match each publication"
	if tp != nil {
		if err := tp.Close(ctx); err != nil {
			return benchfmt.Row{}, err
		}
		name = "pubsub batched wildcard-heavy"
		note += fmt.Sprintf("; one goroutine, TopicPublisher.PublishTo round 2,500 subjects, window %d, %.0f publications a frame",
			window, float64(tp.Sent())/float64(max(tp.Frames(), 1)))
	}
	return benchfmt.Row{Name: name, Size: 64, MsgsPerSec: rate, BytesPerSec: rate * 64, Note: note}, nil
}

func benchMailbox(ctx context.Context, dial func() (*postbox.Client, error), size int, dur time.Duration, inflight int) (benchfmt.Row, error) {
	c, err := dial()
	if err != nil {
		return benchfmt.Row{}, err
	}
	defer c.Close()
	rc, err := dial()
	if err != nil {
		return benchfmt.Row{}, err
	}
	defer rc.Close()
	name := fmt.Sprintf("bench-pubsub-baseline-%d-%d", os.Getpid(), size)
	mb, err := c.Create(ctx, name)
	if err != nil {
		return benchfmt.Row{}, err
	}
	defer mb.Destroy(context.Background())
	cons, err := rc.Mailbox(name).Consume(ctx, postbox.AutoAck(), postbox.Prefetch(4096))
	if err != nil {
		return benchfmt.Row{}, err
	}
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := cons.Next(context.Background()); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	body := make([]byte, size)
	stop := make(chan struct{})
	wait := pump(inflight, stop, func() error { _, err := mb.Send(ctx, body); return err })
	time.Sleep(dur / 5)
	start, before := time.Now(), got.Load()
	time.Sleep(dur)
	rate := float64(got.Load()-before) / time.Since(start).Seconds()
	close(stop)
	werr := wait()
	cons.Close(context.Background())
	<-done
	if werr != nil {
		return benchfmt.Row{}, werr
	}
	return benchfmt.Row{Name: "mailbox send/consume", Size: size, MsgsPerSec: rate, BytesPerSec: rate * float64(size),
		Note: "same broker, one sender, one consumer (auto-ack)"}, nil
}

// benchRawSocket streams size-byte length-prefixed messages over a Unix
// socket pair, one writer and one reader, with no broker.
func benchRawSocket(size int, dur time.Duration) (float64, error) {
	dir, err := os.MkdirTemp("", "postbox-bench-raw-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			acc <- c
		}
		close(acc)
	}()
	w, err := net.Dial("unix", filepath.Join(dir, "s"))
	if err != nil {
		return 0, err
	}
	r := <-acc
	if r == nil {
		w.Close()
		return 0, fmt.Errorf("raw socket baseline: accept failed")
	}
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4+size)
		for {
			if _, err := io.ReadFull(r, buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	msg := make([]byte, 4+size)
	binary.LittleEndian.PutUint32(msg, uint32(size))
	batch := make([]byte, 0, 64*len(msg))
	for range 64 {
		batch = append(batch, msg...)
	}
	stop := time.Now().Add(dur + dur/5)
	var start time.Time
	var before int64
	for time.Now().Before(stop) {
		if start.IsZero() && time.Until(stop) <= dur {
			start, before = time.Now(), got.Load()
		}
		if _, err := w.Write(batch); err != nil {
			break
		}
	}
	rate := float64(got.Load()-before) / time.Since(start).Seconds()
	w.Close()
	<-done
	r.Close()
	return rate, nil
}
