// Package brokerbench measures the broker beside a raw Unix socket, in one
// run, for `postbox bench` and the go test benchmarks: mailbox throughput
// with one sender and one receiver (pipelined, acks on) and send-to-receive
// latency, each next to a raw Unix-socket echo doing the same work without
// a broker.
package brokerbench

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/benchfmt"
)

// Config says what to measure.
type Config struct {
	// Socket of an existing broker; empty starts one in this process.
	Socket string
	// URL, when set, is a broker measured the same way beside the Unix
	// socket in the same run (tls://host:port with TLS, or tcp://), e.g.
	// the same broker's TLS listener.
	URL string
	TLS *tls.Config
	// Duration of each throughput figure.
	Duration time.Duration
	// Samples of each latency figure.
	Samples int
	// Window is how many sends the sender keeps in flight.
	Window int

	// (load.go) Sizes replaces the message sizes measured (64 B and
	// 4 KiB for throughput, 64 B for latency); Count, when set, has each
	// throughput figure move that many messages instead of running for
	// Duration; Senders and Receivers are the clients on each side (1
	// when 0); Progress, when set, is told each figure before it runs.
	Sizes              []int
	Count              int
	Senders, Receivers int
	Progress           func(figure string)

	durable bool // the throughput figure's mailbox is durable (RunDurableSocket)
}

// DefaultConfig measures for about ten seconds in all.
func DefaultConfig() Config {
	return Config{Duration: 2 * time.Second, Samples: 20000, Window: 1024}
}

// Names of the figures, so callers and docs can refer to them.
const (
	NameThroughput    = "mailbox throughput (1 sender, 1 receiver, acks on)"
	NameRawThroughput = "baseline: raw unix socket echo, pipelined"
	NameRawPerWrite   = "raw unix socket echo, one write per message"
	NameLatency       = "mailbox send→receive latency"
	NameRawLatency    = "baseline: raw unix socket echo round trip"
)

