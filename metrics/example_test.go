package metrics_test

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/metrics"
)

// A broker's metrics, gathered as a scrape would. A program serving them
// mounts metrics.Handler(b) on its own mux:
//
//	mux.Handle("/metrics", metrics.Handler(b))
func Example() {
	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := broker.Open(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	fams, err := metrics.NewRegistry(b).Gather()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range fams {
		switch f.GetName() {
		case "postbox_connections", "postbox_mailboxes":
			fmt.Println(f.GetName(), f.GetType(), f.GetMetric()[0].GetGauge().GetValue())
		case "postbox_delivery_latency_seconds":
			fmt.Println(f.GetName(), f.GetType(), len(f.GetMetric()[0].GetHistogram().GetBucket()), "buckets")
		}
	}
	// Output:
	// postbox_connections GAUGE 0
	// postbox_delivery_latency_seconds HISTOGRAM 25 buckets
	// postbox_mailboxes GAUGE 0
}
