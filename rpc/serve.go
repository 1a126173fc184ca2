package rpc

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc/envelope"
	"github.com/postbox-ipc/postbox/rpc/replycache"
)

// attemptSlack is how much earlier than a request's attempt deadline an
// INTERRUPT may arrive and still be taken for the attempt timing out: the
// caller's timer and the server's clock read the same host clock, but
// the interrupt is seen a little late or, through scheduling, the
// server's now a little early.
const attemptSlack = 2 * time.Millisecond

// attemptTimedOut reports whether an INTERRUPT seen now is the request's
// attempt timing out (a retry follows) rather than its caller giving up.
func (r *Request) attemptTimedOut() bool {
	return !r.attemptEnd.IsZero() && !time.Now().Before(r.attemptEnd.Add(-attemptSlack))
}

// deadlineDue reports whether an INTERRUPT seen now is the caller's
// deadline (the request's) passing rather than the caller cancelling
// before it: the deadline is here, give or take attemptSlack. Its reason
// is then TIMEOUT (the broker's timer ended the CALL) or CANCELED (the
// caller's client cancelled its CALL as its context's deadline passed,
// ahead of the broker's timer): either way the call ended at its
// deadline.
func (r *Request) deadlineDue() bool {
	return !r.Deadline.IsZero() && !time.Now().Before(r.Deadline.Add(-attemptSlack))
}

// interruptCause is why a handler's context is canceled on an INTERRUPT
// before the request's deadline: its caller cancelled, or its CALL's
// timeout was shorter than its deadline.
func (r *Request) interruptCause() error {
	if errors.Is(r.Message.InterruptReason(), postbox.ErrTimeout) {
		return Errorf(envelope.DeadlineExceeded, "rpc: the call of %s/%s timed out at the broker before its deadline", r.Service, r.Method)
	}
	return Errorf(envelope.Canceled, "rpc: the caller of %s/%s canceled", r.Service, r.Method)
}

// serve handles one request message of svc, from the checks that may
// refuse it to the ack after the reply. It runs on a worker; free is
// called when the handler returns (run), or if none runs, when serve does.
func (s *Server) serve(svc *service, msg *postbox.Message, free func()) {
	ran := false
	defer func() {
		if !ran {
			free()
		}
	}()
	h := msg.Header()
	if msg.ReplyTo() == "" || msg.CorrelationID() == nil {
		// Not a request: nobody can be answered.
		s.opts.errorLog(fmt.Errorf("rpc: message %d in %q is not a request (no reply address or correlation id)", msg.ID, msg.Mailbox))
		msg.AckNoWait()
		return
	}
	sem, err := ParseSemantics(h.Get(envelope.Semantics))
	if err != nil {
		s.refuse(msg, envelope.InvalidArgument, "%v", err)
		return
	}
	// A plain Mailbox.Call (postbox req) has a correlation id that is no
	// request id: fine for maybe, not for retries, whose duplicates are
	// recognised by it.
	id, idErr := envelope.ParseID(msg.CorrelationID())
	if idErr != nil && sem != Maybe {
		s.refuse(msg, envelope.InvalidArgument, "rpc: %v semantics needs a request id: %v", sem, idErr)
		return
	}
	method := h.Get(envelope.Method)
	handler := svc.methods[method]
	if handler == nil {
		handler = svc.methods[""]
	}
	if handler == nil {
		s.refuse(msg, envelope.Unimplemented, "rpc: service %q has no method %q", svc.name, method)
		return
	}
	if dl := msg.Deadline(); !dl.IsZero() && !time.Now().Before(dl) {
		s.refuse(msg, envelope.DeadlineExceeded, "rpc: %s/%s: the deadline passed before a server took the request", svc.name, method)
		return
	}
	if sem == Maybe && msg.Redeliveries > 0 {
		// The server that took it before may have run it: maybe runs a
		// handler at most once.
		s.refuse(msg, envelope.Unavailable, "rpc: %s/%s: request redelivered (its server went away); maybe semantics does not run it again", svc.name, method)
		return
	}
	attempt := 1
	if a := h.Get(envelope.Attempt); a != "" { // maybe sends none: no parse error to make
		attempt, _ = strconv.Atoi(a)
	}
	r := &Request{Service: svc.name, Method: method, ID: id, hasID: idErr == nil, Semantics: sem, Attempt: max(attempt, 1),
		Deadline: msg.Deadline(), Metadata: metadataFrom(h, envelope.RequestMeta),
		ContentType: msg.ContentType(), Body: msg.Body, Message: msg, srv: s}
	if ad := h.Get(envelope.AttemptDeadline); ad != "" && sem.retries() {
		if n, err := strconv.ParseInt(ad, 10, 64); err == nil {
			r.attemptEnd = time.Unix(0, n)
		}
	}
	select {
	case <-msg.Interrupted():
		if !r.attemptTimedOut() {
			s.refuse(msg, envelope.Canceled, "rpc: %s/%s: the caller gave up before the handler started", svc.name, method)
			return
		}
		// Only this attempt timed out: its retry waits for this run's
		// reply (a refusal would answer the retry).
	default:
	}
	if sem == ExactlyOnce && !s.admit(r) {
		return
	}
	if sem == Maybe && r.hasID && !s.sight(r.ID, msg) {
		// A copy of a request taken before (the transport duplicated or
		// replayed its frame, or a caller reused the id): maybe runs a
		// handler at most once. It is refused once the run has replied
		// (now, or when the run does: Server.finish): a refusal sent
		// before that reply could answer the original's waiting call,
		// as a duplicated frame waits in the mailbox beside its
		// original while the call waits.
		return
	}
	ran = true
	s.run(handler, r, free)
}

