package broker_test

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/postbox-ipc/postbox/broker"
)

// Snapshot is what an exporter reads: every named mailbox's counters, the
// connections, the per-uid usage, the store's statistics and the latency
// histograms, at one moment.
func ExampleBroker_Snapshot() {
	dir, err := os.MkdirTemp("", "postbox-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	cfg := broker.DefaultConfig()
	cfg.DataDir, cfg.NoSync = dir, true
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := broker.Open(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	// The store opens when the first durable mailbox needs it (lazystore.go):
	// until then the snapshot has no store statistics.
	s := b.Snapshot()
	fmt.Println("connections:", s.Connections, "mailboxes:", len(s.Mailboxes))
	fmt.Println("store:", s.Store != nil, "p99 delivery latency:", s.DeliveryLatency.Quantile(0.99))
	// Output:
	// connections: 0 mailboxes: 0
	// store: false p99 delivery latency: 0s
}
