// Package rpcbench measures RPC over postbox beside gRPC-go and a raw Unix
// socket, in one run, for `postbox bench rpc`: unary calls with a small
// payload at 1 and 16 concurrent callers for each invocation semantics
// (package rpc's raw layer through a broker to an rpc.Server echoing the
// body), the same calls to a gRPC-go echo
// server over unix:// (package grpcpeer), and a bare request/response
// round trip over a Unix socket (the floor: no framing, no broker, no
// HTTP/2); and, to show what the rpc layer costs, the bare CALL
// primitive (Mailbox.Call to a consumer answering with Message.Reply).
// The gRPC server, the raw echo server and the postbox servers run in a
// peer process, so every row crosses a process boundary to its server;
// every row is compared with the gRPC row of the same concurrency.
package rpcbench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/postbox-ipc/postbox/internal/benchfmt"
)

// Config says what to measure.
type Config struct {
	// Socket of an existing broker; empty runs one in this process.
	Socket string
	// Duration of each row (after a warm-up of a tenth of it).
	Duration time.Duration
	// Concurrency lists the numbers of concurrent callers; nil is 1, 16.
	Concurrency []int
	// Size of each request and reply body; 0 is 64.
	Size int
	// Rounds of every row (each figure is the median of its rounds); 0
	// is 1.
	Rounds int
	// Peer starts the peer process (see RunPeer); nil runs the peer's
	// servers in this process instead (for tests).
	Peer PeerStarter
}

// DefaultConfig measures for about twenty seconds in all.
func DefaultConfig() Config {
	return Config{Duration: 2 * time.Second, Concurrency: []int{1, 16}, Size: 64}
}

// Row names.
const (
	NamePostbox = "postbox rpc"
	NameBare    = "postbox Mailbox.Call, no rpc layer"
	NameGRPC    = "grpc-go unary, unix://"
	NameRaw     = "raw unix socket round trip"
)

// Row is one measured figure.
type Row struct {
	Name        string  `json:"name"`
	Semantics   string  `json:"semantics"` // "" for the gRPC and raw rows
	Concurrency int     `json:"concurrency"`
	Size        int     `json:"size"`
	Calls       int64   `json:"calls"`
	CallsPerSec float64 `json:"calls_per_sec"`
	P50         int64   `json:"p50_ns"`
	P99         int64   `json:"p99_ns"`
	// Baseline names the peer row this one is compared with (the gRPC row
	// of the same concurrency); empty on that row itself.
	Baseline string `json:"baseline,omitempty"`
	// CallsRatio is calls/s divided by the baseline's; P50Ratio is p50
	// divided by the baseline's (below 1 is faster).
	CallsRatio float64 `json:"calls_ratio,omitempty"`
	P50Ratio   float64 `json:"p50_ratio,omitempty"`
	Note       string  `json:"note,omitempty"`
}

