package rpcbench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRunMeasuresEveryRowBesideTheGRPCRow runs the whole benchmark
// briefly, the peer in this process, and checks its shape, not its speed.
func TestRunMeasuresEveryRowBesideTheGRPCRow(t *testing.T) {
	cfg := Config{Duration: 30 * time.Millisecond, Concurrency: []int{1, 3}, Size: 64, Rounds: 2}
	rows, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2*(3+len(Semantics)) {
		t.Fatalf("got %d rows, want %d", len(rows), 2*(3+len(Semantics)))
	}
	sems := map[string]int{}
	for _, r := range rows {
		if r.Calls <= 0 || r.CallsPerSec <= 0 || r.P50 <= 0 || r.P99 < r.P50 || r.Size != 64 {
			t.Errorf("%s %s x%d: no figure: %+v", r.Name, r.Semantics, r.Concurrency, r)
		}
		switch r.Name {
		case NameGRPC:
			if r.Baseline != "" || r.CallsRatio != 0 {
				t.Errorf("the gRPC row has a baseline: %+v", r)
			}
		case NamePostbox:
			sems[r.Semantics]++
			fallthrough
		default:
			if r.Baseline != NameGRPC || r.CallsRatio <= 0 || r.P50Ratio <= 0 {
				t.Errorf("%s %s x%d: not compared with the gRPC row: %+v", r.Name, r.Semantics, r.Concurrency, r)
			}
		}
	}
	for _, s := range Semantics {
		if sems[s] != 2 {
			t.Errorf("semantics %s: %d rows, want one per concurrency", s, sems[s])
		}
	}
	var table bytes.Buffer
	if err := WriteTable(&table, rows); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(table.String(), "\n"); n != len(rows)+1 {
		t.Errorf("table has %d lines:\n%s", n, table.String())
	}
}

func TestMediansTakeEachFigureFromTheMiddleRound(t *testing.T) {
	rounds := [][]Row{
		{{Name: "a", Calls: 1, CallsPerSec: 10, P50: 300, P99: 1}},
		{{Name: "a", Calls: 2, CallsPerSec: 30, P50: 100, P99: 9}},
		{{Name: "a", Calls: 3, CallsPerSec: 20, P50: 200, P99: 5}},
	}
	got := medians(rounds)[0]
	if got.Calls != 6 || got.CallsPerSec != 20 || got.P50 != 200 || got.P99 != 5 {
		t.Errorf("medians: %+v", got)
	}
}
