package brokerbench

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
)

// TestRunDurableSocketMeasuresARunningBroker runs the durable figures
// against a broker it did not start (here in-process, as `postbox serve`
// would be), with more senders than the broker lets one uid handshake at
// once, and checks the rows' shape and that no mailbox is left behind.
func TestRunDurableSocketMeasuresARunningBroker(t *testing.T) {
	dir := t.TempDir()
	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.DataDir = filepath.Join(dir, "data")
	b, err := broker.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	l, err := broker.Listen(sock, 0o600)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	go b.Serve(l)
	defer b.Close()

	ctx := context.Background()
	rows, err := RunDurableSocket(ctx, sock, 40, 256, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 9 {
		t.Fatalf("got %d rows, want 9", len(rows))
	}
	for _, r := range rows {
		if r.MsgsPerSec <= 0 || r.P50 <= 0 && r.Name != NameDurableWindow {
			t.Errorf("%s: no figure", r.Name)
		}
	}
	for i := 0; i+2 < len(rows); i += 3 { // durable, its baseline, the Publisher row
		dur, mem, win := rows[i], rows[i+1], rows[i+2]
		if dur.Baseline != mem.Name || win.Baseline != mem.Name {
			t.Errorf("round %d: baselines %q, %q, want %q", i/3, dur.Baseline, win.Baseline, mem.Name)
		}
		if dur.Ratio != dur.MsgsPerSec/mem.MsgsPerSec || win.Ratio != win.MsgsPerSec/mem.MsgsPerSec {
			t.Errorf("round %d: ratios %v, %v not to that round's baseline", i/3, dur.Ratio, win.Ratio)
		}
	}
	c, err := postbox.Dial(ctx, postbox.WithSocket(sock))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	boxes, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range boxes {
		if !strings.HasPrefix(mb.Name, "@") { // @...: a connection's own inbox
			t.Errorf("mailbox left behind: %s", mb.Name)
		}
	}
}
