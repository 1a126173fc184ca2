package postbox

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"

	"github.com/postbox-ipc/postbox/internal/mux"
	"github.com/postbox-ipc/postbox/wire"
)

// watchers routes NOTICE frames to their Watcher, by connection and
// request id: a mux stream is given its DELIVERs only, so notices come
// through the connection's push handler for OpNotice.
var watchers sync.Map // watchKey -> *Watcher

type watchKey struct {
	m  *mux.Conn
	id uint64
}

// onNotice is the push handler for OpNotice on m.
func onNotice(m *mux.Conn) func(hd wire.Header, p []byte) {
	return func(hd wire.Header, p []byte) {
		if v, ok := watchers.Load(watchKey{m, hd.Request}); ok {
			(*watchStream)(v.(*Watcher)).Push(hd, p)
		}
	}
}

// Watches: notices about an endpoint or a mailbox (PROTOCOL.md 8.22).

// NoticeKind says what a Notice reports.
type NoticeKind = wire.NoticeKind

// The kinds of notices.
const (
	// NoticeEndpointExited: the watched endpoint is gone; Reason says
	// how. It is the only notice of an endpoint watch, which then ends.
	NoticeEndpointExited = wire.NoticeEndpointExited
	// NoticeCreated: a mailbox of the watched name was created.
	NoticeCreated = wire.NoticeCreated
	// NoticeDestroyed: the watched mailbox was destroyed.
	NoticeDestroyed = wire.NoticeDestroyed
	// NoticeNonEmpty: the mailbox's queue went from empty to not empty.
	NoticeNonEmpty = wire.NoticeNonEmpty
	// NoticeBelowCapacity: the mailbox's queue went from full to below
	// its capacity.
	NoticeBelowCapacity = wire.NoticeBelowCapacity
)

// ExitReason says how a watched endpoint ended.
type ExitReason = wire.ExitReason

// The reasons an endpoint ends.
const (
	// ExitProcessExited: its process exited (the broker saw it through
	// the process's pidfd), whether or not its socket closed first.
	ExitProcessExited = wire.ExitProcessExited
	// ExitDisconnected: its connection closed, and the broker did not see
	// its process exit (it may still run, or the broker cannot tell).
	ExitDisconnected = wire.ExitDisconnected
	// ExitBrokerShutdown: the broker is shutting down.
	ExitBrokerShutdown = wire.ExitBrokerShutdown
)

// Notice is one thing a watch reports.
type Notice struct {
	Kind   NoticeKind
	Target string // what the watch names
	// Endpoint, PID and UID are the watched endpoint's (endpoint watches).
	Endpoint uint64
	PID      int32
	UID      uint32
	Reason   ExitReason // NoticeEndpointExited
	// Status is the exited process's wait status (exit code << 8, or the
	// signal that killed it, as waitpid(2) reports it) when StatusKnown:
	// the kernel tells the broker (Linux 6.15 or later) once the
	// process's parent has reaped it.
	Status      int32
	StatusKnown bool
	// Exists (the armed notice of a mailbox watch): the mailbox exists.
	Exists bool
	Depth  int       // the mailbox's queued messages after the change
	Time   time.Time // when the broker saw it
}

func noticeOf(m *wire.Notice) Notice {
	return Notice{Kind: m.Kind, Target: string(m.Target), Endpoint: m.Endpoint, PID: m.PID, UID: m.UID,
		Reason: m.Reason, Status: m.Status, StatusKnown: m.Flags&wire.NoticeStatusKnown != 0,
		Exists: m.Flags&wire.NoticeExists != 0, Depth: int(m.Depth), Time: time.Unix(0, m.UnixNano)}
}

// Watcher is one watch: the notices the broker pushes about an endpoint
// or a mailbox. Next is meant for one goroutine at a time; Close may be
// called from any. A watch lives on its connection: with WithReconnect, a
// lost connection ends it (ErrWatchEnded, ErrClosed), and the caller
// watches again.
type Watcher struct {
	c      *Client
	lk     *link
	id     uint64
	target string

	mu     sync.Mutex // guards queue, armed, err
	queue  []Notice
	armed  *Notice
	err    error         // why the watch ended; nil while it runs
	ready  chan struct{} // signalled when queue grows, the watch is armed or ends
	ended  chan struct{} // closed when the watch ended
	closed bool
}

