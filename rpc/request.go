package rpc

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// Request is a call as its handler sees it. The handler's context carries
// it too (RequestFrom, RequestID).
type Request struct {
	Service, Method string
	// ID is the request id (session + sequence). Retries of one call
	// share it: a handler under at-least-once can make its effects
	// idempotent with it. It is zero for a maybe request whose
	// correlation id is not a request id (a plain Mailbox.Call, such as
	// postbox req sends).
	ID        envelope.ID
	Semantics Semantics
	// Attempt is the caller's attempt number (1 for the first).
	Attempt int
	// Deadline is the caller's deadline (zero if none); the handler's
	// context ends there.
	Deadline    time.Time
	Metadata    Metadata
	ContentType string
	Body        []byte
	// Message is the request message itself: its Sender (who called, as
	// the broker established it), ReplyTo, Redeliveries and headers.
	Message *postbox.Message

	srv        *Server
	hasID      bool       // ID was given
	attemptEnd time.Time  // rpc-attempt-deadline; zero if none
	mu         sync.Mutex // guards replied
	replied    bool
}

// Reply is a call's result: what a handler returns, and what the caller
// gets. Header and Trailer are the response metadata (gRPC's headers and
// trailers).
type Reply struct {
	Body        []byte
	ContentType string
	Header      Metadata
	Trailer     Metadata
	// Set on the caller's side only: Cached reports that the reply came
	// from the server's reply cache (a duplicate of a finished call);
	// Attempts counts the attempts made; Message is the reply message.
	Cached   bool
	Attempts int
	Message  *postbox.Message
}

type requestKey struct{}

// RequestFrom returns the request a handler's context belongs to, nil
// outside a handler.
func RequestFrom(ctx context.Context) *Request {
	r, _ := ctx.Value(requestKey{}).(*Request)
	return r
}

// RequestID returns the id of the request a handler's context belongs
// to; false outside a handler or for a request without one (see
// Request.ID).
func RequestID(ctx context.Context) (envelope.ID, bool) {
	if r := RequestFrom(ctx); r != nil && r.hasID {
		return r.ID, true
	}
	return envelope.ID{}, false
}

// Reply sends the reply now, while the handler keeps running (a
// streaming handler does this): err, if not nil, is the status sent
// instead of rep's body (rep may still carry Header and Trailer). What
// the handler returns afterwards is not sent. The request's lease is
// acked when the handler returns. claimed reports whether the caller was
// still waiting. Only the first reply of a request is sent: later ones
// return false.
func (r *Request) Reply(ctx context.Context, rep *Reply, err error) (claimed bool, _ error) {
	r.mu.Lock()
	if r.replied {
		r.mu.Unlock()
		return false, nil
	}
	r.replied = true
	r.mu.Unlock()
	return r.srv.finish(ctx, r, encodeReply(rep, err), false)
}

// takeReply reports whether no reply was sent yet, and marks it sent.
func (r *Request) takeReply() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	first := !r.replied
	r.replied = true
	return first
}

// wireReply is a reply as it is sent and cached.
type wireReply struct {
	body        []byte
	contentType string
	code        envelope.Code
	msg         string
	header      Metadata
	trailer     Metadata
}

func encodeReply(rep *Reply, err error) *wireReply {
	w := &wireReply{}
	if rep != nil {
		w.header, w.trailer = rep.Header, rep.Trailer
		if err == nil {
			w.body, w.contentType = rep.Body, rep.ContentType
		}
	}
	if err != nil {
		e := asError(err)
		w.code, w.msg = e.Code, e.Message
		if w.code == envelope.OK {
			w.code = envelope.Unknown
		}
	}
	return w
}

func errorReply(code envelope.Code, msg string) *wireReply { return &wireReply{code: code, msg: msg} }

// size is what the reply costs in the reply cache.
func (w *wireReply) size() int64 {
	return int64(len(w.body) + len(w.contentType) + len(w.msg) + w.header.size() + w.trailer.size())
}

// options are the reply's headers.
func (w *wireReply) options(cached bool) []postbox.ReplyOption {
	var opts []postbox.ReplyOption
	if w.contentType != "" {
		opts = append(opts, postbox.ContentType(w.contentType))
	}
	if w.code != envelope.OK {
		opts = append(opts, postbox.WithHeader(envelope.Status, strconv.FormatUint(uint64(w.code), 10)))
		if w.msg != "" {
			opts = append(opts, postbox.WithHeader(envelope.Error, truncate(w.msg, 4096)))
		}
	}
	if cached {
		opts = append(opts, postbox.WithHeader(envelope.Cached, "1"))
	}
	for _, m := range []struct {
		md     Metadata
		prefix string
	}{{w.header, envelope.HeaderMeta}, {w.trailer, envelope.TrailerMeta}} {
		for k, vs := range m.md {
			for _, v := range vs {
				opts = append(opts, postbox.WithHeader(m.prefix+k, v))
			}
		}
	}
	return opts
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// decodeReply reads a reply message on the caller's side.
func decodeReply(msg *postbox.Message, attempts int) (*Reply, error) {
	h := msg.Header()
	rep := &Reply{Body: msg.Body, ContentType: msg.ContentType(), Attempts: attempts, Message: msg,
		Header: metadataFrom(h, envelope.HeaderMeta), Trailer: metadataFrom(h, envelope.TrailerMeta),
		Cached: h.Get(envelope.Cached) == "1"}
	if code := envelope.ParseCode(h.Get(envelope.Status)); code != envelope.OK {
		rep.Body = nil
		return rep, &Error{Code: code, Message: h.Get(envelope.Error)}
	}
	return rep, nil
}
