// Package benchfmt is the one result format shared by every `postbox bench`
// figure: a Row per measured figure, printed either as an aligned table or as
// one JSON object per line. Keeping it in one place means the broker, shared
// memory and durability benchmarks report the same fields the same way, and
// every figure carries the baseline it was measured beside.
package benchfmt

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
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
	P50 int64 `json:"p50_ns"`
	P99 int64 `json:"p99_ns"`
	// MsgsPerSec and BytesPerSec are throughput (0 for latency figures).
	MsgsPerSec  float64 `json:"msgs_per_sec"`
	BytesPerSec float64 `json:"bytes_per_sec"`
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

// Fill computes Ratio for every row that names a Baseline present in rows.
// A latency row (P50 > 0, no throughput) is compared by p50; a throughput
// row by messages per second.
func Fill(rows []Row) {
	for i := range rows {
		r := &rows[i]
		if r.Baseline == "" {
			continue
		}
		for _, b := range rows {
			if b.Name != r.Baseline || b.Size != r.Size {
				continue
			}
			switch {
			case r.MsgsPerSec > 0 && b.MsgsPerSec > 0:
				r.Ratio = r.MsgsPerSec / b.MsgsPerSec
			case r.P50 > 0 && b.P50 > 0:
				r.Ratio = float64(r.P50) / float64(b.P50)
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
	fmt.Fprintln(tw, "FIGURE\tSIZE\tP50\tP99\tMSGS/S\tMB/S\tCPU s\tVS BASELINE\tNOTE")
	for _, r := range rows {
		ratio := "-"
		if r.Ratio != 0 {
			ratio = fmt.Sprintf("%.2fx %s", r.Ratio, r.Baseline)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Name, size(r.Size), ns(r.P50), ns(r.P99), rate(r.MsgsPerSec),
			rate(r.BytesPerSec/1e6), cpu(r.CPUSeconds), ratio, r.Note)
	}
	return tw.Flush()
}

func size(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func ns(v int64) string {
	if v == 0 {
		return "-"
	}
	return time.Duration(v).String()
}

func rate(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.1f", v)
}

func cpu(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}
