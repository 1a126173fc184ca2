package postbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Reconnecting.
//
// With WithReconnect, a Client whose connection is lost (the broker
// restarted or crashed, the network failed, the broker was silent for
// its dead-peer time) dials again as Dial did, with the same session id,
// until it succeeds or its policy gives up. What each part of the client
// does across that:
//
//   - Requests in flight when the connection was lost (Send, Receive,
//     Call, Ack, Stat...) fail with an error matching ErrUnknownOutcome:
//     the broker may or may not have carried them out (a send may be
//     queued, an ack may have removed its message, a receive's message
//     is returned to its mailbox since its lease died with the
//     connection). They are not retried: only the application knows
//     whether doing one twice is harmless.
//   - Requests started while the client is reconnecting wait for the new
//     connection (bounded by their context, ErrTimeout at its deadline,
//     nothing sent) and then go on it.
//   - Consumers resume: each open Consumer is re-established on the new
//     connection with its mailbox, type selector, AutoAck and prefetch,
//     and Next goes on returning messages. Messages it had received but
//     not yet handed out are dropped if they were leased (the broker
//     returns them to the mailbox when the connection ends; they come
//     again, redelivered) and kept if auto-acked. A consumer whose
//     mailbox is gone after the reconnect (a broker restart keeps only
//     durable mailboxes) ends with that error (ErrNotFound).
//   - Leases do not resume: a lease belongs to its connection, and the
//     broker returns every message the lost connection held to its
//     mailbox, to be redelivered (its redelivery count up). Ack, Nack and
//     Reply of a message received on an earlier connection fail with
//     ErrStaleLease without asking the broker (an id from the old
//     connection could name another lease on the new one); AckNoWait
//     drops it.
//   - The inbox and the endpoint id change: the old inbox was destroyed
//     with its connection (messages queued there are lost), and the new
//     connection has a new endpoint id and inbox (Identity, Inbox), to
//     which new Calls ask for their replies. A Call in flight fails as
//     above.
//   - Subscriptions resume: each open Subscription subscribes again on
//     the new connection with its pattern, queue group, buffer, policy
//     and filters, and Next goes on returning events. Publications made
//     while the client was disconnected are not delivered to it (pub/sub
//     keeps nothing for a subscriber that is not there: bind the pattern
//     to a mailbox for that), so the first event after a reconnect is a
//     gap notice (Gap set) with Missed 0: how many were missed is not
//     known. Events received before the break are still returned first.
//     A subscription the broker refuses on the new connection (a claim
//     now denies it) ends with that error.
//   - Watches do not resume: a Watcher ends (ErrWatchEnded) with its
//     connection; watch again from OnReconnect.
//   - A Publisher does not resume: its messages in flight have an unknown
//     outcome, and it fails (ErrUnknownOutcome) from then on; make a new
//     one. Shared-memory channels do not resume either (their
//     descriptors were the old connection's).
//   - Done and Err say the client has stopped only once it gives up
//     (or is closed); then everything still waiting fails with ErrClosed.

// ReconnectPolicy says how a Client with WithReconnect dials again after
// losing its connection. The zero value retries forever, waiting 100 ms
// before the first attempt and doubling up to 5 s between attempts.
type ReconnectPolicy struct {
	// MaxAttempts bounds the dials after one lost connection; when they
	// all fail the client stops (Done, Err: ErrClosed with the last
	// dial's error). 0: no bound.
	MaxAttempts int
	// Backoff is the wait before the first attempt (default 100 ms); it
	// doubles after each failure, up to MaxBackoff (default 5 s).
	Backoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one dial and handshake (default 5 s).
	AttemptTimeout time.Duration
	// OnReconnect, if not nil, is called (on the client's reconnect
	// goroutine) after each reconnect, with the identity of the new
	// connection (a new endpoint and inbox), once consumers are resumed.
	OnReconnect func(Identity)
}

// WithReconnect makes Dial's Client reconnect after losing its
// connection, as p says (see the Reconnecting section of reconnect.go's
// documentation, repeated in README: what resumes and what cannot).
// NewClient refuses it (ErrInvalid): it could not dial again.
func WithReconnect(p ReconnectPolicy) DialOption {
	return func(o *dialOptions) { o.reconnect = &p }
}

// connLostError is the error of a request whose connection was lost
// while it was in flight, with reconnecting on: it matches
// ErrUnknownOutcome.
type connLostError struct{ cause error }

func (e *connLostError) Error() string {
	return fmt.Sprintf("postbox: connection to broker lost (%v): outcome unknown (the request may have taken effect); reconnecting", e.cause)
}

func (e *connLostError) Unwrap() error { return e.cause }

func (e *connLostError) Is(target error) bool { return target == ErrUnknownOutcome }

// lostError is mux.Config.Stopped for a reconnecting client.
func lostError(cause error) error {
	if cause == nil {
		return ErrClosed
	}
	return &connLostError{cause}
}

