package grpcpostbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fullstorydev/grpchan/grpchantesting"
	"google.golang.org/grpc"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/rpc/grpcpostbox"
)

// setup starts a broker, a Server on mailbox "svc" with srv registered
// (on its own client), and returns a ClientConn to it from another client.
func setup(t *testing.T, srv grpchantesting.TestServiceServer, opts ...grpcpostbox.Option) (*grpcpostbox.ClientConn, *testbroker.Broker) {
	t.Helper()
	b := testbroker.Start(t, nil)
	sc := b.Dial(t)
	cc := serve(t, b, sc, srv, opts...)
	return cc, b
}

func serve(t *testing.T, b *testbroker.Broker, sc *postbox.Client, srv grpchantesting.TestServiceServer, opts ...grpcpostbox.Option) *grpcpostbox.ClientConn {
	t.Helper()
	s := grpcpostbox.NewServer(sc, "svc", opts...)
	grpchantesting.RegisterTestServiceServer(s, srv)
	served := make(chan error, 1)
	ctx := context.Background()
	go func() { served <- s.Serve(ctx) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; !errors.Is(err, grpcpostbox.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	waitServing(t, sc, "svc")
	c := b.Dial(t)
	dctx, cancel := context.WithTimeout(ctx, testbroker.HangGuard)
	defer cancel()
	cc, err := grpcpostbox.Dial(dctx, c, "svc", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// waitServing waits until a server consumes the mailbox.
func waitServing(t *testing.T, c *postbox.Client, name string) {
	t.Helper()
	deadline := time.Now().Add(testbroker.HangGuard)
	for time.Now().Before(deadline) {
		info, err := c.Mailbox(name).Stat(context.Background())
		if err == nil && info.Consumers > 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no server on %q", name)
}

// TestConformance runs grpchan's channel test cases (unary, client-,
// server-, half- and full-duplex bidi streams; success, failure with
// status details, timeout, cancel; request metadata, headers, trailers)
// over a real broker on a Unix socket.
func TestConformance(t *testing.T) {
	testbroker.CheckGoroutines(t)
	cc, _ := setup(t, &grpchantesting.TestServer{})
	grpchantesting.RunChannelTestCases(t, cc, true)
}

var _ grpc.ClientConnInterface = (*grpcpostbox.ClientConn)(nil)
var _ grpc.ServiceRegistrar = (*grpcpostbox.Server)(nil)
