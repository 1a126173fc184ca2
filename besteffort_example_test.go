package postbox_test

import (
	"context"
	"fmt"
	"time"

	"github.com/postbox-ipc/postbox"
)

// Telemetry that must never hold its sender up: samples go best effort
// into a small mailbox; what does not fit is dropped and counted.
func ExampleMailbox_SendBestEffort() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()
	c, err := postbox.Dial(ctx, postbox.WithSocket(socket))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	metrics, err := c.Create(ctx, "metrics", postbox.Capacity(2))
	if err != nil {
		panic(err)
	}
	for i := range 5 {
		// Never blocks; an error would be local (closed, too large, congested).
		if err := metrics.SendBestEffort(fmt.Appendf(nil, "cpu=%d", i)); err != nil {
			panic(err)
		}
	}
	info, err := metrics.Stat(ctx) // ordered after the sends on this connection
	if err != nil {
		panic(err)
	}
	fmt.Println("queued", info.Depth, "dropped", info.Dropped)
	// Output: queued 2 dropped 3
}

// A client that outlives broker restarts: its consumer resumes on the new
// connection (see WithReconnect for what does not).
func ExampleWithReconnect() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()
	c, err := postbox.Dial(ctx, postbox.WithSocket(socket),
		postbox.WithReconnect(postbox.ReconnectPolicy{
			Backoff:     50 * time.Millisecond,
			OnReconnect: func(id postbox.Identity) { fmt.Println("reconnected as endpoint", id.Endpoint) },
		}))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	fmt.Println(c.Err() == nil)
	// Output: true
}
