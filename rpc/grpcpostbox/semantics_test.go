package grpcpostbox_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/fullstorydev/grpchan/grpchantesting"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/rpc/grpcpostbox"
)

// probe is a TestService whose handlers report their context.
type probe struct {
	grpchantesting.UnimplementedTestServiceServer
	ctxs chan context.Context // each handler's context, as it starts
}

func newProbe() *probe { return &probe{ctxs: make(chan context.Context, 16)} }

func (p *probe) Unary(ctx context.Context, req *grpchantesting.Message) (*grpchantesting.Message, error) {
	p.ctxs <- ctx
	if req.DelayMillis > 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(req.DelayMillis) * time.Millisecond):
		}
	}
	if req.Code != 0 {
		return nil, status.Error(codes.Code(req.Code), string(req.Payload))
	}
	return &grpchantesting.Message{Payload: req.Payload}, nil
}

// BidiStream reports its context, then echoes until the client closes or
// the context ends.
func (p *probe) BidiStream(str grpchantesting.TestService_BidiStreamServer) error {
	p.ctxs <- str.Context()
	for {
		m, err := str.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			<-str.Context().Done()
			return err
		}
		if m.Code != 0 {
			return status.Error(codes.Code(m.Code), string(m.Payload))
		}
		if err := str.Send(m); err != nil {
			return err
		}
	}
}

func nextCtx(t *testing.T, p *probe) context.Context {
	t.Helper()
	select {
	case ctx := <-p.ctxs:
		return ctx
	case <-time.After(testbroker.HangGuard):
		t.Fatal("handler did not start")
		return nil
	}
}

func waitDone(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(testbroker.HangGuard):
		t.Fatalf("%s: handler context not cancelled", what)
	}
}

func TestDeadlineBecomesHandlerDeadline(t *testing.T) {
	testbroker.CheckGoroutines(t)
	p := newProbe()
	cc, _ := setup(t, p)
	cli := grpchantesting.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	want, _ := ctx.Deadline()

	if _, err := cli.Unary(ctx, &grpchantesting.Message{}); err != nil {
		t.Fatal(err)
	}
	if got, ok := nextCtx(t, p).Deadline(); !ok || !got.Equal(want) {
		t.Errorf("unary handler deadline %v (%v), want %v", got, ok, want)
	}

	bidi, err := cli.BidiStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := nextCtx(t, p).Deadline(); !ok || !got.Equal(want) {
		t.Errorf("stream handler deadline %v (%v), want %v", got, ok, want)
	}
	bidi.CloseSend()
	if _, err := bidi.Recv(); err != io.EOF {
		t.Fatalf("Recv after CloseSend: %v, want io.EOF", err)
	}
}

func TestDeadlineExpiryEndsHandlerContext(t *testing.T) {
	testbroker.CheckGoroutines(t)
	p := newProbe()
	cc, _ := setup(t, p)
	cli := grpchantesting.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := cli.Unary(ctx, &grpchantesting.Message{DelayMillis: 5000})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Unary: %v, want DeadlineExceeded", err)
	}
	hctx := nextCtx(t, p)
	waitDone(t, hctx, "unary")
	// Whichever comes first: the handler's own deadline, or the broker's
	// INTERRUPT when the caller's CALL timed out (rpc cancels then).
	if err := hctx.Err(); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		t.Errorf("handler ctx: %v, want DeadlineExceeded or Canceled", err)
	}
}

