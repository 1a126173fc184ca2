package grpcpostbox

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("grpcpostbox: server closed")

// Server is a grpc.ServiceRegistrar that serves the registered services
// on one service mailbox: generated RegisterXxxServer functions take it
// in place of a *grpc.Server. Register every service before Serve.
// Shutdown and Close may be called from any goroutine.
type Server struct {
	c       *postbox.Client
	mailbox string
	o       options

	mu       sync.Mutex // guards methods, cons, ep, closed
	methods  map[string]*method
	cons     *postbox.Consumer
	ep       *endpoint
	closed   bool
	handlers sync.WaitGroup // one per request or stream being handled
	base     context.Context
	cancel   context.CancelFunc // cancels every handler's context (Close)
}

// method is a registered method: unary (unary != nil) or streaming.
type method struct {
	impl   any
	unary  *grpc.MethodDesc
	stream *grpc.StreamDesc
}

var _ grpc.ServiceRegistrar = (*Server)(nil)

// NewServer returns a server for the mailbox over c. It does not own c.
func NewServer(c *postbox.Client, mailbox string, opts ...Option) *Server {
	s := &Server{c: c, mailbox: mailbox, o: optionsOf(opts), methods: map[string]*method{}}
	s.base, s.cancel = context.WithCancel(context.Background())
	return s
}

// RegisterService registers a service and its implementation, as
// grpc.Server does: impl must implement desc.HandlerType.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	if impl != nil && desc.HandlerType != nil {
		ht := reflect.TypeOf(desc.HandlerType).Elem()
		if st := reflect.TypeOf(impl); !st.Implements(ht) {
			panic(fmt.Sprintf("grpcpostbox: RegisterService: %v does not implement %v", st, ht))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range desc.Methods {
		s.methods["/"+desc.ServiceName+"/"+desc.Methods[i].MethodName] = &method{impl: impl, unary: &desc.Methods[i]}
	}
	for i := range desc.Streams {
		s.methods["/"+desc.ServiceName+"/"+desc.Streams[i].StreamName] = &method{impl: impl, stream: &desc.Streams[i]}
	}
}

// Serve creates the service mailbox if it does not exist, then handles
// requests and stream opens from it, each in its own goroutine, until ctx
// ends (it returns ctx's error) or Shutdown or Close (ErrServerClosed).
func (s *Server) Serve(ctx context.Context) error {
	if _, err := s.c.Create(ctx, s.mailbox); err != nil && !errors.Is(err, postbox.ErrExists) {
		return fmt.Errorf("grpcpostbox: serve %q: %w", s.mailbox, err)
	}
	ep, err := acquire(ctx, s.c)
	if err != nil {
		return fmt.Errorf("grpcpostbox: serve %q: %w", s.mailbox, err)
	}
	cons, err := s.c.Mailbox(s.mailbox).Consume(ctx, postbox.Prefetch(16))
	if err != nil {
		ep.release()
		return fmt.Errorf("grpcpostbox: serve %q: %w", s.mailbox, err)
	}
	s.mu.Lock()
	if s.closed || s.cons != nil {
		s.mu.Unlock()
		cons.Close(ctx)
		ep.release()
		if s.closed {
			return ErrServerClosed
		}
		return fmt.Errorf("grpcpostbox: serve %q: already serving", s.mailbox)
	}
	s.cons, s.ep = cons, ep
	s.mu.Unlock()
	for {
		m, err := cons.Next(ctx)
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			s.stopTaking()
			s.handlers.Wait()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("grpcpostbox: serve %q: %w", s.mailbox, err)
		}
		s.handlers.Add(1)
		go func() {
			defer s.handlers.Done()
			s.handle(m)
		}()
	}
}

// stopTaking ends the consumer (prefetched requests go back to the
// mailbox for other servers) and marks the server closed.
func (s *Server) stopTaking() {
	s.mu.Lock()
	cons := s.cons
	s.closed = true
	s.mu.Unlock()
	if cons != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		cons.Close(ctx)
		cancel()
	}
}

// Shutdown stops taking requests and waits until the running handlers
// return or ctx ends (then it cancels them, as Close does).
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopTaking()
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		<-done
	}
	s.releaseEndpoint()
	return ctx.Err()
}

// Close stops taking requests, cancels the running handlers' contexts
// (open streams get a cancel) and waits for them to return.
func (s *Server) Close() error {
	s.stopTaking()
	s.cancel()
	s.handlers.Wait()
	s.releaseEndpoint()
	return nil
}

