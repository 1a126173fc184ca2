package brokerbench

import (
	"context"
	"strings"
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
	if len(rows) != 8 {
		t.Fatalf("got %d rows, want 8", len(rows))
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

// TestLoadMovesCountMessagesWithSeveralClientsOnEachSide runs the
// throughput figure with a count, several senders and receivers, and
// checks it says so.
func TestLoadMovesCountMessagesWithSeveralClientsOnEachSide(t *testing.T) {
	cfg := Config{Duration: 50 * time.Millisecond, Samples: 100, Window: 8, Sizes: []int{100}, Count: 2000, Senders: 3, Receivers: 2}
	var steps []string
	cfg.Progress = func(s string) { steps = append(steps, s) }
	rows, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 {
		t.Fatalf("got %d rows, want 5 (3 throughput and 2 latency at one size)", len(rows))
	}
	r := rows[0]
	if r.Name != "mailbox throughput (3 senders, 2 receivers, acks on)" || r.Size != 100 || r.MsgsPerSec <= 0 ||
		!strings.Contains(r.Note, "2000 messages in") {
		t.Errorf("row %+v", r)
	}
	if rows[3].Size != 100 || len(rows[3].Samples) != 100 || len(rows[4].Samples) != 100 {
		t.Errorf("latency rows %+v / %+v: want 100 samples each at 100 B", rows[3].Name, rows[4].Name)
	}
	if strings.Join(steps, "; ") != "throughput, 100 B; latency, 100 B" {
		t.Errorf("progress %q", steps)
	}
}