func TestClientCancelCancelsStreamHandler(t *testing.T) {
	testbroker.CheckGoroutines(t)
	p := newProbe()
	cc, _ := setup(t, p)
	cli := grpchantesting.NewTestServiceClient(cc)
	ctx, cancel := context.WithCancel(context.Background())
	bidi, err := cli.BidiStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bidi.Send(&grpchantesting.Message{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := bidi.Recv(); err != nil {
		t.Fatal(err)
	}
	hctx := nextCtx(t, p)
	cancel()
	if _, err := bidi.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("Recv after cancel: %v, want Canceled", err)
	}
	waitDone(t, hctx, "stream")
}

// TestStatusCodesCrossBothKinds sends every non-OK code from a handler,
// unary and streaming, and finds it, with its message, at the caller.
func TestStatusCodesCrossBothKinds(t *testing.T) {
	testbroker.CheckGoroutines(t)
	p := newProbe()
	cc, _ := setup(t, p)
	cli := grpchantesting.NewTestServiceClient(cc)
	ctx := context.Background()
	for code := codes.Canceled; code <= codes.Unauthenticated; code++ {
		msg := "because " + code.String()
		_, err := cli.Unary(ctx, &grpchantesting.Message{Code: int32(code), Payload: []byte(msg)})
		<-p.ctxs
		if st := status.Convert(err); st.Code() != code || st.Message() != msg {
			t.Errorf("unary: got %v %q, want %v %q", st.Code(), st.Message(), code, msg)
		}
		bidi, err := cli.BidiStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		<-p.ctxs
		bidi.Send(&grpchantesting.Message{Code: int32(code), Payload: []byte(msg)})
		_, err = bidi.Recv()
		if st := status.Convert(err); st.Code() != code || st.Message() != msg {
			t.Errorf("stream: got %v %q, want %v %q", st.Code(), st.Message(), code, msg)
		}
	}
}

func TestUnknownMethodIsUnimplemented(t *testing.T) {
	testbroker.CheckGoroutines(t)
	cc, _ := setup(t, newProbe())
	ctx := context.Background()
	err := cc.Invoke(ctx, "/grpchantesting.TestService/NoSuchMethod", &grpchantesting.Message{}, &grpchantesting.Message{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("Invoke: %v, want Unimplemented", err)
	}
	_, err = cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/grpchantesting.TestService/NoSuchStream")
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("NewStream: %v, want Unimplemented", err)
	}
}

func TestNoServiceMailboxIsUnavailable(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	c := b.Dial(t)
	cc := dialConn(t, c)
	err := cc.Invoke(context.Background(), "/a.B/C", &grpchantesting.Message{}, &grpchantesting.Message{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Invoke: %v, want Unavailable", err)
	}
	_, err = cc.NewStream(context.Background(), &grpc.StreamDesc{ServerStreams: true}, "/a.B/C")
	if status.Code(err) != codes.Unavailable {
		t.Errorf("NewStream: %v, want Unavailable", err)
	}
}

func TestMetadataBinaryAndMultiValued(t *testing.T) {
	testbroker.CheckGoroutines(t)
	p := newProbe()
	cc, _ := setup(t, p)
	md := metadata.MD{"trace-bin": {"\x00\xff\x01"}, "multi": {"a", "b"}}
	ctx := metadata.NewOutgoingContext(context.Background(), md)
	var server peer.Peer
	if err := cc.Invoke(ctx, "/grpchantesting.TestService/Unary", &grpchantesting.Message{}, &grpchantesting.Message{}, grpc.Peer(&server)); err != nil {
		t.Fatal(err)
	}
	hctx := nextCtx(t, p)
	if client, ok := peer.FromContext(hctx); !ok || client.Addr.Network() != "postbox" || server.Addr == nil ||
		server.Addr.Network() != "postbox" || client.Addr.String() == server.Addr.String() {
		t.Errorf("peers: the handler sees %v, the caller %v", client, server)
	}
	got, _ := metadata.FromIncomingContext(hctx)
	if v := got.Get("trace-bin"); len(v) != 1 || v[0] != "\x00\xff\x01" {
		t.Errorf("trace-bin = %q", v)
	}
	if v := got.Get("multi"); len(v) != 2 || v[0] != "a" || v[1] != "b" {
		t.Errorf("multi = %q", v)
	}
}

// TestClientCancelCancelsUnaryHandler: cancelling a unary call while its
// handler runs cancels the handler's context (the CALL's cancel reaches
// the server as an INTERRUPT).
func TestClientCancelCancelsUnaryHandler(t *testing.T) {
	testbroker.CheckGoroutines(t)
	p := newProbe()
	cc, _ := setup(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := grpchantesting.NewTestServiceClient(cc).Unary(ctx, &grpchantesting.Message{DelayMillis: 10_000})
		errc <- err
	}()
	hctx := nextCtx(t, p)
	cancel()
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Fatalf("Unary after cancel: %v, want Canceled", err)
	}
	waitDone(t, hctx, "unary")
}

// TestServerInterceptorsRun: UnaryInterceptor and StreamInterceptor see
// every call with its full method name, and may refuse it.
func TestServerInterceptorsRun(t *testing.T) {
	testbroker.CheckGoroutines(t)
	seen := make(chan string, 4)
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		seen <- info.FullMethod
		return h(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		seen <- info.FullMethod
		return status.Error(codes.PermissionDenied, "no streams for you")
	}
	b := testbroker.Start(t, nil)
	serveOn(t, b.Dial(t), &grpchantesting.TestServer{}, grpcpostbox.UnaryInterceptor(unary), grpcpostbox.StreamInterceptor(stream))
	cli := grpchantesting.NewTestServiceClient(dialConn(t, b.Dial(t)))
	ctx := context.Background()
	if _, err := cli.Unary(ctx, &grpchantesting.Message{}); err != nil {
		t.Fatal(err)
	}
	if m := <-seen; m != "/grpchantesting.TestService/Unary" {
		t.Errorf("unary interceptor saw %q", m)
	}
	ss, err := cli.ServerStream(ctx, &grpchantesting.Message{Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Recv: %v, want PermissionDenied", err)
	}
	if m := <-seen; m != "/grpchantesting.TestService/ServerStream" {
		t.Errorf("stream interceptor saw %q", m)
	}
}

// TestCloseCancelsOpenStreams: ClientConn.Close cancels the streams it
// opened, at both ends, and leaves another conn's streams on the same
// postbox client alone.
func TestCloseCancelsOpenStreams(t *testing.T) {
	testbroker.CheckGoroutines(t)
	p := newProbe()
	b := testbroker.Start(t, nil)
	serveOn(t, b.Dial(t), p)
	c := b.Dial(t)
	closing, staying := dialConn(t, c), dialConn(t, c)
	ctx := context.Background()
	open := func(cc *grpcpostbox.ClientConn) grpchantesting.TestService_BidiStreamClient {
		bidi, err := grpchantesting.NewTestServiceClient(cc).BidiStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return bidi
	}
	gone := open(closing)
	goneCtx := nextCtx(t, p)
	kept := open(staying)
	nextCtx(t, p)
	closing.Close()
	if _, err := gone.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("Recv on the closed conn's stream: %v, want Canceled", err)
	}
	waitDone(t, goneCtx, "closed conn's stream")
	if err := kept.Send(&grpchantesting.Message{Payload: []byte("still here")}); err != nil {
		t.Fatal(err)
	}
	if m, err := kept.Recv(); err != nil || string(m.Payload) != "still here" {
		t.Fatalf("the other conn's stream: %v, %v", m, err)
	}
	kept.CloseSend()
	if _, err := kept.Recv(); err != io.EOF {
		t.Fatalf("end of the other conn's stream: %v", err)
	}
}

type panicky struct {
	grpchantesting.UnimplementedTestServiceServer
}

func (panicky) ServerStream(*grpchantesting.Message, grpchantesting.TestService_ServerStreamServer) error {
	panic("boom")
}

// TestStreamHandlerPanicIsInternal: a stream whose handler panics ends
// with Internal at the client, and the server goes on.
func TestStreamHandlerPanicIsInternal(t *testing.T) {
	testbroker.CheckGoroutines(t)
	cc, _ := setup(t, panicky{})
	cli := grpchantesting.NewTestServiceClient(cc)
	for range 2 {
		ss, err := cli.ServerStream(context.Background(), &grpchantesting.Message{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ss.Recv(); status.Code(err) != codes.Internal {
			t.Fatalf("Recv: %v, want Internal", err)
		}
	}
}

// TestCallKindMismatchIsUnimplemented: a unary call of a streaming
// method, or a stream opened on a unary method, is refused.
func TestCallKindMismatchIsUnimplemented(t *testing.T) {
	testbroker.CheckGoroutines(t)
	cc, _ := setup(t, &grpchantesting.TestServer{})
	ctx := context.Background()
	err := cc.Invoke(ctx, "/grpchantesting.TestService/BidiStream", &grpchantesting.Message{}, &grpchantesting.Message{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("Invoke of a stream: %v, want Unimplemented", err)
	}
	_, err = cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/grpchantesting.TestService/Unary")
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("NewStream on a unary method: %v, want Unimplemented", err)
	}
}