// Watch watches target: an endpoint's inbox address ("@id", see
// Client.Inbox and Identity.Endpoint), which yields one notice when that
// endpoint's process exits or its connection ends, or a mailbox name,
// which yields a notice each time the mailbox is created or destroyed,
// becomes non-empty or falls below its capacity. It returns once the
// broker has the watch in place (Armed). An endpoint not connected is
// ErrNotFound; a mailbox needs receive permission (ErrPermission).
func (c *Client) Watch(ctx context.Context, target string) (*Watcher, error) {
	if !wire.ValidAddress(target) {
		return nil, fmt.Errorf("%w: watch %q: want @<endpoint id> or a mailbox name", ErrInvalid, target)
	}
	lk := c.link()
	w := &Watcher{c: c, lk: lk, target: target, ready: make(chan struct{}, 1), ended: make(chan struct{})}
	id, err := lk.m.OpenStream((*watchStream)(w))
	if err != nil {
		return nil, err
	}
	w.id = id
	watchers.Store(watchKey{lk.m, id}, w)
	lk.m.RegisterPush(wire.OpNotice, onNotice(lk.m))
	req := wire.Watch{Target: []byte(target)}
	lk.m.Post(false, wire.Header{Op: wire.OpWatch, Request: id}, req.Append)
	for {
		w.mu.Lock()
		armed, err := w.armed != nil, w.err
		w.mu.Unlock()
		switch {
		case armed:
			return w, nil
		case err != nil:
			var e *Error
			if errors.As(err, &e) {
				return nil, fmt.Errorf("watch %q: %w", target, e)
			}
			return nil, err
		}
		select {
		case <-w.ready:
		case <-ctx.Done():
			// End it at the broker too, waiting no longer than the reply
			// grace for its answer.
			cctx, cancel := context.WithTimeout(context.Background(), c.grace)
			w.Close(cctx)
			cancel()
			return nil, contextEnded(ctx, fmt.Sprintf("watch %q", target))
		}
	}
}

// Armed returns the watch's first notice, which the broker sends when
// the watch is in place: for a mailbox, whether it exists (Exists) and
// its depth; for an endpoint, its PID and UID.
func (w *Watcher) Armed() Notice {
	w.mu.Lock()
	defer w.mu.Unlock()
	return *w.armed
}

// Next returns the next notice, waiting until one comes, the watch ends
// or ctx ends. Once the watch has ended and its notices are handed out,
// it returns an error matching ErrWatchEnded: alone after an endpoint's
// exit notice, with ErrCanceled after Close, or with the broker's reason
// (ErrClosed at shutdown, ErrLimit for a watcher that did not read,
// ErrPermission if a mailbox created under the watched name is not the
// watcher's to read).
func (w *Watcher) Next(ctx context.Context) (Notice, error) {
	for {
		w.mu.Lock()
		if len(w.queue) > 0 {
			n := w.queue[0]
			w.queue[0] = Notice{}
			w.queue = w.queue[1:]
			w.mu.Unlock()
			return n, nil
		}
		err := w.err
		w.mu.Unlock()
		if err != nil {
			return Notice{}, err
		}
		select {
		case <-w.ready:
		case <-ctx.Done():
			return Notice{}, contextEnded(ctx, fmt.Sprintf("watch %q", w.target))
		}
	}
}

// Notices iterates over the notices until the watch or ctx ends; the
// last pair carries the error that ended it (see Next).
func (w *Watcher) Notices(ctx context.Context) iter.Seq2[Notice, error] {
	return func(yield func(Notice, error) bool) {
		for {
			n, err := w.Next(ctx)
			if !yield(n, err) || err != nil {
				return
			}
		}
	}
}

// Done is closed when the watch has ended.
func (w *Watcher) Done() <-chan struct{} { return w.ended }

// Close ends the watch, waiting for the broker to confirm or ctx to end.
// Notices already received are still returned by Next. Closing a watch
// that has ended does nothing.
func (w *Watcher) Close(ctx context.Context) error {
	w.mu.Lock()
	first := !w.closed && w.err == nil // an ended watch has nothing to cancel
	w.closed = true
	w.mu.Unlock()
	if first {
		w.lk.m.Post(true, wire.Header{Op: wire.OpCancel, Flags: wire.FlagUrgent, Request: w.id}, nil)
	}
	var err error
	select {
	case <-w.ended:
	case <-w.lk.m.Done():
	case <-ctx.Done():
		err = contextEnded(ctx, fmt.Sprintf("close watch %q", w.target))
	}
	w.end(fmt.Errorf("%w: watch %q: %w", ErrWatchEnded, w.target, ErrCanceled))
	return err
}

// end records why the watch ended (the first reason wins).
func (w *Watcher) end(err error) {
	w.mu.Lock()
	first := w.err == nil
	if first {
		w.err = err
		close(w.ended)
	}
	w.mu.Unlock()
	if first {
		watchers.Delete(watchKey{w.lk.m, w.id})
	}
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

// watchStream is a Watcher as the connection sees it: the mux.Stream of
// its WATCH. Its methods run on the connection's reader.
type watchStream Watcher

func (s *watchStream) Push(_ wire.Header, p []byte) {
	w := (*Watcher)(s)
	var m wire.Notice
	if m.Decode(p) != nil {
		return
	}
	n := noticeOf(&m)
	w.mu.Lock()
	if m.Kind == wire.NoticeArmed {
		if w.armed == nil {
			w.armed = &n
		}
	} else {
		w.queue = append(w.queue, n)
	}
	w.mu.Unlock()
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

func (s *watchStream) End(hd wire.Header, p []byte) {
	w := (*Watcher)(s)
	if hd.Status == wire.OK {
		w.end(fmt.Errorf("%w: watch %q", ErrWatchEnded, w.target))
		return
	}
	w.end(fmt.Errorf("%w: %w", ErrWatchEnded, replyError(hd.Status, p))) // the text names the watch
}

func (s *watchStream) Stopped(err error) {
	w := (*Watcher)(s)
	w.end(fmt.Errorf("%w: watch %q: %w", ErrWatchEnded, w.target, err))
}