// Run measures every figure and returns the rows with ratios filled.
func Run(ctx context.Context, cfg Config) ([]benchfmt.Row, error) {
	dir, err := os.MkdirTemp("", "postbox-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	sock := cfg.Socket
	if sock == "" {
		sock = filepath.Join(dir, "broker.sock")
		stop, err := startBroker(sock)
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	var rows []benchfmt.Row
	for _, size := range cfg.throughputSizes() {
		cfg.progress("throughput", size)
		r, err := Throughput(ctx, sock, size, cfg)
		if err != nil {
			return nil, fmt.Errorf("throughput %d B: %w", size, err)
		}
		raw, err := RawThroughput(ctx, filepath.Join(dir, "raw.sock"), size, cfg)
		if err != nil {
			return nil, fmt.Errorf("raw throughput %d B: %w", size, err)
		}
		perWrite, err := RawPerWrite(ctx, filepath.Join(dir, "raw1.sock"), size, cfg)
		if err != nil {
			return nil, fmt.Errorf("raw per-write throughput %d B: %w", size, err)
		}
		r.Baseline, perWrite.Baseline = raw.Name, raw.Name
		rows = append(rows, r, raw, perWrite)
	}
	lat, err := latencies(ctx, sock, filepath.Join(dir, "rawlat.sock"), cfg, &rows) // load.go
	if err != nil {
		return nil, err
	}
	if cfg.URL != "" {
		// The same figures through the URL, each beside its Unix-socket
		// row as the baseline.
		remote := []postbox.DialOption{postbox.WithURL(cfg.URL)}
		if cfg.TLS != nil {
			remote = append(remote, postbox.WithTLS(cfg.TLS))
		}
		over := " over " + cfg.URL
		for i, size := range cfg.throughputSizes() {
			cfg.progress("throughput"+over, size)
			r, err := throughput(ctx, remote, size, cfg)
			if err != nil {
				return nil, fmt.Errorf("throughput %d B%s: %w", size, over, err)
			}
			r.Name, r.Baseline = r.Name+over, rows[3*i].Name
			rows = append(rows, r)
		}
		cfg.progress("latency"+over, lat.Size)
		r, err := latency(ctx, remote, lat.Size, cfg.Samples)
		if err != nil {
			return nil, fmt.Errorf("latency%s: %w", over, err)
		}
		r.Name, r.Baseline = r.Name+over, lat.Name
		rows = append(rows, r)
	}
	benchfmt.Fill(rows)
	return rows, nil
}

func startBroker(sock string) (stop func(), err error) {
	l, err := broker.Listen(sock, 0o600)
	if err != nil {
		return nil, err
	}
	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b := broker.New(cfg)
	done := make(chan struct{})
	go func() { b.Serve(l); close(done) }()
	return func() { b.Close(); <-done }, nil
}

var mailboxSeq atomic.Uint64

func tempMailbox(ctx context.Context, c *postbox.Client, capacity int64, more ...postbox.CreateOption) (*postbox.Mailbox, error) {
	name := fmt.Sprintf("bench-%d-%d", os.Getpid(), mailboxSeq.Add(1))
	return c.Create(ctx, name, append([]postbox.CreateOption{postbox.Capacity(capacity)}, more...)...)
}

// Throughput moves size-byte messages from one sender client (Window sends
// in flight) to one receiver client (a consumer acking every message) for
// cfg.Duration.
func Throughput(ctx context.Context, sock string, size int, cfg Config) (benchfmt.Row, error) {
	return throughput(ctx, []postbox.DialOption{postbox.WithSocket(sock)}, size, cfg)
}

func throughput(ctx context.Context, dial []postbox.DialOption, size int, cfg Config) (benchfmt.Row, error) {
	if cfg.Count > 0 || cfg.Senders > 1 || cfg.Receivers > 1 {
		return load(ctx, dial, size, cfg) // load.go
	}
	row := benchfmt.Row{Name: NameThroughput, Size: size, Note: fmt.Sprintf("Publisher, %d sends in flight", cfg.Window)}
	sc, err := postbox.Dial(ctx, dial...)
	if err != nil {
		return row, err
	}
	defer sc.Close()
	rc, err := postbox.Dial(ctx, dial...)
	if err != nil {
		return row, err
	}
	defer rc.Close()
	var opts []postbox.CreateOption
	if cfg.durable {
		opts = append(opts, postbox.Durable())
	}
	mb, err := tempMailbox(ctx, sc, 4096, opts...)
	if err != nil {
		return row, err
	}
	defer mb.Destroy(context.Background())
	cons, err := rc.Mailbox(mb.Name()).Consume(ctx, postbox.Prefetch(1024))
	if err != nil {
		return row, err
	}
	defer cons.Close(ctx)

	body := make([]byte, size)
	var stop atomic.Bool
	pub := mb.Publisher(cfg.Window)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if err := pub.Send(ctx, body); err != nil {
				errc <- err
				return
			}
		}
		if err := pub.Flush(ctx); err != nil {
			errc <- err
		}
	}()
	var received int64
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	// The clock is read every 64 messages: once per message it was 4.5 %
	// of the receiving process's CPU, work no broker does.
	for received&63 != 0 || time.Now().Before(deadline) {
		m, err := cons.Next(ctx)
		if err != nil {
			stop.Store(true)
			wg.Wait()
			return row, err
		}
		m.AckNoWait()
		received++
	}
	elapsed := time.Since(start)
	stop.Store(true)
	// Drain so the senders finish.
	go func() {
		for {
			m, err := cons.Next(ctx)
			if err != nil {
				return
			}
			m.AckNoWait()
		}
	}()
	wg.Wait()
	select {
	case err := <-errc:
		return row, err
	default:
	}
	row.MsgsPerSec = float64(received) / elapsed.Seconds()
	row.BytesPerSec = row.MsgsPerSec * float64(size)
	if f := pub.Frames(); f > 0 {
		row.Note += fmt.Sprintf(", %.0f per SEND frame", float64(pub.Sent())/float64(f))
	}
	return row, nil
}

// Latency measures the time from a Send call in one client to the message
// coming out of Next in another: two socket hops through the broker, the
// same as one raw echo round trip.
func Latency(ctx context.Context, sock string, size, samples int) (benchfmt.Row, error) {
	return latency(ctx, []postbox.DialOption{postbox.WithSocket(sock)}, size, samples)
}

