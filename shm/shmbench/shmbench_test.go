package shmbench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/internal/benchfmt"
)

func TestMain(m *testing.M) {
	MaybeRunPeer()
	os.Exit(m.Run())
}

func TestRunQuick(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rows, err := Run(ctx, Config{Quick: true})
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	benchfmt.WriteTable(&sb, rows)
	t.Log("\n" + sb.String())
	if len(rows) < 40 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		if r.P50 == 0 && r.MsgsPerSec == 0 {
			t.Errorf("row %q %d has no figure", r.Name, r.Size)
		}
		if r.Baseline != "" && r.Ratio == 0 {
			t.Errorf("row %q %d has no ratio", r.Name, r.Size)
		}
	}
}

// TestRunFull prints the full figures. It runs only when asked:
//
//	POSTBOX_SHMBENCH_FULL=1 go test -run TestRunFull -v ./shm/shmbench
func TestRunFull(t *testing.T) {
	if os.Getenv("POSTBOX_SHMBENCH_FULL") == "" {
		t.Skip("set POSTBOX_SHMBENCH_FULL=1 to run the full benchmark")
	}
	rows, err := Run(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	benchfmt.WriteTable(&sb, rows)
	t.Log("\n" + sb.String())
	if path := os.Getenv("POSTBOX_SHMBENCH_JSON"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		benchfmt.WriteJSON(f, rows)
	}
}
