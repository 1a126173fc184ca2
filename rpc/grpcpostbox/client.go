package grpcpostbox

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	gproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// DefaultWindow is the number of stream messages one side may send ahead
// of the other's application (see WithWindow).
const DefaultWindow = 32

// Option configures a ClientConn or a Server.
type Option func(*options)

type options struct {
	window uint32
	unary  grpc.UnaryServerInterceptor
	stream grpc.StreamServerInterceptor
}

func optionsOf(opts []Option) options {
	o := options{window: DefaultWindow}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithWindow sets the flow-control window of the streams a ClientConn
// opens or a Server accepts: how many messages the peer may send before
// this side's application has received them (at least 1; default
// DefaultWindow). The sum over open streams is what may sit in this
// client's inbox at once; keep it below the inbox's capacity (4096 by
// default) or senders wait at the broker instead.
func WithWindow(n uint32) Option { return func(o *options) { o.window = max(n, 1) } }

// UnaryInterceptor (Server) runs i around every unary handler, as
// grpc.UnaryInterceptor does for a grpc.Server.
func UnaryInterceptor(i grpc.UnaryServerInterceptor) Option {
	return func(o *options) { o.unary = i }
}

// StreamInterceptor (Server) runs i around every stream handler, as
// grpc.StreamInterceptor does for a grpc.Server.
func StreamInterceptor(i grpc.StreamServerInterceptor) Option {
	return func(o *options) { o.stream = i }
}

// ErrClosed is returned by the calls of a ClientConn after Close.
var ErrClosed = errors.New("grpcpostbox: client connection closed")

// ClientConn is a grpc.ClientConnInterface over postbox: code generated
// by protoc-gen-go-grpc takes it in place of a *grpc.ClientConn. A call
// of /pkg.Service/Method goes to the service mailbox "pkg.Service", where
// a Server (on an rpc.Server) serves it. It is safe for concurrent use.
type ClientConn struct {
	rc      *rpc.Client
	pc      *postbox.Client
	ep      *endpoint
	o       options
	seq     atomic.Uint64
	session [16]byte // of stream opens' request ids; rc has its own

	closeOnce sync.Once
	closed    atomic.Bool
}

var _ grpc.ClientConnInterface = (*ClientConn)(nil)

// Dial returns a ClientConn making calls through rc: unary calls are
// rc.Invoke (maybe semantics: gRPC does not retry behind the caller),
// streams use the inbox of rc's postbox client. It starts the consumer of
// that inbox (of MessageType frames), shared with every other ClientConn
// and Server on the same postbox client; ctx bounds that. The ClientConn
// owns neither client: Close it before closing them.
func Dial(ctx context.Context, rc *rpc.Client, opts ...Option) (*ClientConn, error) {
	pc := rc.Postbox()
	ep, err := acquire(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("grpcpostbox: dial: %w", err)
	}
	cc := &ClientConn{rc: rc, pc: pc, ep: ep, o: optionsOf(opts)}
	rand.Read(cc.session[:])
	return cc, nil
}

// Close cancels the streams it opened that are still open (their servers
// get cancel frames; their calls fail Canceled) and releases the inbox
// consumer. Unary calls in flight run on to their end. It is idempotent.
func (cc *ClientConn) Close() error {
	cc.closeOnce.Do(func() {
		cc.closed.Store(true)
		st := status.New(codes.Canceled, "grpcpostbox: client connection closing")
		for _, s := range cc.ep.open() {
			if s.owner == cc {
				s.abort(st, true)
			}
		}
		cc.ep.release()
	})
	return nil
}

// splitMethod splits "/pkg.Service/Method" into the service (its
// mailbox) and the method.
func splitMethod(full string) (service, method string, ok bool) {
	full = strings.TrimPrefix(full, "/")
	i := strings.LastIndexByte(full, '/')
	if i <= 0 || i == len(full)-1 {
		return "", "", false
	}
	return full[:i], full[i+1:], true
}

func badMethod(full string) error {
	return status.Errorf(codes.Unimplemented, "grpcpostbox: malformed method name %q", full)
}

// Invoke performs a unary call: one rpc call (one postbox CALL) to the
// service mailbox.
func (cc *ClientConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if cc.closed.Load() {
		return status.Error(codes.Unavailable, ErrClosed.Error())
	}
	svc, m, ok := splitMethod(method)
	if !ok {
		return badMethod(method)
	}
	body, err := marshal(args)
	if err != nil {
		return status.Errorf(codes.Internal, "grpcpostbox: marshal request: %v", err)
	}
	ci := callInfoOf(opts)
	callOpts := []rpc.CallOption{rpc.WithContentType(envelope.ContentProto)}
	if md, ok := metadata.FromOutgoingContext(ctx); ok && len(md) > 0 {
		callOpts = append(callOpts, rpc.WithMetadata(rpc.Metadata(md)))
	}
	rep, err := cc.rc.Invoke(ctx, svc, m, body, callOpts...)
	var hdr, tlr metadata.MD
	var peerEP uint64
	if rep != nil {
		hdr, tlr = metadata.MD(rep.Header), metadata.MD(rep.Trailer)
		if rep.Message != nil {
			peerEP = rep.Message.Sender.Endpoint
		}
	}
	if err != nil {
		st := rpcStatus(err, tlr)
		ci.deliver(hdr, tlr, peerEP)
		return st.Err()
	}
	ci.deliver(hdr, tlr, peerEP)
	if err := unmarshal(rep.Body, reply); err != nil {
		return status.Errorf(codes.Internal, "grpcpostbox: unmarshal reply: %v", err)
	}
	return nil
}

// rpcStatus is the gRPC status of an rpc error, with the details the
// trailer carries.
func rpcStatus(err error, trailer metadata.MD) *status.Status {
	msg := err.Error()
	if e, ok := errors.AsType[*rpc.Error](err); ok {
		msg = e.Message
	}
	return withDetails(codes.Code(rpc.CodeOf(err)), msg, trailer)
}

// callInfo is what the grpc.CallOptions of a call ask for.
type callInfo struct {
	header, trailer *metadata.MD
	peer            *peer.Peer
}

func callInfoOf(opts []grpc.CallOption) callInfo {
	var ci callInfo
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			ci.header = o.HeaderAddr
		case grpc.TrailerCallOption:
			ci.trailer = o.TrailerAddr
		case grpc.PeerCallOption:
			ci.peer = o.PeerAddr
		}
	}
	return ci
}

