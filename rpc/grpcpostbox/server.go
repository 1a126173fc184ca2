package grpcpostbox

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("grpcpostbox: server closed")

// Server is a grpc.ServiceRegistrar over an rpc.Server: generated
// RegisterXxxServer functions take it in place of a *grpc.Server. Each
// method becomes a raw handler (rpc.Server.HandleRaw) of the service
// mailbox named after the gRPC service ("pkg.Service"), so one rpc.Server
// serves gRPC services and rpc methods side by side. A stream runs inside
// its open's handler, holding one of the rpc.Server's handlers
// (rpc.Concurrency) for as long as it lasts. Register every service before
// the rpc.Server starts. Its methods are safe for concurrent use.
type Server struct {
	rs *rpc.Server
	pc *postbox.Client
	o  options

	mu     sync.Mutex // guards ep, closed, served
	ep     *endpoint  // acquired with the first stream
	closed bool
	served chan struct{} // closed by Shutdown and Close: Serve returns
}

// method is a registered method: unary (unary != nil) or streaming.
type method struct {
	impl   any
	name   string // full gRPC method name
	unary  *grpc.MethodDesc
	stream *grpc.StreamDesc
}

var _ grpc.ServiceRegistrar = (*Server)(nil)

// NewServer returns a server registering its methods on rs. pc is the
// postbox client rs serves over: stream frames use its inbox. The Server
// owns neither.
func NewServer(rs *rpc.Server, pc *postbox.Client, opts ...Option) *Server {
	return &Server{rs: rs, pc: pc, o: optionsOf(opts), served: make(chan struct{})}
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
	for i := range desc.Methods {
		m := &method{impl: impl, name: "/" + desc.ServiceName + "/" + desc.Methods[i].MethodName, unary: &desc.Methods[i]}
		s.rs.HandleRaw(desc.ServiceName, desc.Methods[i].MethodName, s.serveUnary(m))
	}
	for i := range desc.Streams {
		m := &method{impl: impl, name: "/" + desc.ServiceName + "/" + desc.Streams[i].StreamName, stream: &desc.Streams[i]}
		s.rs.HandleRaw(desc.ServiceName, desc.Streams[i].StreamName, s.serveStream(m))
	}
}

// Serve starts the rpc.Server (creating the service mailboxes, bounded by
// ctx) and blocks until ctx ends (then it closes the server and returns
// ctx's error) or Shutdown or Close (ErrServerClosed). A program that
// starts the rpc.Server itself does not call Serve.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.rs.Start(ctx); err != nil {
		if errors.Is(err, rpc.ErrServerClosed) {
			return ErrServerClosed
		}
		return fmt.Errorf("grpcpostbox: serve: %w", err)
	}
	select {
	case <-s.served:
		return ErrServerClosed
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Shutdown stops taking calls and waits for the running handlers and
// streams to return, or for ctx to end (rpc.Server.Shutdown).
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.rs.Shutdown(ctx)
	if err == nil {
		s.release()
	}
	return err
}

// Close stops taking calls, cancels the running handlers (open streams
// get a cancel) and waits for them (rpc.Server.Close).
func (s *Server) Close() error {
	err := s.rs.Close()
	s.release()
	return err
}

func (s *Server) release() {
	s.mu.Lock()
	ep := s.ep
	s.ep = nil
	if !s.closed {
		s.closed = true
		close(s.served)
	}
	s.mu.Unlock()
	if ep != nil {
		ep.release()
	}
}

// endpoint returns the endpoint of the server's inbox, starting it with
// the first stream.
func (s *Server) endpoint(ctx context.Context) (*endpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrServerClosed
	}
	if s.ep == nil {
		ep, err := acquire(ctx, s.pc)
		if err != nil {
			return nil, err
		}
		s.ep = ep
	}
	return s.ep, nil
}

// handlerContext adds to rpc's handler context (the caller's deadline,
// cancelled when the caller cancels) the request metadata, the caller as
// peer, and the transport stream that grpc.SetHeader and friends use.
func handlerContext(ctx context.Context, r *rpc.Request, ts grpc.ServerTransportStream) context.Context {
	md := metadata.MD(r.Metadata)
	if md == nil {
		md = metadata.MD{}
	}
	ctx = metadata.NewIncomingContext(ctx, md)
	ctx = peer.NewContext(ctx, &peer.Peer{Addr: Addr(postbox.InboxName(r.Message.Sender.Endpoint))})
	return grpc.NewContextWithServerTransportStream(ctx, ts)
}

// serveUnary is the raw handler of a unary method.
func (s *Server) serveUnary(m *method) rpc.RawHandler {
	return func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) {
		if r.Message.Header().Get(keyFrame) != "" {
			return nil, &rpc.Error{Code: envelope.Unimplemented, Message: "grpcpostbox: " + m.name + " is a unary method, not a stream"}
		}
		ts := &unaryTransport{method: m.name}
		resp, err := m.unary.Handler(m.impl, handlerContext(ctx, r, ts), func(v any) error { return unmarshal(r.Body, v) }, s.o.unary)
		ts.mu.Lock()
		ts.sent = true
		rep := &rpc.Reply{Header: rpc.Metadata(ts.header), Trailer: rpc.Metadata(ts.trailer)}
		ts.mu.Unlock()
		if err == nil {
			rep.Body, err = marshal(resp)
			rep.ContentType = envelope.ContentProto
			if err != nil {
				err = status.Errorf(codes.Internal, "grpcpostbox: marshal reply: %v", err)
			}
		}
		if err != nil {
			st := errorStatus(err)
			if d := details(st); d != "" {
				if rep.Trailer == nil {
					rep.Trailer = rpc.Metadata{}
				}
				rep.Trailer.Set(detailsKey, d)
			}
			return rep, &rpc.Error{Code: envelope.Code(st.Code()), Message: st.Message()}
		}
		return rep, nil
	}
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
