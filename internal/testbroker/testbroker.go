// Package testbroker starts a real broker on a real Unix socket for tests:
// in-process (Start) so a test can use it at once, or as a separate
// `postbox serve` process (StartProcess, with the binary from BuildCLI),
// with everything torn down and checked when the test ends. CheckGoroutines
// fails a test that leaves goroutines behind (using go.uber.org/goleak).
package testbroker

import (
	"context"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
)

// Broker is a running in-process broker.
type Broker struct {
	*broker.Broker
	Socket string

	served   chan struct{} // closed when Serve has returned
	serveErr error         // what Serve returned; read after served is closed
}

// Start runs a broker with cfg (DefaultConfig if nil) on a socket in a
// fresh directory that other users can reach (mode 0755 directory, 0666
// socket), and shuts it down when t ends.
func Start(t testing.TB, cfg *broker.Config) *Broker {
	t.Helper()
	c := broker.DefaultConfig()
	if cfg != nil {
		c = *cfg
	}
	b, err := Open(t, c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Served waits for Serve to return (after Shutdown or Close) and returns
// its error. It may be called any number of times.
func (b *Broker) Served() error {
	<-b.served
	return b.serveErr
}

// Dial connects a client to b, closed when t ends.
func (b *Broker) Dial(t testing.TB) *postbox.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := postbox.Dial(ctx, postbox.WithSocket(b.Socket), postbox.WithName(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
