package broker

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram is a latency histogram with fixed buckets, safe for
// concurrent use without a lock: Observe is two atomic adds, so it can sit
// on a hot path. Bucket i counts durations of at most 2^i µs (1 µs to
// about 17 s, HistogramBuckets of them); a last bucket counts the longer
// ones. The zero value is an empty histogram.
//
// A Snapshot taken while Observe runs may count an observation in its
// bucket and not yet in Sum (or the reverse): Count is always the sum of
// the buckets, so the buckets and Count agree.
type Histogram struct {
	counts [HistogramBuckets + 1]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

// HistogramBuckets is the number of bounded buckets of a Histogram.
const HistogramBuckets = 25

// Observe counts one duration (a negative one as 0).
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	h.counts[bucketOf(d)].Add(1)
	h.sum.Add(int64(d))
}

// bucketOf is the index of the first bucket whose bound is at least d.
func bucketOf(d time.Duration) int {
	us := (uint64(d) + 999) / 1000 // whole microseconds, rounded up
	if us <= 1 {
		return 0
	}
	return min(bits.Len64(us-1), HistogramBuckets)
}

// HistogramBound is the upper bound of bucket i (i < HistogramBuckets).
func HistogramBound(i int) time.Duration { return time.Microsecond << i }

// HistogramSnapshot is a Histogram at one moment.
type HistogramSnapshot struct {
	// Counts[i] is the number of observations in bucket i alone (not
	// cumulative); Counts[HistogramBuckets] those above the last bound.
	Counts [HistogramBuckets + 1]uint64
	Count  uint64        // every observation: the sum of Counts
	Sum    time.Duration // of every observation
}

// Snapshot reads the histogram.
func (h *Histogram) Snapshot() HistogramSnapshot {
	var s HistogramSnapshot
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
		s.Count += s.Counts[i]
	}
	s.Sum = time.Duration(h.sum.Load())
	return s
}

// Quantile estimates the q-quantile (0 < q ≤ 1) as the upper bound of
// the bucket it falls in; 0 for an empty histogram, and the last bound
// for one that falls past it.
func (s *HistogramSnapshot) Quantile(q float64) time.Duration {
	if s.Count == 0 {
		return 0
	}
	rank := uint64(q * float64(s.Count))
	rank = max(rank, 1)
	var seen uint64
	for i, n := range s.Counts[:HistogramBuckets] {
		seen += n
		if seen >= rank {
			return HistogramBound(i)
		}
	}
	return HistogramBound(HistogramBuckets - 1)
}