func (s *Server) releaseEndpoint() {
	s.mu.Lock()
	ep := s.ep
	s.ep = nil
	s.mu.Unlock()
	if ep != nil {
		ep.release()
	}
}

// handle serves one message of the service mailbox, then acks it. A
// stream's open stays leased while the stream runs: if this process
// dies, the broker gives it back and the next server answers the client
// Unavailable.
func (s *Server) handle(m *postbox.Message) {
	defer m.AckNoWait()
	s.mu.Lock()
	meth := s.methods[m.Header().Get(envelope.Method)]
	ep := s.ep
	s.mu.Unlock()
	if m.Header().Get(keyFrame) == frameOpen {
		s.serveStream(ep, m, meth)
		return
	}
	s.serveUnary(m, meth)
}

// handlerContext is the context of a handler: the request's deadline and
// metadata, the caller as peer, and the transport stream that
// grpc.SetHeader and friends use.
func (s *Server) handlerContext(m *postbox.Message, ts grpc.ServerTransportStream) (context.Context, context.CancelFunc) {
	ctx, cancel := s.base, context.CancelFunc(func() {})
	if dl := m.Deadline(); !dl.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, dl)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	if md := requestMD(m); md != nil {
		ctx = metadata.NewIncomingContext(ctx, md)
	} else {
		ctx = metadata.NewIncomingContext(ctx, metadata.MD{})
	}
	ctx = peer.NewContext(ctx, &peer.Peer{Addr: Addr(postbox.InboxName(m.Sender.Endpoint))})
	return grpc.NewContextWithServerTransportStream(ctx, ts), cancel
}

func unknownMethod(name string) *status.Status {
	return status.Newf(codes.Unimplemented, "grpcpostbox: unknown method %s", strings.TrimPrefix(name, "/"))
}

// serveUnary runs a unary method and sends its reply to REPLY_TO.
func (s *Server) serveUnary(m *postbox.Message, meth *method) {
	name := m.Header().Get(envelope.Method)
	ts := &unaryTransport{method: name}
	var st *status.Status
	var resp any
	switch {
	case meth == nil || meth.unary == nil:
		st = unknownMethod(name)
	case m.Redeliveries > 0:
		// Its first server died holding it: a unary call may have run
		// already, and gRPC calls are not retried behind the caller's back.
		st = status.New(codes.Unavailable, "grpcpostbox: the server handling this call went away")
	default:
		ctx, cancel := s.handlerContext(m, ts)
		var err error
		resp, err = meth.unary.Handler(meth.impl, ctx, func(v any) error { return unmarshal(m.Body, v) }, nil)
		cancel()
		st = errorStatus(err)
	}
	var body []byte
	opts := []postbox.SendOption{postbox.Type(MessageType), postbox.CorrelationID(m.CorrelationID())}
	ts.mu.Lock()
	opts = mdOpts(opts, envelope.HeaderMeta, ts.header)
	opts = mdOpts(opts, envelope.TrailerMeta, ts.trailer)
	ts.sent = true
	ts.mu.Unlock()
	if st.Code() == codes.OK {
		b, err := marshal(resp)
		if err != nil {
			st = status.Newf(codes.Internal, "grpcpostbox: marshal reply: %v", err)
		} else {
			body = b
			opts = append(opts, postbox.ContentType(envelope.ContentProto))
		}
	}
	opts, details := statusOpts(opts, st)
	if details != nil {
		body = details
	}
	ctx, cancel := context.WithTimeout(s.base, 5*time.Second)
	defer cancel()
	s.c.Mailbox(m.ReplyTo()).Send(ctx, body, opts...) // the caller may have gone: nothing to do then
}

// unaryTransport is the grpc.ServerTransportStream of a unary call:
// headers and trailers are gathered and leave with the reply.
type unaryTransport struct {
	method string

	mu      sync.Mutex // guards header, trailer, sent
	header  metadata.MD
	trailer metadata.MD
	sent    bool
}

func (t *unaryTransport) Method() string { return t.method }

func (t *unaryTransport) SetHeader(md metadata.MD) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sent {
		return status.Error(codes.Internal, "grpcpostbox: headers already sent")
	}
	t.header = metadata.Join(t.header, md)
	return nil
}

func (t *unaryTransport) SendHeader(md metadata.MD) error { return t.SetHeader(md) }

func (t *unaryTransport) SetTrailer(md metadata.MD) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.trailer = metadata.Join(t.trailer, md)
	return nil
}
