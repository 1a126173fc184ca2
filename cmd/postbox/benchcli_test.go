package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/internal/benchfmt"
	"github.com/postbox-ipc/postbox/internal/brokerbench"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

func TestCLIBenchCLIReportsEachLineRateBesideTheBroker(t *testing.T) {
	r := ok(t, nil, "", "bench", "cli", "-n", "2000", "--duration", "100ms", "-o", "json")
	var rows []benchfmt.Row
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var row benchfmt.Row
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		rows = append(rows, row)
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows, want the broker's and three CLI figures:\n%s", len(rows), r.stdout)
	}
	for _, row := range rows[1:] {
		if row.Baseline != rows[0].Name || row.Ratio <= 0 || row.MsgsPerSec <= 0 || row.Size != 64 {
			t.Errorf("row %+v: want a rate beside %q with its ratio", row, rows[0].Name)
		}
	}
}

// BenchmarkCLILines moves b.N 64-byte lines through `postbox send
// --lines` and then `postbox recv --count`, each a process, against a
// broker process; it reports each command's lines/s and its ratio to the
// broker's own 64-byte mailbox throughput, measured in the same run.
func BenchmarkCLILines(b *testing.B) {
	p := testbroker.StartProcess(b, bin, "--memory")
	cfg := brokerbench.DefaultConfig()
	cfg.Duration = 500 * time.Millisecond
	base, err := brokerbench.Throughput(context.Background(), p.Socket, cliLineSize, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	rows, err := cliLineRates(context.Background(), bin, p.Socket, max(b.N, 1000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(base.MsgsPerSec, "broker-msgs/s")
	for _, r := range rows {
		unit := "lines/s"
		switch r.Name {
		case nameCLISend:
			unit = "send-lines/s"
		case nameCLIRecv:
			unit = "recv-lines/s"
		case nameCLIPipe:
			unit = "pipeline-lines/s"
		}
		b.ReportMetric(r.MsgsPerSec, unit)
		b.ReportMetric(r.MsgsPerSec/base.MsgsPerSec, strings.TrimSuffix(unit, "-lines/s")+"-ratio")
	}
}
