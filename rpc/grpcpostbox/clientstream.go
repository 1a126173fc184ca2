package grpcpostbox

import (
	"context"
	"errors"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// NewStream opens a stream (client-, server- or bidi-streaming): a CALL
// to the service mailbox whose request is the open and whose reply is
// the server's accept, so NewStream returns once a server has taken the
// stream (or with its refusal: Unimplemented, or Unavailable when there
// is no such service). The server's headers, messages and end then
// arrive in this client's inbox. The stream ends when ctx does (the
// server is sent a cancel; a cancel while the open still waits for a
// server withdraws it).
func (cc *ClientConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if cc.closed.Load() {
		return nil, status.Error(codes.Unavailable, ErrClosed.Error())
	}
	svc, m, ok := splitMethod(method)
	if !ok {
		return nil, badMethod(method)
	}
	s := newStream(cc.ep, true, cc.o.window)
	s.owner = cc
	cs := &clientStream{s: s, ctx: ctx, desc: desc, ci: callInfoOf(opts), hdrDone: make(chan struct{})}
	s.onFrame = cs.onFrame
	s.onFail = cs.onFail
	id := cc.newID()
	s.openID = string(id[:])
	cc.ep.add(s)

	md, _ := metadata.FromOutgoingContext(ctx)
	open := make([]postbox.CallOption, 0, 8+md.Len())
	open = append(open, postbox.CorrelationID(id[:]), postbox.WithHeader(envelope.Method, m),
		// at-least-once: so that package rpc hands a redelivered open to
		// the handler, which answers it Unavailable with an end frame. The
		// open itself is never retried.
		postbox.WithHeader(envelope.Semantics, envelope.SemAtLeastOnce),
		postbox.WithHeader(keyFrame, frameOpen), postbox.WithHeader(keyFrom, fmtUint(s.id)),
		postbox.WithHeader(keyWindow, fmtUint(uint64(cc.o.window))))
	for k, vs := range md {
		if k != "" && k[0] != ':' {
			for _, v := range vs {
				open = append(open, postbox.WithHeader(envelope.RequestMeta+strings.ToLower(k), v))
			}
		}
	}
	rep, err := cc.pc.Mailbox(svc).Call(ctx, nil, open...)
	if err != nil {
		st := callStatus(ctx, err)
		s.abort(st, false)
		return nil, st.Err()
	}
	f, ok := parseFrame(rep)
	switch {
	case ok && f.kind == frameAccept && f.stream == s.id && f.from != 0:
		s.mu.Lock()
		s.accepted(f)
		s.mu.Unlock()
	case ok && f.kind == frameEnd:
		st := statusOf(rep)
		if st == nil {
			st = status.New(codes.Internal, "grpcpostbox: stream ended before it was accepted")
		}
		s.abort(st, false)
		return nil, st.Err()
	default: // package rpc refused the open (no such method, deadline passed, ...)
		st := statusOf(rep)
		if st == nil {
			st = status.New(codes.Internal, "grpcpostbox: the reply to a stream open is not an accept")
		}
		s.abort(st, false)
		return nil, st.Err()
	}
	cs.stop = context.AfterFunc(ctx, func() { s.abort(status.FromContextError(ctx.Err()), true) })
	return cs, nil
}

// callStatus is the status of a failed CALL.
func callStatus(ctx context.Context, err error) *status.Status {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err())
	}
	if errors.Is(err, postbox.ErrNotFound) {
		return status.Newf(codes.Unavailable, "grpcpostbox: no such service (no server has started): %v", err)
	}
	return transportStatus(ctx, err)
}

// clientStream is the client's grpc.ClientStream.
type clientStream struct {
	s    *stream
	ctx  context.Context
	desc *grpc.StreamDesc
	ci   callInfo
	stop func() bool

	// Guarded by s.mu.
	hdrDone chan struct{} // closed when the response headers are known (or the stream failed)
	hdrSet  bool
	header  metadata.MD
	trailer metadata.MD
	over    bool // RecvMsg has reported the end
}

// onFrame takes accept, headers and end frames; s.mu is held.
func (cs *clientStream) onFrame(f frame) {
	switch f.kind {
	case frameAccept:
		cs.s.accepted(f)
	case frameHeaders:
		cs.setHeader(f.msg)
	case frameEnd:
		cs.setHeader(f.msg) // a stream that ends without headers carries them in its end
		cs.trailer = mdOf(f.msg.Header(), envelope.TrailerMeta)
		if st := statusOf(f.msg); st != nil {
			cs.s.onEOF = withDetails(st.Code(), st.Message(), cs.trailer)
		} else {
			delete(cs.trailer, detailsKey)
		}
	}
}

