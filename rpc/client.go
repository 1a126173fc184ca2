package rpc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc/envelope"
	"github.com/postbox-ipc/postbox/rpc/retry"
)

// Client makes calls over a postbox client. It is safe for concurrent
// use. It does not own the postbox client: close that when done.
type Client struct {
	pc      *postbox.Client
	session [16]byte // the session half of every request id
	seq     atomic.Uint64
	policy  retry.Policy

	mu          sync.Mutex          // guards outstanding, and taking an exactly-once call's seq
	outstanding map[uint64]struct{} // exactly-once calls not yet answered, by sequence
}

// ClientOption configures NewClient.
type ClientOption func(*Client)

// WithRetryPolicy sets the retry schedule of at-least-once and
// exactly-once calls (default retry.DefaultPolicy()).
func WithRetryPolicy(p retry.Policy) ClientOption { return func(c *Client) { c.policy = p } }

// NewClient returns a client making calls over pc. Its request ids use a
// fresh random session, so a new Client never reuses the ids of an
// earlier one (a server's reply cache would take them for duplicates).
func NewClient(pc *postbox.Client, opts ...ClientOption) *Client {
	c := &Client{pc: pc, policy: retry.DefaultPolicy(), outstanding: map[uint64]struct{}{}}
	rand.Read(c.session[:])
	for _, o := range opts {
		o(c)
	}
	return c
}

// Postbox returns the postbox client calls go over.
func (c *Client) Postbox() *postbox.Client { return c.pc }

// CallOption configures one call.
type CallOption func(*callOptions)

type callOptions struct {
	sem         Semantics
	md          Metadata
	contentType string
	policy      *retry.Policy
}

// WithSemantics sets the call's semantics (default: the method's, or
// Maybe for Invoke).
func WithSemantics(s Semantics) CallOption { return func(o *callOptions) { o.sem = s } }

// WithMetadata adds request metadata (a handler reads it in
// Request.Metadata).
func WithMetadata(md Metadata) CallOption {
	return func(o *callOptions) {
		if o.md == nil {
			o.md = Metadata{}
		}
		for k, vs := range md {
			o.md.Add(k, vs...)
		}
	}
}

// WithContentType sets the CONTENT_TYPE of an Invoke's body (default
// envelope.ContentBytes; typed calls set their codec's).
func WithContentType(ct string) CallOption { return func(o *callOptions) { o.contentType = ct } }

// WithRetry sets this call's retry schedule.
func WithRetry(p retry.Policy) CallOption { return func(o *callOptions) { o.policy = &p } }

// The options every call of a kind shares, made once.
var (
	contentBytes = postbox.ContentType(envelope.ContentBytes)
	semHeaders   sync.Map // Semantics -> postbox.HeaderOption
)

func semanticsHeader(s Semantics) postbox.HeaderOption {
	if h, ok := semHeaders.Load(s); ok {
		return h.(postbox.HeaderOption)
	}
	h, _ := semHeaders.LoadOrStore(s, postbox.WithHeader(envelope.Semantics, s.String()))
	return h.(postbox.HeaderOption)
}

// jitter is a retry.Source safe for concurrent use.
type jitter struct{}

func (jitter) Float64() float64 { return mrand.Float64() }

// Invoke calls method of service with body and returns the reply. If the
// server answered with an error status the error is an *Error and the
// Reply (with its Header and Trailer, without a body) is returned too.
// Every error matches CodeOf; one that ended the call without a reply
// carries, through OutcomeOf, what became of its request. ctx bounds the
// call; its deadline travels with the request and is the handler's.
func (c *Client) Invoke(ctx context.Context, service, method string, body []byte, opts ...CallOption) (*Reply, error) {
	o := callOptions{contentType: envelope.ContentBytes}
	for _, opt := range opts {
		opt(&o)
	}
	seq, release := c.take(o.sem)
	defer release()
	id := envelope.NewID(c.session, seq)
	// DEADLINE is the caller's deadline (Call takes it from ctx): an
	// attempt ends by cancelling its CALL, never by a deadline of its own.
	ct := contentBytes
	if o.contentType != envelope.ContentBytes {
		ct = postbox.ContentType(o.contentType)
	}
	base := make([]postbox.CallOption, 3, 6+2*len(o.md))
	base[0], base[1], base[2] = postbox.CorrelationID(id[:]), ct, postbox.WithHeader(envelope.Method, method)
	if o.sem != Maybe {
		base = append(base, semanticsHeader(o.sem))
	}
	base = o.md.appendTo(base, envelope.RequestMeta)
	mb := c.pc.Mailbox(service)
	if !o.sem.retries() {
		msg, err := mb.Call(ctx, body, base...)
		return c.result(ctx, service, method, msg, err, 1)
	}

	policy := c.policy
	if o.policy != nil {
		policy = *o.policy
	}
	var dl int64
	if deadline, ok := ctx.Deadline(); ok {
		dl = deadline.UnixNano()
	}
	sched := retry.New(policy, time.Now().UnixNano(), dl, jitter{})
	a := sched.First()
	var last error // the previous attempt's
	for {
		if err := sleepUntil(ctx, a.Start); err != nil {
			return nil, c.ended(ctx, service, method, last, a.N-1)
		}
		opts := append(base[:len(base):len(base)], postbox.WithHeader(envelope.Attempt, strconv.Itoa(a.N)))
		if o.sem == ExactlyOnce {
			opts = append(opts, postbox.WithHeader(envelope.Acked, strconv.FormatUint(c.acked(), 10)))
		}
		msg, timedOut, err := c.attempt(ctx, mb, body, opts, a, dl)
		if err == nil || ctx.Err() != nil || !timedOut && !retryable(err) {
			return c.result(ctx, service, method, msg, err, a.N)
		}
		next, ok := sched.Next(time.Now().UnixNano())
		if !ok {
			return nil, c.ended(ctx, service, method, err, a.N)
		}
		a, last = next, err
	}
}

