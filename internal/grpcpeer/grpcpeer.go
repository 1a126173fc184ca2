// Package grpcpeer is the gRPC-go side of `postbox bench rpc`: an echo
// service served over a Unix socket and a client calling it, so postbox's
// calls can be measured beside gRPC-go's unary calls in the same run. It
// is the only package of the module that imports google.golang.org/grpc
// outside the gRPC adapter: the bench's other code and the CLI see plain
// byte slices.
//
// No protoc is needed: the service is a hand-written grpc.ServiceDesc
// with one unary method, and both sides force a codec that passes the
// message bytes through unchanged (what a 64-byte protobuf bytes field
// would cost, minus its two bytes of tag and length).
package grpcpeer

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Method is the full name of the echo method.
const Method = "/postbox.bench.Echo/Echo"

// rawCodec passes *[]byte messages through as they are.
type rawCodec struct{}

func (rawCodec) Name() string { return "raw" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, errors.New("grpcpeer: raw codec: message is not *[]byte")
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return errors.New("grpcpeer: raw codec: message is not *[]byte")
	}
	*b = append((*b)[:0], data...)
	return nil
}

// echoDesc is what protoc-gen-go-grpc would generate for
//
//	service Echo { rpc Echo(bytes) returns (bytes); }
var echoDesc = grpc.ServiceDesc{
	ServiceName: "postbox.bench.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			return &in, nil
		},
	}},
}

// Server serves the echo method on a Unix socket.
type Server struct {
	s    *grpc.Server
	l    net.Listener
	done chan struct{} // closed when Serve has returned
	once sync.Once
}

// Listen serves the echo method on a Unix socket at path (replacing a
// stale file there) until Close.
func Listen(path string) (*Server, error) {
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	s := &Server{s: grpc.NewServer(grpc.ForceServerCodec(rawCodec{})), l: l, done: make(chan struct{})}
	s.s.RegisterService(&echoDesc, struct{}{})
	go func() {
		defer close(s.done)
		s.s.Serve(l)
	}()
	return s, nil
}

// Close stops the server at once and waits for it.
func (s *Server) Close() {
	s.once.Do(func() {
		s.s.Stop()
		<-s.done
	})
}

// Client calls the echo method over one gRPC connection (HTTP/2, so
// concurrent calls share it, as they share a postbox connection).
type Client struct {
	cc *grpc.ClientConn
}

// Dial connects to the server at the Unix socket path (target
// unix://path) and waits until the connection is ready.
func Dial(ctx context.Context, path string) (*Client, error) {
	cc, err := grpc.NewClient("unix://"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return nil, err
	}
	c := &Client{cc: cc}
	// One call makes the connection and proves the server is up.
	var out []byte
	if err := c.Call(ctx, []byte{0}, &out, true); err != nil {
		cc.Close()
		return nil, err
	}
	return c, nil
}

// Call sends in and reads the echo into *out. wait makes the call wait
// for the connection to be ready instead of failing at once.
func (c *Client) Call(ctx context.Context, in []byte, out *[]byte, wait bool) error {
	var opts []grpc.CallOption
	if wait {
		opts = append(opts, grpc.WaitForReady(true))
	}
	return c.cc.Invoke(ctx, Method, &in, out, opts...)
}

// Close closes the connection.
func (c *Client) Close() error { return c.cc.Close() }
