package grpcpostbox

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// serveStream accepts a stream open and runs its handler. The accept
// (this side's stream id and window) goes to the opener's inbox; then
// the handler's messages, and last an end frame with status and
// trailers. A cancel from the client, the client's death (keepalive), or
// the deadline cancels the handler's context.
func (s *Server) serveStream(ep *endpoint, m *postbox.Message, meth *method) {
	h := m.Header()
	name := h.Get(envelope.Method)
	from, window := parseUint(h.Get(keyFrom)), parseUint(h.Get(keyWindow))
	peerEP, ok := inboxID(m.ReplyTo())
	if !ok || from == 0 || window == 0 {
		return // not a stream open anyone could answer
	}
	reject := func(st *status.Status) {
		opts := frameOpts(frameEnd, from, postbox.CorrelationID(m.CorrelationID()), postbox.WithHeader(keySeq, "0"))
		opts, body := statusOpts(opts, st)
		ctx, cancel := context.WithTimeout(s.base, 5*time.Second)
		defer cancel()
		s.c.Mailbox(m.ReplyTo()).Send(ctx, body, opts...)
	}
	switch {
	case meth == nil || meth.stream == nil:
		reject(unknownMethod(name))
		return
	case m.Redeliveries > 0:
		// The server that accepted this stream died (its lease came back).
		reject(status.New(codes.Unavailable, "grpcpostbox: the server of this stream went away"))
		return
	case ep == nil:
		reject(status.New(codes.Unavailable, "grpcpostbox: server closing"))
		return
	}
	st := newStream(ep, false, s.o.window)
	st.peerEP, st.peerID, st.credit = peerEP, from, window
	ep.add(st)
	ss := &serverStream{s: st, method: name}
	ctx, cancel := s.handlerContext(m, (*serverTransport)(ss))
	ss.ctx = ctx
	st.onFail = cancel
	defer cancel()
	stop := context.AfterFunc(ctx, func() { st.abort(status.FromContextError(ctx.Err()), true) })
	defer stop() // before cancel: a stream that ended in order sends no cancel

	acc := frameOpts(frameAccept, from, postbox.CorrelationID(m.CorrelationID()),
		postbox.WithHeader(keyFrom, fmtUint(st.id)), postbox.WithHeader(keyWindow, fmtUint(uint64(s.o.window))))
	if _, err := s.c.Mailbox(m.ReplyTo()).Send(ctx, nil, acc...); err != nil {
		st.abort(transportStatus(ctx, err), false)
		return
	}
	err := meth.stream.Handler(meth.impl, ss)
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
	opts, body := statusOpts(opts, res)
	if body != nil {
		opts = append(opts, postbox.ContentType(detailsType))
	}
	if err := st.sendFinal(ctx, frameEnd, opts, body); err != nil && ctx.Err() == nil {
		st.abort(transportStatus(ctx, err), false)
		return
	}
	st.finish()
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
	body, err := marshal(m)
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
