package grpcpostbox

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// serveStream is the raw handler of a streaming method: it accepts the
// open and runs the stream. The accept (this side's stream id and
// window) goes to the opener's inbox with the open's CORRELATION_ID, so
// the opener's CALL claims it as its reply; then come the handler's
// messages, and last an end frame with status and trailers. The open
// stays leased until the handler returns (rpc acks it then): if this
// process dies, the broker gives it back, and the next server's handler
// answers the client Unavailable. A cancel from the client, the client's
// death (keepalive), the deadline or the rpc.Server's Close cancels the
// handler's context.
func (s *Server) serveStream(m *method) rpc.RawHandler {
	return func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) {
		h := r.Message.Header()
		from, window := parseUint(h.Get(keyFrom)), parseUint(h.Get(keyWindow))
		peerEP, ok := inboxID(r.Message.ReplyTo())
		if !ok || from == 0 || window == 0 || h.Get(keyFrame) != frameOpen {
			return nil, &rpc.Error{Code: envelope.Unimplemented, Message: "grpcpostbox: " + m.name + " is a streaming method: open a stream"}
		}
		s.runStream(ctx, r, m, peerEP, from, window)
		// rpc sends this as the call's reply; the CALL already has the
		// accept, so the broker drops it.
		return nil, nil
	}
}

func (s *Server) runStream(ctx context.Context, r *rpc.Request, meth *method, peerEP, from, window uint64) {
	msg := r.Message
	end := func(st *status.Status) {
		opts := statusOpts(frameOpts(frameEnd, from, postbox.CorrelationID(msg.CorrelationID()), postbox.WithHeader(keySeq, "0")), st)
		s.pc.Mailbox(msg.ReplyTo()).Send(ctx, nil, opts...)
	}
	if msg.Redeliveries > 0 {
		// The server that accepted this stream died (its lease came
		// back). gRPC does not replay a stream.
		end(status.New(codes.Unavailable, "grpcpostbox: the server of this stream went away"))
		return
	}
	ep, err := s.endpoint(ctx)
	if err != nil {
		end(status.Newf(codes.Unavailable, "grpcpostbox: %v", err))
		return
	}
	st := newStream(ep, false, s.o.window)
	st.peerEP, st.peerID, st.credit = peerEP, from, window
	ep.add(st)
	ss := &serverStream{s: st, method: meth.name}
	ctx, cancel := context.WithCancel(handlerContext(ctx, r, (*serverTransport)(ss)))
	defer cancel()
	ss.ctx = ctx
	st.onFail = cancel
	stop := context.AfterFunc(ctx, func() { st.abort(status.FromContextError(ctx.Err()), true) })
	defer stop() // before cancel: a stream that ended in order sends no cancel

	acc := frameOpts(frameAccept, from, postbox.CorrelationID(msg.CorrelationID()),
		postbox.WithHeader(keyFrom, fmtUint(st.id)), postbox.WithHeader(keyWindow, fmtUint(uint64(s.o.window))))
	if _, err := s.pc.Mailbox(msg.ReplyTo()).Send(ctx, nil, acc...); err != nil {
		st.abort(transportStatus(ctx, err), false)
		return
	}
	err = s.runHandler(meth, ss)
	res := errorStatus(err)
	st.mu.Lock()
	aborted := st.failed != nil
	st.mu.Unlock()
	if aborted {
		return // the client cancelled or is gone: no one reads an end
	}
	ss.mu.Lock()
	var opts []postbox.SendOption
	if !ss.hdrSent {
		opts = mdOpts(opts, envelope.HeaderMeta, ss.header)
		ss.hdrSent = true
	}
	opts = mdOpts(opts, envelope.TrailerMeta, ss.trailer)
	ss.mu.Unlock()
	opts = statusOpts(opts, res)
	if err := st.sendFinal(ctx, frameEnd, opts, nil); err != nil && ctx.Err() == nil {
		st.abort(transportStatus(ctx, err), false)
		return
	}
	st.finish()
}

