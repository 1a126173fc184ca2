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
	"github.com/postbox-ipc/postbox/rpc"
	"github.com/postbox-ipc/postbox/rpc/grpcpostbox"
)

// service is the mailbox of grpchantesting's TestService.
const service = "grpchantesting.TestService"

// setup starts a broker, a Server with srv registered (on its own
// client), and returns a ClientConn to it from another client.
func setup(t testing.TB, srv grpchantesting.TestServiceServer, opts ...grpcpostbox.Option) (*grpcpostbox.ClientConn, *testbroker.Broker) {
	t.Helper()
	b := testbroker.Start(t, nil)
	serveOn(t, b.Dial(t), srv, opts...)
	return dialConn(t, b.Dial(t), opts...), b
}

// serveOn runs a Server for srv on an rpc.Server over sc, closed when t
// ends, and waits until its mailbox exists.
func serveOn(t testing.TB, sc *postbox.Client, srv grpchantesting.TestServiceServer, opts ...grpcpostbox.Option) {
	t.Helper()
	s := grpcpostbox.NewServer(rpc.NewServer(sc, rpc.Concurrency(32)), sc, opts...)
	grpchantesting.RegisterTestServiceServer(s, srv)
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; !errors.Is(err, grpcpostbox.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	deadline := time.Now().Add(testbroker.HangGuard)
	for time.Now().Before(deadline) {
		if _, err := sc.Mailbox(service).Stat(context.Background()); err == nil {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no mailbox %q", service)
}

func dialConn(t testing.TB, c *postbox.Client, opts ...grpcpostbox.Option) *grpcpostbox.ClientConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	cc, err := grpcpostbox.Dial(ctx, rpc.NewClient(c), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
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