func (cs *clientStream) setHeader(m *postbox.Message) {
	if cs.hdrSet {
		return
	}
	cs.hdrSet = true
	cs.header = mdOf(m.Header(), envelope.HeaderMeta)
	if cs.header == nil {
		cs.header = metadata.MD{}
	}
	close(cs.hdrDone)
}

func (cs *clientStream) onFail() {
	cs.s.mu.Lock()
	if !cs.hdrSet {
		cs.hdrSet = true
		close(cs.hdrDone)
	}
	cs.s.mu.Unlock()
}

// Header waits for the response headers.
func (cs *clientStream) Header() (metadata.MD, error) {
	<-cs.hdrDone
	cs.s.mu.Lock()
	defer cs.s.mu.Unlock()
	if cs.header == nil && cs.s.failed != nil {
		return nil, cs.s.failed.Err()
	}
	return cs.header, nil
}

// Trailer returns the trailers; they are complete once RecvMsg has
// returned an error (io.EOF included).
func (cs *clientStream) Trailer() metadata.MD {
	cs.s.mu.Lock()
	defer cs.s.mu.Unlock()
	return cs.trailer
}

// CloseSend half-closes the stream: the server's RecvMsg returns io.EOF
// after the messages sent. Like gRPC's, it always returns nil; a failure
// shows in RecvMsg.
func (cs *clientStream) CloseSend() error {
	if err := cs.s.sendFinal(cs.ctx, frameClose, nil, nil); err != nil {
		cs.s.abort(transportStatus(cs.ctx, err), true)
	}
	return nil
}

func (cs *clientStream) Context() context.Context { return cs.ctx }

// SendMsg sends m, waiting for credit. After the stream has ended it
// returns io.EOF; RecvMsg then tells the status.
func (cs *clientStream) SendMsg(m any) error {
	body, err := marshalMsg(m)
	if err != nil {
		return status.Errorf(codes.Internal, "grpcpostbox: marshal: %v", err)
	}
	if err := cs.s.send(cs.ctx, body); err != nil {
		if !cs.desc.ClientStreams {
			// As gRPC-go: generated code for a call with one request
			// returns SendMsg's error at once, so the status must come
			// from RecvMsg instead.
			return nil
		}
		return io.EOF
	}
	return nil
}

// RecvMsg receives the next message into m; io.EOF when the server ended
// the stream with OK, its status error otherwise.
func (cs *clientStream) RecvMsg(m any) error {
	body, err := cs.s.recv()
	if err == nil {
		if err := unmarshal(body, m); err != nil {
			st := status.Newf(codes.Internal, "grpcpostbox: unmarshal: %v", err)
			cs.s.abort(st, true)
			return cs.end(st.Err())
		}
		if cs.desc.ServerStreams {
			return nil
		}
		// One response: the end must follow it.
		if _, err := cs.s.recv(); err == nil {
			st := status.New(codes.Internal, "grpcpostbox: more than one response to a call with one response")
			cs.s.abort(st, true)
			return cs.end(st.Err())
		} else if !errors.Is(err, io.EOF) {
			return cs.end(err)
		}
		if err := cs.endStatus(); err != nil {
			return cs.end(err)
		}
		cs.end(nil)
		return nil
	}
	if errors.Is(err, io.EOF) {
		if st := cs.endStatus(); st != nil {
			return cs.end(st)
		}
	}
	return cs.end(err)
}

func (cs *clientStream) endStatus() error {
	cs.s.mu.Lock()
	defer cs.s.mu.Unlock()
	if cs.s.onEOF != nil {
		return cs.s.onEOF.Err()
	}
	return nil
}

// end finishes the call the first time RecvMsg reports its end: the call
// options get headers and trailers, and ctx is no longer watched.
func (cs *clientStream) end(err error) error {
	cs.s.mu.Lock()
	first := !cs.over
	cs.over = true
	hdr, tlr, peerEP := cs.header, cs.trailer, cs.s.peerEP
	cs.s.mu.Unlock()
	if first {
		if cs.stop != nil {
			cs.stop()
		}
		cs.s.finish()
		cs.ci.deliver(hdr, tlr, peerEP)
	}
	return err
}