// Run measures every row and returns them with ratios filled.
func Run(ctx context.Context, cfg Config) ([]Row, error) {
	if cfg.Duration <= 0 {
		cfg.Duration = DefaultConfig().Duration
	}
	if len(cfg.Concurrency) == 0 {
		cfg.Concurrency = DefaultConfig().Concurrency
	}
	if cfg.Size <= 0 {
		cfg.Size = DefaultConfig().Size
	}
	env, err := setup(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer env.close()
	rounds := make([][]Row, max(cfg.Rounds, 1))
	for i := range rounds {
		if rounds[i], err = env.round(ctx, cfg); err != nil {
			return nil, err
		}
	}
	rows := medians(rounds)
	fill(rows)
	return rows, nil
}

// round measures every row once.
func (env *env) round(ctx context.Context, cfg Config) ([]Row, error) {
	var rows []Row
	for _, n := range cfg.Concurrency {
		g, err := env.grpcRow(ctx, cfg, n)
		if err != nil {
			return nil, fmt.Errorf("grpc, %d callers: %w", n, err)
		}
		rows = append(rows, g)
		for _, sem := range Semantics {
			r, err := env.postboxRow(ctx, cfg, sem, n)
			if err != nil {
				return nil, fmt.Errorf("postbox %s, %d callers: %w", sem, n, err)
			}
			rows = append(rows, r)
		}
		b, err := env.bareRow(ctx, cfg, n)
		if err != nil {
			return nil, fmt.Errorf("bare call, %d callers: %w", n, err)
		}
		rows = append(rows, b)
		r, err := env.rawRow(ctx, cfg, n)
		if err != nil {
			return nil, fmt.Errorf("raw, %d callers: %w", n, err)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// medians folds rounds of the same rows into one: each figure the median
// of its rounds' (calls added up), so that a round disturbed by the rest
// of a noisy machine moves no figure.
func medians(rounds [][]Row) []Row {
	rows := slices.Clone(rounds[0])
	if len(rounds) == 1 {
		return rows
	}
	med := func(i int, f func(Row) float64) float64 {
		v := make([]float64, len(rounds))
		for k, r := range rounds {
			v[k] = f(r[i])
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	for i := range rows {
		rows[i].Calls = 0
		for _, r := range rounds {
			rows[i].Calls += r[i].Calls
		}
		rows[i].CallsPerSec = med(i, func(r Row) float64 { return r.CallsPerSec })
		rows[i].P50 = int64(med(i, func(r Row) float64 { return float64(r.P50) }))
		rows[i].P99 = int64(med(i, func(r Row) float64 { return float64(r.P99) }))
		rows[i].Note += fmt.Sprintf("; median of %d rounds", len(rounds))
	}
	return rows
}

// fill sets the ratios of every row against the gRPC row of its
// concurrency.
func fill(rows []Row) {
	for i := range rows {
		r := &rows[i]
		if r.Name == NameGRPC {
			continue
		}
		for _, b := range rows {
			if b.Name != NameGRPC || b.Concurrency != r.Concurrency {
				continue
			}
			r.Baseline = b.Name
			if b.CallsPerSec > 0 {
				r.CallsRatio = r.CallsPerSec / b.CallsPerSec
			}
			if b.P50 > 0 {
				r.P50Ratio = float64(r.P50) / float64(b.P50)
			}
		}
	}
}

// WriteJSON prints one JSON object per row.
func WriteJSON(w io.Writer, rows []Row) error {
	enc := json.NewEncoder(w)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// WriteTable prints rows as an aligned table.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tSEMANTICS\tCALLERS\tSIZE\tCALLS/S\tP50\tP99\tCALLS/S VS GRPC\tP50 VS GRPC")
	for _, r := range rows {
		sem, cr, pr := r.Semantics, "-", "-"
		if sem == "" {
			sem = "-"
		}
		if r.CallsRatio > 0 {
			cr = fmt.Sprintf("%.2fx", r.CallsRatio)
		}
		if r.P50Ratio > 0 {
			pr = fmt.Sprintf("%.2fx", r.P50Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d B\t%s\t%s\t%s\t%s\t%s\n", r.Name, sem, r.Concurrency, r.Size,
			rate(r.CallsPerSec), ns(r.P50), ns(r.P99), cr, pr)
	}
	return tw.Flush()
}

func ns(v int64) string {
	if v == 0 {
		return "-"
	}
	return time.Duration(v).Round(100 * time.Nanosecond).String()
}

func rate(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// caller makes one call for worker w (0 <= w < concurrency); each worker
// owns what it passes in and out.
type caller func(ctx context.Context, w int) error

// measure runs concurrency workers calling call in a loop: a warm-up of a
// tenth of d, then d measured. Every worker makes at least one measured
// call, so a tiny d still yields a figure.
func measure(ctx context.Context, concurrency int, d time.Duration, call caller) (Row, error) {
	row := Row{Concurrency: concurrency}
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		wg        sync.WaitGroup
		first     error
		mu        sync.Mutex // guards first
	)
	lats := make([][]time.Duration, concurrency)
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			samples := make([]time.Duration, 0, 1<<12)
			for {
				on := measuring.Load()
				if on && stop.Load() && len(samples) > 0 {
					break
				}
				t0 := time.Now()
				if err := call(ctx, w); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					stop.Store(true)
					measuring.Store(true)
					break
				}
				if on {
					samples = append(samples, time.Since(t0))
				}
			}
			lats[w] = samples
		}()
	}
	timer := func(d time.Duration) {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	timer(d / 10)
	start := time.Now()
	measuring.Store(true)
	timer(d)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	if first != nil {
		return row, first
	}
	if err := ctx.Err(); err != nil {
		return row, err
	}
	all := slices.Concat(lats...)
	row.Calls = int64(len(all))
	row.CallsPerSec = float64(len(all)) / elapsed.Seconds()
	row.P50, row.P99 = benchfmt.Latencies(all)
	return row, nil
}
