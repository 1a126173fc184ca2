package postbox

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/postbox-ipc/postbox/broker"
)

// TestPublisherPendStaysBounded: a TopicPublisher whose window holds far
// more than pendMax of large publications encodes ahead of the writer
// only up to pendMax (plus the item that crossed it and its frame's
// header), through a real broker; every publication is still published.
func TestPublisherPendStaysBounded(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b := broker.New(cfg)
	sock := filepath.Join(t.TempDir(), "s")
	l, err := broker.Listen(sock, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	go b.Serve(l)
	defer b.Close()
	ctx := context.Background()
	c, err := Dial(ctx, WithSocket(sock))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const items, size = 600, 60 << 10 // 36 MiB through a window that holds them all
	p := c.Publisher("pend.bound", items)
	var most atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			p.mu.Lock()
			n := len(p.pend)
			p.mu.Unlock()
			if int64(n) > most.Load() {
				most.Store(int64(n))
			}
		}
	}()
	body := make([]byte, size)
	for range items {
		if err := p.Publish(ctx, body); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-sampled
	if limit := int64(pendMax + size + 1024); most.Load() > limit {
		t.Errorf("pend held %d bytes, want at most %d", most.Load(), limit)
	}
	if p.Sent() != items {
		t.Errorf("sent %d, want %d", p.Sent(), items)
	}
	t.Logf("pend at most %d bytes (bound %d)", most.Load(), pendMax)
}
