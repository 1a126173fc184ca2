package brokerbench

import (
	"context"
	"testing"
	"time"
)

// TestRunReportsEveryFigureWithItsBaseline runs the whole benchmark briefly
// and checks its shape, not its speed.
func TestRunReportsEveryFigureWithItsBaseline(t *testing.T) {
	cfg := Config{Duration: 200 * time.Millisecond, Samples: 200, Window: 16}
	rows, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 9 {
		t.Fatalf("got %d rows, want 9", len(rows))
	}
	for _, r := range rows {
		if r.MsgsPerSec <= 0 && r.P50 <= 0 {
			t.Errorf("%s %d B: no figure", r.Name, r.Size)
		}
		if r.Baseline != "" && r.Ratio <= 0 {
			t.Errorf("%s %d B: baseline %q but no ratio", r.Name, r.Size, r.Baseline)
		}
	}
}