// runHandler runs the stream's handler (through the interceptor, if
// any); a panic becomes an Internal status, so the client still gets an
// end.
func (s *Server) runHandler(meth *method, ss *serverStream) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = status.Errorf(codes.Internal, "grpcpostbox: handler of %s panicked: %v", meth.name, p)
		}
	}()
	if s.o.stream != nil {
		info := &grpc.StreamServerInfo{FullMethod: meth.name, IsClientStream: meth.stream.ClientStreams, IsServerStream: meth.stream.ServerStreams}
		return s.o.stream(meth.impl, ss, info, meth.stream.Handler)
	}
	return meth.stream.Handler(meth.impl, ss)
}

// inboxID parses an inbox address "@N".
func inboxID(addr string) (uint64, bool) {
	if len(addr) < 2 || addr[0] != '@' {
		return 0, false
	}
	n := parseUint(addr[1:])
	return n, n != 0
}

// serverStream is the handler's grpc.ServerStream.
type serverStream struct {
	s      *stream
	ctx    context.Context
	method string

	mu      sync.Mutex // guards header, trailer, hdrSent; held while headers are sent
	header  metadata.MD
	trailer metadata.MD
	hdrSent bool
}

var _ grpc.ServerStream = (*serverStream)(nil)

func (ss *serverStream) Context() context.Context { return ss.ctx }

func (ss *serverStream) SetHeader(md metadata.MD) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.hdrSent {
		return status.Error(codes.Internal, "grpcpostbox: headers already sent")
	}
	ss.header = metadata.Join(ss.header, md)
	return nil
}

func (ss *serverStream) SendHeader(md metadata.MD) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.hdrSent {
		return status.Error(codes.Internal, "grpcpostbox: headers already sent")
	}
	ss.header = metadata.Join(ss.header, md)
	return ss.sendHeaderLocked()
}

// sendHeaderLocked sends the headers frame; ss.mu is held.
func (ss *serverStream) sendHeaderLocked() error {
	ss.hdrSent = true
	s := ss.s
	s.mu.Lock()
	to, id, failed := s.peerInbox(), s.peerID, s.failed
	s.mu.Unlock()
	if failed != nil {
		return failed.Err()
	}
	opts := mdOpts(frameOpts(frameHeaders, id), envelope.HeaderMeta, ss.header)
	if _, err := s.ep.c.Mailbox(to).Send(ss.ctx, nil, opts...); err != nil {
		st := transportStatus(ss.ctx, err)
		s.abort(st, false)
		return st.Err()
	}
	return nil
}

func (ss *serverStream) SetTrailer(md metadata.MD) {
	ss.mu.Lock()
	ss.trailer = metadata.Join(ss.trailer, md)
	ss.mu.Unlock()
}

// SendMsg sends m (after the headers, the first time), waiting for
// credit from the client.
func (ss *serverStream) SendMsg(m any) error {
	body, err := marshalMsg(m)
	if err != nil {
		return status.Errorf(codes.Internal, "grpcpostbox: marshal: %v", err)
	}
	ss.mu.Lock()
	if !ss.hdrSent {
		if err := ss.sendHeaderLocked(); err != nil {
			ss.mu.Unlock()
			return err
		}
	}
	ss.mu.Unlock()
	return ss.s.send(ss.ctx, body)
}

// RecvMsg receives the client's next message; io.EOF after its
// half-close.
func (ss *serverStream) RecvMsg(m any) error {
	body, err := ss.s.recv()
	if err != nil {
		return err
	}
	if err := unmarshal(body, m); err != nil {
		return status.Errorf(codes.Internal, "grpcpostbox: unmarshal: %v", err)
	}
	return nil
}

// serverTransport is the stream as a grpc.ServerTransportStream, for
// grpc.SetHeader, grpc.SendHeader and grpc.SetTrailer on its context.
type serverTransport serverStream

func (t *serverTransport) Method() string { return t.method }
func (t *serverTransport) SetHeader(md metadata.MD) error {
	return (*serverStream)(t).SetHeader(md)
}
func (t *serverTransport) SendHeader(md metadata.MD) error {
	return (*serverStream)(t).SendHeader(md)
}
func (t *serverTransport) SetTrailer(md metadata.MD) error {
	(*serverStream)(t).SetTrailer(md)
	return nil
}