// sight records a maybe request's id and reports whether it is new. A
// copy is refused at once if the first run has replied, else held for
// Server.finish to refuse.
func (s *Server) sight(id envelope.ID, msg *postbox.Message) bool {
	s.seenMu.Lock()
	v := s.seen.Add(id, time.Now().UnixNano())
	if v == replycache.SeenRunning {
		s.seenCopies[id] = append(s.seenCopies[id], msg)
	}
	s.seenMu.Unlock()
	if v == replycache.SeenDone {
		s.refuseCopy(msg, id)
	}
	return v == replycache.SeenNew
}

// refuseCopy answers a copy of a maybe request whose run has replied.
func (s *Server) refuseCopy(msg *postbox.Message, id envelope.ID) {
	s.refuse(msg, envelope.AlreadyExists, "rpc: maybe request %v was taken and answered before (this is a copy); it is not run again", id)
}

// admit asks the reply cache about an exactly-once request and answers
// it if it must not run: true means run it.
func (s *Server) admit(r *Request) bool {
	msg := r.Message
	acked, _ := strconv.ParseUint(msg.Header().Get(envelope.Acked), 10, 64)
	s.cacheMu.Lock()
	v, cached := s.cache.Begin(r.ID, replycache.Sum(r.Method, r.Body), acked, msg, time.Now().UnixNano())
	s.cacheMu.Unlock()
	switch v {
	case replycache.Run:
		return true
	case replycache.Replay:
		s.send(nil, msg, cached, true, true)
	case replycache.Join:
		// The run answers and acks it (Server.finish).
	case replycache.Mismatch:
		s.refuse(msg, envelope.AlreadyExists, "rpc: request id %v is in use by a call with other arguments", r.ID)
	case replycache.Evicted:
		s.refuse(msg, envelope.Aborted, "rpc: request %v ran, but its reply was evicted from the reply cache", r.ID)
	case replycache.Acknowledged:
		s.refuse(msg, envelope.FailedPrecondition, "rpc: request %v was already answered and acknowledged", r.ID)
	case replycache.Busy:
		s.refuse(msg, envelope.ResourceExhausted, "rpc: reply cache full of running calls")
	}
	return false
}

// run runs the handler with the request's context and sends its reply
// unless the handler sent one, and acks the request. free is called as
// the handler returns, before the reply is sent: the handler is free
// for another request while its reply travels.
func (s *Server) run(h RawHandler, r *Request, free func()) {
	ctx := context.WithValue(s.work, requestKey{}, r)
	var cancelDeadline context.CancelFunc = func() {}
	if !r.Deadline.IsZero() {
		ctx, cancelDeadline = context.WithDeadline(ctx, r.Deadline)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancelDeadline()
	// The INTERRUPT cancels the handler's context from the connection's
	// reader: no goroutine per request waits for it.
	stop := r.Message.AfterInterrupt(func() {
		if r.attemptTimedOut() {
			// The attempt timed out: a retry with this id follows
			// and the run's reply will answer it. Run on.
			return
		}
		if r.deadlineDue() {
			// The caller's deadline passed, and the INTERRUPT saying so
			// may beat the context's own timer: leave it to that timer,
			// due now or a moment from now, to end the context with
			// DeadlineExceeded.
			return
		}
		cancel(r.interruptCause())
	})
	rep, err := call(ctx, h, r)
	stop()
	cancel(nil)
	free()
	if err != nil && s.work.Err() != nil && r.Semantics.retries() && r.takeReply() {
		// Close cut the run short: give the request back for another
		// server (the call retries) instead of answering "canceled".
		s.abandon(r)
		return
	}
	if r.takeReply() {
		s.finish(nil, r, encodeReply(rep, err), true)
	} else {
		r.Message.AckNoWait() // replied early
	}
}

// abandon gives back a request whose run Close cut short, and under
// exactly-once the duplicates that joined it, so that another server
// runs it.
func (s *Server) abandon(r *Request) {
	var joined []*postbox.Message
	if r.Semantics == ExactlyOnce {
		s.cacheMu.Lock()
		joined = s.cache.Abort(r.ID)
		s.cacheMu.Unlock()
	}
	for _, m := range append(joined, r.Message) {
		s.giveBack(m)
	}
}

// call runs h, turning a panic into an Internal error.
func call(ctx context.Context, h RawHandler, r *Request) (rep *Reply, err error) {
	defer func() {
		if p := recover(); p != nil {
			rep, err = nil, Errorf(envelope.Internal, "rpc: handler of %s/%s panicked: %v\n%s", r.Service, r.Method, p, debug.Stack())
		}
	}()
	return h(ctx, r)
}
