package storebench_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/internal/benchfmt"
	"github.com/postbox-ipc/postbox/store/storebench"
)

func TestRunReportsEveryFigureWithItsBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real fsyncs for about 3 s")
	}
	rows, err := storebench.Run(context.Background(), t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 10 {
		t.Fatalf("%d rows, want 10", len(rows))
	}
	for _, r := range rows {
		if r.MsgsPerSec <= 0 || r.P50 <= 0 || (r.Baseline != "" && r.Ratio == 0) {
			t.Errorf("row %+v incomplete", r)
		}
	}
	var buf bytes.Buffer
	benchfmt.WriteTable(&buf, rows)
	// The table wraps long figure names (benchfmt.TableWidth): look for
	// the 64-writer figure in the rows themselves.
	found := false
	for _, r := range rows {
		found = found || strings.Contains(r.Name, "64 writers")
	}
	if !found {
		t.Fatalf("no 64-writer figure:\n%s", buf.String())
	}
	t.Logf("\n%s", buf.String())
}

func TestMeasureCountsRecordsAndFsyncs(t *testing.T) {
	r, err := storebench.Measure(context.Background(), t.TempDir(), false, 4, 256, 200, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Records != 200 || r.Fsyncs == 0 || r.Fsyncs > 200+1 || r.PerFsync() < 1 {
		t.Fatalf("%+v", r)
	}
}
