package grpcpostbox_test

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fullstorydev/grpchan/grpchantesting"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/rpc/grpcpostbox"
)

// flood is a TestService whose ServerStream sends req.Count messages as
// fast as it may, counting them, and whose ClientStream reads slowly.
type flood struct {
	grpchantesting.UnimplementedTestServiceServer
	sent     atomic.Int64
	received atomic.Int64
	gate     chan struct{} // ClientStream takes one message per token
}

func (f *flood) ServerStream(req *grpchantesting.Message, ss grpchantesting.TestService_ServerStreamServer) error {
	for i := int32(0); i < req.Count; i++ {
		if err := ss.Send(&grpchantesting.Message{Count: i, Payload: req.Payload}); err != nil {
			return err
		}
		f.sent.Add(1)
	}
	return nil
}

func (f *flood) ClientStream(cs grpchantesting.TestService_ClientStreamServer) error {
	n := int32(0)
	for {
		<-f.gate
		m, err := cs.Recv()
		if err == io.EOF {
			return cs.SendAndClose(&grpchantesting.Message{Count: n})
		}
		if err != nil {
			return err
		}
		if m.Count != n {
			return status.Errorf(codes.DataLoss, "message %d arrived as number %d", m.Count, n)
		}
		n++
		f.received.Add(1)
	}
}

const window = 8

// TestSlowReceiverBlocksSenderAndLosesNothing: a server streams 400
// messages to a client that reads slowly. The server never gets more than
// the window ahead of what the client has received, the client's inbox
// never holds more than the window, and every message arrives, in order.
func TestSlowReceiverBlocksSenderAndLosesNothing(t *testing.T) {
	testbroker.CheckGoroutines(t)
	f := &flood{}
	cc, b := setup(t, f, grpcpostbox.WithWindow(window))
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	const n = 400
	ss, err := grpchantesting.NewTestServiceClient(cc).ServerStream(ctx, &grpchantesting.Message{Count: n, Payload: make([]byte, 512)})
	if err != nil {
		t.Fatal(err)
	}
	obs := b.Dial(t)
	var maxDepth uint64
	for i := int32(0); i < n; i++ {
		if i%50 == 0 {
			time.Sleep(20 * time.Millisecond) // let the sender run ahead if it could
			if ahead := f.sent.Load() - int64(i); ahead > window {
				t.Fatalf("after %d received the server has sent %d: %d ahead, window %d", i, f.sent.Load(), ahead, window)
			}
			for _, info := range inboxes(t, obs) {
				maxDepth = max(maxDepth, info)
			}
		}
		m, err := ss.Recv()
		if err != nil {
			t.Fatalf("Recv #%d: %v", i, err)
		}
		if m.Count != i {
			t.Fatalf("Recv #%d got message %d", i, m.Count)
		}
	}
	if _, err := ss.Recv(); err != io.EOF {
		t.Fatalf("after the last message: %v, want io.EOF", err)
	}
	if maxDepth > window {
		t.Errorf("an inbox held %d messages, window %d", maxDepth, window)
	}
	t.Logf("deepest inbox seen: %d (window %d)", maxDepth, window)
}

// TestSlowServerBlocksClientSend: a client streams to a server that takes
// one message per token. SendMsg returns for the first window messages,
// then blocks until the server has received some.
func TestSlowServerBlocksClientSend(t *testing.T) {
	testbroker.CheckGoroutines(t)
	f := &flood{gate: make(chan struct{}, 1000)}
	cc, _ := setup(t, f, grpcpostbox.WithWindow(window))
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	cs, err := grpchantesting.NewTestServiceClient(cc).ClientStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := int32(0); i < window; i++ {
		if err := cs.Send(&grpchantesting.Message{Count: i}); err != nil {
			t.Fatalf("Send #%d: %v", i, err)
		}
	}
	blocked := make(chan error, 1)
	go func() { blocked <- cs.Send(&grpchantesting.Message{Count: window}) }()
	select {
	case err := <-blocked:
		t.Fatalf("Send past the window returned (%v) before the server received anything", err)
	case <-time.After(100 * time.Millisecond):
	}
	for i := 0; i < window/2; i++ {
		f.gate <- struct{}{}
	}
	select {
	case err := <-blocked:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testbroker.HangGuard):
		t.Fatal("Send still blocked after the server took half the window")
	}
	const total = 100
	for i := int32(window + 1); i < total; i++ {
		f.gate <- struct{}{}
		if err := cs.Send(&grpchantesting.Message{Count: i}); err != nil {
			t.Fatalf("Send #%d: %v", i, err)
		}
	}
	for i := 0; i < total; i++ {
		f.gate <- struct{}{}
	}
	m, err := cs.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if m.Count != total {
		t.Errorf("server counted %d messages, want %d", m.Count, total)
	}
}

// inboxes returns the depth of every inbox on the broker.
func inboxes(t *testing.T, c interface {
	List(context.Context) ([]postbox.Info, error)
}) []uint64 {
	t.Helper()
	infos, err := c.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var d []uint64
	for _, i := range infos {
		if i.Inbox {
			d = append(d, i.Depth)
		}
	}
	return d
}
