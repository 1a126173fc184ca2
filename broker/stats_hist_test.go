package broker

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/mailbox"
)

func TestHistogramBucketIsTheFirstBoundAtLeastTheDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{-5, 0}, {0, 0}, {1, 0}, {time.Microsecond, 0},
		{time.Microsecond + 1, 1}, {2 * time.Microsecond, 1},
		{3 * time.Microsecond, 2}, {4 * time.Microsecond, 2}, {4*time.Microsecond + 1, 3},
		{time.Millisecond, 10}, // 1000 µs ≤ 1024 µs
		{HistogramBound(HistogramBuckets - 1), HistogramBuckets - 1},
		{HistogramBound(HistogramBuckets-1) + 1, HistogramBuckets},
		{time.Hour, HistogramBuckets},
	} {
		if got := bucketOf(max(tc.d, 0)); got != tc.want {
			t.Errorf("bucketOf(%v) = %d, want %d", tc.d, got, tc.want)
		}
		if tc.want < HistogramBuckets && max(tc.d, 0) > HistogramBound(tc.want) {
			t.Errorf("%v is past its bucket's bound %v", tc.d, HistogramBound(tc.want))
		}
		if tc.want > 0 && tc.want < HistogramBuckets && tc.d <= HistogramBound(tc.want-1) {
			t.Errorf("%v fits the bucket before %d", tc.d, tc.want)
		}
	}
}

func TestHistogramSnapshotCountIsTheSumOfItsBuckets(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				h.Observe(time.Duration(g*1000+i) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	s := h.Snapshot()
	var sum uint64
	for _, n := range s.Counts {
		sum += n
	}
	if s.Count != 4000 || sum != 4000 {
		t.Fatalf("count %d, buckets sum to %d; want 4000", s.Count, sum)
	}
	// 0..3999 µs: sum 7998000 µs.
	if s.Sum != 7998000*time.Microsecond {
		t.Fatalf("sum %v", s.Sum)
	}
	if q := s.Quantile(0.5); q != 2048*time.Microsecond {
		t.Fatalf("median bound %v, want 2.048ms", q)
	}
	if q := (&HistogramSnapshot{}).Quantile(0.99); q != 0 {
		t.Fatalf("empty quantile %v", q)
	}
}

func BenchmarkHistogramObserve(b *testing.B) {
	var h Histogram
	for i := 0; b.Loop(); i++ {
		h.Observe(time.Duration(i))
	}
}

// BenchmarkStatsDelivered is what a first delivery pays for the
// send-to-delivery histogram: an atomic load of its connection's read
// time and Observe. BenchmarkStatsClock is the clock read it avoids.
func BenchmarkStatsDelivered(b *testing.B) {
	var s stats
	var readAt atomic.Int64
	s.start()
	readAt.Store(s.startedUnix + 5000)
	msg := &mailbox.Message{SentUnixNano: s.startedUnix}
	for b.Loop() {
		s.delivered(msg, readAt.Load())
	}
}

func BenchmarkStatsClock(b *testing.B) {
	var s stats
	s.start()
	var sum int64
	for b.Loop() {
		sum += s.now()
	}
	_ = sum
}

func BenchmarkHistogramObserveParallel(b *testing.B) {
	var h Histogram
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.Observe(3 * time.Microsecond)
		}
	})
}
