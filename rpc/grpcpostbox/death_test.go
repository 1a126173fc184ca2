package grpcpostbox_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/fullstorydev/grpchan/grpchantesting"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/rpc/grpcpostbox"
)

// startServer runs a Server for p on its own client and returns that
// client (closing it is the server process going away, as the broker
// sees it).
func startServer(t *testing.T, b *testbroker.Broker, p grpchantesting.TestServiceServer) *postbox.Client {
	t.Helper()
	sc := b.Dial(t)
	serveOn(t, sc, p)
	return sc
}

// dialRaw connects a client over a connection the test can cut.
func dialRaw(t *testing.T, b *testbroker.Broker) (*postbox.Client, net.Conn) {
	t.Helper()
	nc, err := net.Dial("unix", b.Socket)
	if err != nil {
		t.Fatal(err)
	}
	c, err := postbox.NewClient(context.Background(), nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, nc
}

// openEcho opens a bidi stream and exchanges one message over it.
func openEcho(t *testing.T, cc *grpcpostbox.ClientConn) grpchantesting.TestService_BidiStreamClient {
	t.Helper()
	bidi, err := grpchantesting.NewTestServiceClient(cc).BidiStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := bidi.Send(&grpchantesting.Message{Payload: []byte("ping")}); err != nil {
		t.Fatal(err)
	}
	if _, err := bidi.Recv(); err != nil {
		t.Fatal(err)
	}
	return bidi
}

// TestServerLearnsClientDied: the client's connection goes away in the
// middle of a stream; the handler's context ends (the keepalive finds the
// client's inbox gone).
func TestServerLearnsClientDied(t *testing.T) {
	testbroker.CheckGoroutines(t)
	t.Cleanup(grpcpostbox.SetKeepalive(20 * time.Millisecond))
	b := testbroker.Start(t, nil)
	p := newProbe()
	startServer(t, b, p)
	c := b.Dial(t)
	openEcho(t, dialConn(t, c))
	hctx := nextCtx(t, p)
	c.Close()
	waitDone(t, hctx, "client died")
}

// TestClientLearnsServerDiedByKeepalive: the only server goes away in the
// middle of a stream; the client's Recv fails Unavailable.
func TestClientLearnsServerDiedByKeepalive(t *testing.T) {
	testbroker.CheckGoroutines(t)
	t.Cleanup(grpcpostbox.SetKeepalive(20 * time.Millisecond))
	b := testbroker.Start(t, nil)
	sc := startServer(t, b, newProbe())
	bidi := openEcho(t, dialConn(t, b.Dial(t)))
	sc.Close()
	if _, err := bidi.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("Recv after the server died: %v, want Unavailable", err)
	}
}

// TestClientLearnsServerDiedByLease: with the keepalive out of the way,
// the stream's open, leased by the server that died, goes back to the
// service mailbox; the next server answers the client Unavailable instead
// of running the stream a second time.
func TestClientLearnsServerDiedByLease(t *testing.T) {
	testbroker.CheckGoroutines(t)
	t.Cleanup(grpcpostbox.SetKeepalive(time.Hour))
	b := testbroker.Start(t, nil)
	first := newProbe()
	sc, conn := dialRaw(t, b)
	serveOn(t, sc, first)
	bidi := openEcho(t, dialConn(t, b.Dial(t)))
	nextCtx(t, first)
	second := newProbe()
	startServer(t, b, second)
	conn.Close() // a crash, as the broker sees it: nothing more is written

	if _, err := bidi.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("Recv after the server died: %v, want Unavailable", err)
	}
	select {
	case <-second.ctxs:
		t.Error("the second server ran the stream again")
	default:
	}
}