// deliver fills in what the call options asked for.
func (ci *callInfo) deliver(header, trailer metadata.MD, peerEP uint64) {
	if ci.header != nil {
		*ci.header = header
	}
	if ci.trailer != nil {
		*ci.trailer = trailer
	}
	if ci.peer != nil && peerEP != 0 {
		*ci.peer = peer.Peer{Addr: Addr(postbox.InboxName(peerEP))}
	}
}

// Addr is a postbox address (a mailbox name or an inbox @id) as a
// net.Addr: the peer of a call (grpc.Peer, peer.FromContext).
type Addr string

func (a Addr) Network() string { return "postbox" }
func (a Addr) String() string  { return string(a) }

func (cc *ClientConn) newID() envelope.ID { return envelope.NewID(cc.session, cc.seq.Add(1)) }

// codec is gRPC's own proto codec, so messages marshal exactly as over
// HTTP/2.
var codec = encoding.GetCodecV2(gproto.Name)

func marshal(v any) ([]byte, error) {
	bs, err := codec.Marshal(v)
	if err != nil {
		return nil, err
	}
	b := bs.Materialize()
	bs.Free()
	return b, nil
}

// marshalMsg marshals v as the body of a msg frame: seqLen bytes left for
// its number, then the message, in one allocation.
func marshalMsg(v any) ([]byte, error) {
	bs, err := codec.Marshal(v)
	if err != nil {
		return nil, err
	}
	b := make([]byte, seqLen, seqLen+bs.Len())
	for _, buf := range bs {
		b = append(b, buf.ReadOnlyData()...)
	}
	bs.Free()
	return b, nil
}

func unmarshal(b []byte, v any) error {
	return codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, v)
}