// attempt makes one attempt of a retried call: a Call cancelled at the
// attempt's end (timedOut reports that it was), unless that is the
// caller's deadline. The request says when
// that is, so that its server takes the interrupt that follows for a
// retry, not a cancel.
func (c *Client) attempt(ctx context.Context, mb *postbox.Mailbox, body []byte, opts []postbox.CallOption, a retry.Attempt, deadline int64) (*postbox.Message, bool, error) {
	if a.End == 0 || deadline != 0 && a.End >= deadline {
		// The last attempt: the caller's deadline ends it.
		msg, err := mb.Call(ctx, body, opts...)
		return msg, false, err
	}
	opts = append(opts, postbox.WithHeader(envelope.AttemptDeadline, strconv.FormatInt(a.End, 10)))
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	var timedOut atomic.Bool
	t := time.AfterFunc(time.Until(time.Unix(0, a.End)), func() {
		timedOut.Store(true)
		cancel()
	})
	msg, err := mb.Call(actx, body, opts...)
	t.Stop()
	return msg, timedOut.Load(), err
}

// take returns the sequence of a new call. An exactly-once call's stays
// outstanding (below every rpc-acked sent) until release. Taking the
// sequence and recording it are one step under mu, so acked never passes
// a sequence taken but not yet recorded: the server would take that call
// for one already answered.
func (c *Client) take(sem Semantics) (seq uint64, release func()) {
	if sem != ExactlyOnce {
		return c.seq.Add(1), func() {}
	}
	c.mu.Lock()
	seq = c.seq.Add(1)
	c.outstanding[seq] = struct{}{}
	c.mu.Unlock()
	return seq, func() {
		c.mu.Lock()
		delete(c.outstanding, seq)
		c.mu.Unlock()
	}
}

// acked is the rpc-acked of the next exactly-once request: the lowest
// sequence still waiting for its reply (every one below has its reply).
func (c *Client) acked() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	low := c.seq.Load() + 1
	for s := range c.outstanding {
		low = min(low, s)
	}
	return low
}

// retryable reports whether an attempt that failed with err is worth
// another: it got no reply in its time, or the service has no mailbox
// yet or lost it (a server is starting or moving), or the broker
// refused it because a CALL with its CORRELATION_ID (the request id)
// still waits there: a late copy of an earlier attempt, retransmitted by
// the transport, which ends when it is answered or times out.
func retryable(err error) bool {
	return errors.Is(err, postbox.ErrTimeout) || errors.Is(err, postbox.ErrNotFound) ||
		errors.Is(err, postbox.ErrDestroyed) || errors.Is(err, postbox.ErrCallInFlight)
}

func sleepUntil(ctx context.Context, at int64) error {
	d := time.Until(time.Unix(0, at))
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// result turns what the last attempt's Call returned into Invoke's.
func (c *Client) result(ctx context.Context, service, method string, msg *postbox.Message, err error, attempts int) (*Reply, error) {
	if err == nil {
		return decodeReply(msg, attempts)
	}
	if ctx.Err() != nil || errors.Is(err, postbox.ErrTimeout) {
		return nil, c.ended(ctx, service, method, err, attempts)
	}
	if errors.Is(err, postbox.ErrNotFound) || errors.Is(err, postbox.ErrDestroyed) {
		return nil, &Error{Code: envelope.Unavailable, err: err,
			Message: fmt.Sprintf("%s/%s: service has no mailbox (no server has started): %v", service, method, err)}
	}
	e := asError(err)
	return nil, &Error{Code: e.Code, Message: fmt.Sprintf("%s/%s: %s", service, method, e.Message), err: err}
}

// ended is the error of a call that got no reply before its context
// ended or its attempts ran out: Canceled if the caller canceled, else
// DeadlineExceeded, saying what became of the (last) request.
func (c *Client) ended(ctx context.Context, service, method string, err error, attempts int) error {
	code, what := envelope.DeadlineExceeded, "no reply before the deadline"
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		code, what = envelope.Canceled, "the call was canceled"
	case ctx.Err() == nil:
		what = "no reply"
	}
	return &Error{Code: code, err: err,
		Message: fmt.Sprintf("%s/%s: %s after %d attempt(s): %s", service, method, what, attempts, describe(err))}
}

// describe says what became of a request, in the caller's words.
func describe(err error) string {
	ce, ok := errors.AsType[*postbox.CallError](err)
	if !ok {
		return "no request was sent"
	}
	switch ce.Outcome {
	case postbox.OutcomeWithdrawn:
		return "the request was withdrawn before any server took it"
	case postbox.OutcomeInProgress:
		return "a server was running it and was interrupted"
	case postbox.OutcomeSettled:
		return "a server took it and settled it without a reply"
	}
	return "what became of the request is unknown"
}
