package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/internal/benchfmt"
	"github.com/postbox-ipc/postbox/store/storebench"
)

// BenchmarkDurableAppend: Append+Wait, every record durable (fdatasync),
// with 1, 16 and 64 concurrent writers. Extra metrics: records per fsync,
// fsyncs per second, p50/p99 latency of one Append+Wait.
func BenchmarkDurableAppend(b *testing.B) { benchAppend(b, false) }

// BenchmarkNoSyncAppend: the same with fdatasync off: the store's own cost.
func BenchmarkNoSyncAppend(b *testing.B) { benchAppend(b, true) }

func benchAppend(b *testing.B, noSync bool) {
	for _, size := range []int{256, 4096} {
		for _, writers := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("size=%d/writers=%d", size, writers), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				r, err := storebench.Measure(context.Background(), b.TempDir(), noSync, writers, size, b.N, time.Time{})
				if err != nil {
					b.Fatal(err)
				}
				report(b, r)
			})
		}
	}
}

// BenchmarkRawFdatasync is the baseline: write+fdatasync in a loop on the
// same disk, one writer, no store.
func BenchmarkRawFdatasync(b *testing.B) {
	for _, size := range []int{256, 4096} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			r, err := storebench.RawFsync(b.TempDir(), size, b.N, time.Time{})
			if err != nil {
				b.Fatal(err)
			}
			report(b, r)
		})
	}
}

func report(b *testing.B, r storebench.Result) {
	p50, p99 := benchfmt.Latencies(r.Latencies)
	b.ReportMetric(r.PerSec(), "rec/s")
	b.ReportMetric(r.PerFsync(), "rec/fsync")
	b.ReportMetric(float64(r.Fsyncs)/r.Elapsed.Seconds(), "fsync/s")
	b.ReportMetric(float64(p50), "p50-ns")
	b.ReportMetric(float64(p99), "p99-ns")
}
