package postbox

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/postbox-ipc/postbox/wire"
)

// Interrupted returns a channel closed when the broker interrupts this
// message's lease: its caller cancelled its call or timed out, and a
// handler working on it should stop (its context should end);
// InterruptReason says which of the two it was. It is nil,
// never closed, for a message without a lease (auto-acked, browsed).
func (m *Message) Interrupted() <-chan struct{} {
	if m.lease == 0 || m.c == nil {
		return nil
	}
	return m.c.intr.channel(m.lease)
}

// InterruptReason says why the broker interrupted this message's lease,
// once Interrupted() is closed: ErrTimeout when the broker timed its
// caller's call out, ErrCanceled when the caller cancelled it or
// disconnected. (A Go caller cancels its call when its context's
// deadline passes, often before the broker's timer fires: an interrupt
// at the request's Deadline may say either.) It is nil while the lease is not
// interrupted, for a message without a lease, and after the lease is
// settled (Ack, Nack, Reply with AckRequest): read it before settling.
func (m *Message) InterruptReason() error {
	if m.lease == 0 || m.c == nil {
		return nil
	}
	return m.c.intr.reason(m.lease)
}

// interrupts are the INTERRUPTs a client received, by lease, and the
// channels Message.Interrupted handed out. An entry lives until its
// lease is settled by this client (Ack, Nack, Reply with AckRequest) or
// the client closes.
type interrupts struct {
	n  atomic.Int32          // len(m): settling a lease costs one load while nobody asks
	mu sync.Mutex            // guards m
	m  map[uint64]*interrupt // by lease
}

type interrupt struct {
	ch     chan struct{}
	fired  bool
	reason wire.Code        // the INTERRUPT's, once fired
	fns    []*interruptFunc // AfterInterrupt's, not yet stopped
}

type interruptFunc struct {
	f       func()
	stopped bool // guarded by interrupts.mu
}

// AfterInterrupt arranges for f to run when the broker interrupts this
// message's lease (when Interrupted's channel closes), as
// context.AfterFunc does for a context, without a goroutine waiting for
// it: f runs on the connection's reader, so it must be quick and must not
// block (cancel a context, signal a buffered channel). If the lease was
// already interrupted, f runs at once in its own goroutine. stop
// unregisters f and reports whether it did so before f was started. f
// never runs for a message without a lease, or once the lease is settled
// by this client (Ack, Nack, Reply with AckRequest).
func (m *Message) AfterInterrupt(f func()) (stop func() bool) {
	if m.lease == 0 || m.c == nil {
		return func() bool { return true }
	}
	i := &m.c.intr
	fn := &interruptFunc{f: f}
	i.mu.Lock()
	e := i.entry(m.lease)
	if e.fired {
		fn.stopped = true
		i.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	e.fns = append(e.fns, fn)
	i.mu.Unlock()
	return func() bool {
		i.mu.Lock()
		defer i.mu.Unlock()
		was := fn.stopped
		fn.stopped = true
		return !was
	}
}

// entry returns the lease's entry, making it. i.mu must be held.
func (i *interrupts) entry(lease uint64) *interrupt {
	e := i.m[lease]
	if e == nil {
		if i.m == nil {
			i.m = make(map[uint64]*interrupt)
		}
		e = &interrupt{ch: make(chan struct{})}
		i.m[lease] = e
		i.n.Add(1)
	}
	return e
}

func (i *interrupts) channel(lease uint64) <-chan struct{} {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.entry(lease).ch
}

// reason is the error of lease's INTERRUPT reason; nil if it was not
// interrupted (or is settled and forgotten).
func (i *interrupts) reason(lease uint64) error {
	if i.n.Load() == 0 {
		return nil
	}
	i.mu.Lock()
	e := i.m[lease]
	i.mu.Unlock()
	if e == nil || !e.fired {
		return nil
	}
	return interruptError(e.reason)
}

// interruptError is InterruptReason's error for an INTERRUPT's reason.
func interruptError(reason wire.Code) error {
	switch reason {
	case wire.CodeTimeout:
		return ErrTimeout
	case wire.CodeCanceled:
		return ErrCanceled
	}
	// Not a reason the protocol defines: say what it is, and treat it as
	// a cancel (the caller gave up).
	return fmt.Errorf("%w: interrupted with reason %v", ErrCanceled, reason)
}

// fire handles an INTERRUPT for lease.
func (i *interrupts) fire(lease uint64, reason wire.Code) {
	i.mu.Lock()
	var run []func()
	if e := i.entry(lease); !e.fired {
		e.fired, e.reason = true, reason
		close(e.ch)
		for _, fn := range e.fns {
			if !fn.stopped {
				fn.stopped = true
				run = append(run, fn.f)
			}
		}
		e.fns = nil
	}
	i.mu.Unlock()
	for _, f := range run {
		f()
	}
}

// forget drops lease's entry once it is settled.
func (i *interrupts) forget(lease uint64) {
	if i.n.Load() == 0 {
		return
	}
	i.mu.Lock()
	if e, ok := i.m[lease]; ok {
		for _, fn := range e.fns {
			fn.stopped = true
		}
		delete(i.m, lease)
		i.n.Add(-1)
	}
	i.mu.Unlock()
}

// onInterrupt is the handler of pushed INTERRUPT frames.
func (c *Client) onInterrupt(_ wire.Header, p []byte) {
	var m wire.Interrupt
	if m.Decode(p) == nil && m.Lease != 0 {
		c.intr.fire(m.Lease, m.Reason)
	}
}