func latency(ctx context.Context, dial []postbox.DialOption, size, samples int) (benchfmt.Row, error) {
	row := benchfmt.Row{Name: NameLatency, Size: size}
	sc, err := postbox.Dial(ctx, dial...)
	if err != nil {
		return row, err
	}
	defer sc.Close()
	rc, err := postbox.Dial(ctx, dial...)
	if err != nil {
		return row, err
	}
	defer rc.Close()
	mb, err := tempMailbox(ctx, sc, -1)
	if err != nil {
		return row, err
	}
	defer mb.Destroy(context.Background())
	cons, err := rc.Mailbox(mb.Name()).Consume(ctx, postbox.Prefetch(16), postbox.AutoAck())
	if err != nil {
		return row, err
	}
	defer cons.Close(ctx)
	body := make([]byte, size)
	lat := make([]time.Duration, 0, samples)
	for i := range samples + samples/10 {
		t0 := time.Now()
		if _, err := mb.Send(ctx, body); err != nil {
			return row, err
		}
		if _, err := cons.Next(ctx); err != nil {
			return row, err
		}
		if i >= samples/10 { // warm-up discarded
			lat = append(lat, time.Since(t0))
		}
	}
	row.P50, row.P99 = benchfmt.Latencies(lat)
	row.Samples = lat
	return row, nil
}

// echoConn is a connection to a one-shot echo server; Close ends both.
type echoConn struct {
	net.Conn
	l net.Listener
}

func (e echoConn) Close() error {
	e.l.Close()
	return e.Conn.Close()
}

// dialEcho starts an echo server at path and connects to it.
func dialEcho(path string) (net.Conn, error) {
	os.Remove(path)
	l, err := echoServer(path)
	if err != nil {
		return nil, err
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		l.Close()
		return nil, err
	}
	return echoConn{c, l}, nil
}

// echoServer accepts one connection and echoes everything back.
func echoServer(path string) (net.Listener, error) {
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	return l, nil
}

// RawThroughput pipelines size-byte frames (a 4-byte length prefix, as a
// minimal protocol would) through an echo server in 64 KiB writes and
// counts frames read back per second: the ceiling for the same bytes with
// no broker and no per-message work.
func RawThroughput(ctx context.Context, path string, size int, cfg Config) (benchfmt.Row, error) {
	return rawStream(path, size, cfg, true, benchfmt.Row{Name: NameRawThroughput, Size: size})
}

// RawPerWrite is RawThroughput with one write(2) per frame, as a program
// that sends each message when it has it would do: the socket cost a
// broker-less design pays per message.
func RawPerWrite(ctx context.Context, path string, size int, cfg Config) (benchfmt.Row, error) {
	return rawStream(path, size, cfg, false, benchfmt.Row{Name: NameRawPerWrite, Size: size, Note: "no framing work, no broker"})
}

// rawStream streams frames through an echo server for cfg.Duration,
// batched into 64 KiB writes or one write per frame.
func rawStream(path string, size int, cfg Config, batched bool, row benchfmt.Row) (benchfmt.Row, error) {
	c, err := dialEcho(path)
	if err != nil {
		return row, err
	}
	defer c.Close()
	frame := make([]byte, 4+size)
	out := frame
	if batched {
		out = make([]byte, 0, 64<<10)
		for len(out)+len(frame) <= cap(out) {
			out = append(out, frame...)
		}
	}
	var stop atomic.Bool
	go func() {
		for !stop.Load() {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	var got int64
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	for time.Now().Before(deadline) {
		n, err := c.Read(buf)
		if err != nil {
			return row, err
		}
		got += int64(n)
	}
	elapsed := time.Since(start)
	stop.Store(true)
	c.Close()
	row.MsgsPerSec = float64(got/int64(len(frame))) / elapsed.Seconds()
	row.BytesPerSec = row.MsgsPerSec * float64(size)
	return row, nil
}

// RawLatency measures a size-byte write and its echo read back.
func RawLatency(ctx context.Context, path string, size, samples int) (benchfmt.Row, error) {
	row := benchfmt.Row{Name: NameRawLatency, Size: size}
	c, err := dialEcho(path)
	if err != nil {
		return row, err
	}
	defer c.Close()
	lat, err := roundTrips(c, size, samples)
	if err != nil {
		return row, err
	}
	row.P50, row.P99 = benchfmt.Latencies(lat)
	row.Samples = lat
	return row, nil
}
