// Package storebench measures the durable store the way `postbox bench
// durable` reports it: durable Append+Wait throughput and latency with 1,
// 16 and 64 concurrent writers at 256 B and 4 KiB, records per fsync,
// beside a raw write+fdatasync loop on the same disk (the ceiling a single
// writer can reach) and a NoSync run (the cost of everything but the
// disk).
//
// The same Measure function backs the package's `go test -bench`
// benchmarks, so the command and the tests report the same figures.
package storebench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/postbox-ipc/postbox/internal/benchfmt"
	"github.com/postbox-ipc/postbox/store"
	"golang.org/x/sys/unix"
)

// Result is one measurement.
type Result struct {
	Records   int
	Elapsed   time.Duration
	Fsyncs    uint64
	Batches   uint64
	Latencies []time.Duration // one per record, unsorted
	CPU       time.Duration   // user+system time of the whole process
}

// PerSec is records per second.
func (r Result) PerSec() float64 { return float64(r.Records) / r.Elapsed.Seconds() }

// PerFsync is records per fsync (0 if none).
func (r Result) PerFsync() float64 {
	if r.Fsyncs == 0 {
		return 0
	}
	return float64(r.Records) / float64(r.Fsyncs)
}

// Measure opens a store in a fresh directory under dir and has writers
// goroutines Append size-byte messages and Wait for each, until n records
// are written (n > 0) or until stop passes (n == 0). Messages are acked in
// the same stream so the log is reclaimed as it goes, as in a broker whose
// receivers keep up.
func Measure(ctx context.Context, dir string, noSync bool, writers, size, n int, stop time.Time) (Result, error) {
	d, err := os.MkdirTemp(dir, "storebench-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(d)
	o := store.DefaultOptions(d)
	o.NoSync = noSync
	s, err := store.Open(o)
	if err != nil {
		return Result{}, err
	}
	defer s.Close()
	for w := range writers {
		if err := s.PutMailbox(store.MailboxDef{Name: mailbox(w), Capacity: -1}).Wait(ctx); err != nil {
			return Result{}, err
		}
	}
	before := s.DiskStats()
	cpu0 := cpuTime()
	var (
		count   atomic.Int64
		firstMu sync.Mutex // guards first
		first   error
		lats    = make([][]time.Duration, writers)
		wg      sync.WaitGroup
	)
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			body := make([]byte, size)
			m := &store.Message{Mailbox: mailbox(w), Body: body}
			l := make([]time.Duration, 0, 1024)
			for seq := uint64(1); ; seq++ {
				// Each writer makes at least one record, so a time-boxed row
				// on a loaded machine still measures something.
				if n > 0 && count.Add(1) > int64(n) || n == 0 && seq > 1 && time.Now().After(stop) || ctx.Err() != nil {
					break
				}
				m.Seq = seq
				t0 := time.Now()
				err := s.Append(m).Wait(ctx)
				l = append(l, time.Since(t0))
				if err == nil && seq > 1 {
					s.Ack(m.Mailbox, seq-1) // not waited: rides the next batch
				}
				if err != nil {
					firstMu.Lock()
					if first == nil {
						first = err
					}
					firstMu.Unlock()
					break
				}
			}
			lats[w] = l
		})
	}
	wg.Wait()
	r := Result{Elapsed: time.Since(start), CPU: cpuTime() - cpu0}
	after := s.DiskStats()
	r.Fsyncs, r.Batches = after.Fsyncs-before.Fsyncs, after.Batches-before.Batches
	for _, l := range lats {
		r.Latencies = append(r.Latencies, l...)
	}
	r.Records = len(r.Latencies)
	if first != nil {
		return r, first
	}
	return r, s.Close()
}

// RawFsync writes size-byte records to one file in dir, each followed by
// fdatasync: what one writer gets from the disk with no store at all.
func RawFsync(dir string, size, n int, stop time.Time) (Result, error) {
	f, err := os.CreateTemp(dir, "storebench-raw-")
	if err != nil {
		return Result{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, size)
	var r Result
	cpu0 := cpuTime()
	start := time.Now()
	for i := 0; n > 0 && i < n || n == 0 && time.Now().Before(stop); i++ {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			return r, err
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return r, err
		}
		r.Latencies = append(r.Latencies, time.Since(t0))
		r.Fsyncs++
	}
	r.Elapsed, r.CPU, r.Records, r.Batches = time.Since(start), cpuTime()-cpu0, len(r.Latencies), r.Fsyncs
	return r, nil
}

// Run measures every figure in one run on dir and returns rows with
// baselines and ratios filled. quick shortens each figure to a quarter of a
// second (about 3 s in all) from 2 s (about 20 s).
func Run(ctx context.Context, dir string, quick bool) ([]benchfmt.Row, error) {
	per := 2 * time.Second
	if quick {
		per = 250 * time.Millisecond
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	const raw = "baseline: write+fdatasync, 1 writer"
	var rows []benchfmt.Row
	for _, size := range []int{256, 4096} {
		r, err := RawFsync(dir, size, 0, time.Now().Add(per))
		if err != nil {
			return rows, fmt.Errorf("raw fsync: %w", err)
		}
		rows = append(rows, row(raw, "", size, r, fmt.Sprintf("%.0f fsync/s", float64(r.Fsyncs)/r.Elapsed.Seconds())))
		for _, w := range []int{1, 16, 64} {
			r, err := Measure(ctx, dir, false, w, size, 0, time.Now().Add(per))
			if err != nil {
				return rows, fmt.Errorf("durable, %d writers: %w", w, err)
			}
			rows = append(rows, row(fmt.Sprintf("store durable append+wait, %s", writersName(w)), raw, size, r,
				fmt.Sprintf("%.1f rec/fsync, %.0f fsync/s", r.PerFsync(), float64(r.Fsyncs)/r.Elapsed.Seconds())))
		}
		r, err = Measure(ctx, dir, true, 64, size, 0, time.Now().Add(per))
		if err != nil {
			return rows, fmt.Errorf("nosync: %w", err)
		}
		rows = append(rows, row("store NoSync append+wait, 64 writers", raw, size, r,
			fmt.Sprintf("%.1f rec/batch, no fsync", float64(r.Records)/float64(max(r.Batches, 1)))))
	}
	benchfmt.Fill(rows)
	return rows, nil
}

func row(name, baseline string, size int, r Result, note string) benchfmt.Row {
	p50, p99 := benchfmt.Latencies(r.Latencies)
	return benchfmt.Row{
		Name: name, Size: size, P50: p50, P99: p99,
		MsgsPerSec: r.PerSec(), BytesPerSec: r.PerSec() * float64(size),
		CPUSeconds: r.CPU.Seconds(), Baseline: baseline, Note: note,
	}
}

func writersName(w int) string {
	if w == 1 {
		return "1 writer"
	}
	return fmt.Sprintf("%d writers", w)
}

func mailbox(w int) string { return fmt.Sprintf("bench-%d", w) }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