// reconnector is a Client's reconnect goroutine and its state.
type reconnector struct {
	p      ReconnectPolicy
	o      dialOptions
	wg     sync.WaitGroup
	ctx    context.Context // cancelled by close: stop reconnecting
	cancel context.CancelFunc

	mu        sync.Mutex    // guards changed, err, consumers, closing
	changed   chan struct{} // closed (and replaced) whenever the link changes or the client stops
	err       error         // why the client stopped for good
	consumers map[resumable]struct{}
	closing   bool
	done      chan struct{} // closed when the client stopped for good
	closeOnce sync.Once
}

func newReconnector(p ReconnectPolicy, o dialOptions) *reconnector {
	if p.Backoff <= 0 {
		p.Backoff = 100 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 5 * time.Second
	}
	if p.AttemptTimeout <= 0 {
		p.AttemptTimeout = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &reconnector{p: p, o: o, ctx: ctx, cancel: cancel, changed: make(chan struct{}),
		consumers: make(map[resumable]struct{}), done: make(chan struct{})}
}

// resumable is a stream a reconnect re-establishes on the new connection
// (a Consumer, a Subscription): reopen does it, end ends it for good
// when the client stops.
type resumable interface {
	reopen(*link)
	end(error)
}

func (r *reconnector) start(c *Client) {
	r.wg.Add(1)
	go r.run(c)
}

// run waits for the current connection to end and replaces it, until
// the client is closed or a reconnect fails for good.
func (r *reconnector) run(c *Client) {
	defer r.wg.Done()
	for {
		lk := c.link()
		select {
		case <-lk.m.Done():
		case <-r.ctx.Done():
			return
		}
		nlk, err := r.redial(c, lk)
		if err != nil {
			if !errors.Is(err, errClosing) {
				r.stop(c, fmt.Errorf("%w: connection to broker lost and not regained: %w", ErrClosed, err))
			}
			return
		}
		c.l.Store(nlk)
		r.mu.Lock()
		close(r.changed)
		r.changed = make(chan struct{})
		cons := make([]resumable, 0, len(r.consumers))
		for cn := range r.consumers {
			cons = append(cons, cn)
		}
		r.mu.Unlock()
		for _, cn := range cons {
			cn.reopen(nlk)
		}
		if r.p.OnReconnect != nil {
			r.p.OnReconnect(nlk.self)
		}
	}
}

var errClosing = errors.New("postbox: closing")

// redial dials until a handshake succeeds, the policy gives up, or the
// client is closed (errClosing).
func (r *reconnector) redial(c *Client, old *link) (*link, error) {
	wait := r.p.Backoff
	var last error
	for attempt := 1; r.p.MaxAttempts == 0 || attempt <= r.p.MaxAttempts; attempt++ {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.ctx.Done():
			t.Stop()
			return nil, errClosing
		}
		wait = min(2*wait, r.p.MaxBackoff)
		ctx, cancel := context.WithTimeout(r.ctx, r.p.AttemptTimeout)
		nc, err := r.o.redial(ctx)
		if err == nil {
			var lk *link
			lk, err = c.connect(ctx, nc, r.o, old.m.LastID(), lostError)
			if err == nil {
				cancel()
				return lk, nil
			}
			nc.Close()
		}
		cancel()
		last = err
		select {
		case <-r.ctx.Done():
			return nil, errClosing
		default:
		}
	}
	return nil, last
}

// awaitNext waits until the client has a connection other than old, and
// returns nil; or returns why not: the client stopped (its error), or
// ctx ended (nothing was sent: ErrTimeout at a deadline).
func (r *reconnector) awaitNext(ctx context.Context, c *Client, old *link, what string) error {
	for {
		r.mu.Lock()
		ch, err := r.changed, r.err
		r.mu.Unlock()
		if err != nil {
			return err
		}
		if c.link() != old {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return contextEnded(ctx, what+": waiting to reconnect to the broker (nothing was sent)")
		}
	}
}

// stop ends the client for good with err: waiters and consumers fail.
func (r *reconnector) stop(c *Client, err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
		close(r.changed)
		r.changed = make(chan struct{})
	}
	cons := r.consumers
	r.consumers = map[resumable]struct{}{}
	r.mu.Unlock()
	for cn := range cons {
		cn.end(err)
	}
	r.closeOnce.Do(func() { close(r.done) })
}

// stopErr is Client.Err.
func (r *reconnector) stopErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// close is Client.Close: stop reconnecting, close the connection, fail
// what still waits.
func (r *reconnector) close(c *Client) {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	c.conn().Close()
	r.stop(c, ErrClosed)
}

// track registers a consumer or subscription to resume after reconnects;
// it reports false if the client has stopped.
func (r *reconnector) track(cn resumable) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return false
	}
	r.consumers[cn] = struct{}{}
	return true
}

// untrack forgets an ended consumer or subscription.
func (r *reconnector) untrack(cn resumable) {
	r.mu.Lock()
	delete(r.consumers, cn)
	r.mu.Unlock()
}

// resumes reports whether a consumer whose connection stopped should wait
// to be reopened rather than end: the client reconnects and is not
// stopping.
func (r *reconnector) resumes() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err == nil && !r.closing
}
