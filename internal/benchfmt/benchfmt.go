// Package benchfmt is the one result format shared by every `postbox bench`
// figure: a Row per measured figure, printed as a table that fits 100
// columns (table.go), as CSV, or as one JSON object per line. Keeping it in
// one place means the broker, shared memory and durability benchmarks
// report the same fields the same way, and every figure carries the
// baseline it was measured beside. A field that does not apply to a figure
// (a latency figure's throughput, say) is left out of every format rather
// than printed as zero.
package benchfmt

import (
	"encoding/json"
	"io"
	"slices"
	"time"
)

// Row is one measured figure.
type Row struct {
	// Name says what was measured, e.g. "mailbox throughput" or
	// "baseline: unix socket echo".
	Name string `json:"name"`
	// Size is the message size in bytes.
	Size int `json:"size"`
	// P50 and P99 are latency percentiles in nanoseconds (0 when the figure
	// is a throughput figure).
	P50 int64 `json:"p50_ns,omitempty"`
	P99 int64 `json:"p99_ns,omitempty"`
	// Samples are the latency samples behind P50 and P99, sorted, when the
	// benchmark keeps them (for plots; not printed).
	Samples []time.Duration `json:"-"`
	// MsgsPerSec and BytesPerSec are throughput (0 for latency figures).
	MsgsPerSec  float64 `json:"msgs_per_sec,omitempty"`
	BytesPerSec float64 `json:"bytes_per_sec,omitempty"`
	// CPUSeconds is the CPU time (user+system) consumed while measuring, if
	// the benchmark records it.
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
	// Baseline names the row this figure is compared with; empty for a
	// baseline itself.
	Baseline string `json:"baseline,omitempty"`
	// Ratio is this figure relative to its baseline: for throughput,
	// msgs/s divided by the baseline's; for latency, p50 divided by the
	// baseline's p50. 0 when there is no baseline.
	Ratio float64 `json:"ratio,omitempty"`
	// Ceiling names a second row to compare with, the best the figure
	// could do (e.g. the pipelined raw socket); CeilingRatio is the ratio
	// to it, computed as Ratio is.
	Ceiling      string  `json:"ceiling,omitempty"`
	CeilingRatio float64 `json:"ceiling_ratio,omitempty"`
	// Note carries anything else worth knowing (e.g. "batched 64").
	Note string `json:"note,omitempty"`
}

// Latencies summarises samples into p50 and p99.
// It sorts samples in place.
func Latencies(samples []time.Duration) (p50, p99 int64) {
	if len(samples) == 0 {
		return 0, 0
	}
	slices.Sort(samples)
	at := func(q float64) int64 {
		i := int(q * float64(len(samples)-1))
		return int64(samples[i])
	}
	return at(0.50), at(0.99)
}

// Fill computes Ratio (and CeilingRatio) for every row that names a
// Baseline (a Ceiling) present in rows with the same size. A latency row
// (P50 > 0, no throughput) is compared by p50; a throughput row by
// messages per second.
func Fill(rows []Row) {
	for i := range rows {
		r := &rows[i]
		r.Ratio = ratio(rows, r, r.Baseline)
		r.CeilingRatio = ratio(rows, r, r.Ceiling)
	}
}

func ratio(rows []Row, r *Row, name string) float64 {
	if name == "" {
		return 0
	}
	for _, b := range rows {
		if b.Name != name || b.Size != r.Size {
			continue
		}
		switch {
		case r.MsgsPerSec > 0 && b.MsgsPerSec > 0:
			return r.MsgsPerSec / b.MsgsPerSec
		case r.P50 > 0 && b.P50 > 0:
			return float64(r.P50) / float64(b.P50)
		}
	}
	return 0
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
