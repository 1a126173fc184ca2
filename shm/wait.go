package shm

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The wait protocol. A side that must wait first polls (BusyPoll forever,
// Hybrid for an adaptive budget of at most Config.SpinTime), then parks on
// a 32-bit futex word in the segment: the ring's dataWait word for a
// reader, its roomWait word for a writer. Parking is Dekker-style:
//
//	sleeper                      waker
//	store word = 1               publish index (atomic store)
//	re-load the index            load word
//	if unchanged: FUTEX_WAIT(1)  if 1: CAS word 1->0, FUTEX_WAKE
//
// All four are sequentially consistent atomics, so either the sleeper sees
// the new index or the waker sees the flag; FUTEX_WAIT returns at once if
// the word is no longer 1. The waker pays a syscall only when the flag is
// up. The futex is shared (no FUTEX_PRIVATE_FLAG): the kernel keys it by
// the memfd page, so it works across processes and mappings.
//
// A parked side never sleeps longer than parkSlice: each slice it re-checks
// its context, deadline and state. It is woken sooner by everything that
// ends its wait: the watcher goroutine (chan.go) clears the flags and
// wakes both words when the peer goes or the channel closes, and a
// context that can be cancelled gets a context.AfterFunc that does the
// same for the word its sleeper is on (the sleeper re-checks the context
// after raising the flag, so a cancellation cannot slip in between).
//
// The futex was measured against parking in Go's network poller on an
// eventfd (see doc.go, Figures): the futex wakes a parked peer faster, as
// the sleeping thread resumes directly, with no scheduler hop. What made a
// sleeping peer slow to answer was spinning: a side that spun its whole
// 50 µs while the peer was waking took the core the peer needed. Hence
// the adaptive spin below.
const parkSlice = 25 * time.Millisecond

const (
	futexWaitOp = 0 // FUTEX_WAIT, shared
	futexWakeOp = 1 // FUTEX_WAKE, shared
)

func futexWait(w *atomic.Uint32, val uint32, d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWaitOp, uintptr(val),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
}

func futexWake(w *atomic.Uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWakeOp, 1<<30, 0, 0, 0)
}

// deadline is how long a call may wait: not at all (try), until a context
// is done, or until a point in time. It lives on the caller's stack.
type deadline struct {
	try    bool
	ctx    context.Context
	done   <-chan struct{}
	at     time.Time // zero: none
	ctxErr bool      // at came from ctx: report ctx.Err(), not ErrTimeout
}

func ctxDeadline(ctx context.Context) deadline {
	d := deadline{ctx: ctx, done: ctx.Done()}
	if at, ok := ctx.Deadline(); ok {
		d.at, d.ctxErr = at, true
	}
	return d
}

func timeoutDeadline(t time.Duration) deadline {
	return deadline{at: time.Now().Add(t)}
}

var tryDeadline = deadline{try: true}

func (d *deadline) isDone() bool {
	if d.done == nil {
		return false
	}
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// expired reports the error to return if the wait is over.
func (d *deadline) expired() error {
	if d.done != nil {
		select {
		case <-d.done:
			return d.ctx.Err()
		default:
		}
	}
	if !d.at.IsZero() && !time.Now().Before(d.at) {
		if d.ctxErr {
			return context.DeadlineExceeded
		}
		return ErrTimeout
	}
	return nil
}

// waitCond is what a waiter waits for: an index to move past old, or the
// pool's use to drop below used. It copies what it needs so that it can be
// polled without the lock that guards the caller's state.
type waitCond struct {
	idx  *atomic.Uint64
	old  uint64
	pool *pool
	used int
	word *atomic.Uint32 // futex to park on
	spin *atomic.Int64  // Hybrid: the direction's current spin budget, ns
}

func (w *waitCond) ready() bool {
	if w.pool != nil {
		return w.pool.inUse() < w.used
	}
	return w.idx.Load() != w.old
}

// wait blocks until w may be ready (the caller re-checks), the deadline
// passes, or the channel's state says to stop. stop returns the error that
// ends the wait, if any; it is checked only while w is not ready, so a
// reader drains published data after the peer has gone.
func (c *Chan) wait(dl *deadline, w *waitCond) error {
	var start time.Time
	var budget time.Duration
	parked := false
	for i := 0; ; i++ {
		if w.ready() {
			if c.cfg.Wait == Hybrid && !parked && !start.IsZero() {
				c.growSpin(w.spin)
			}
			return nil
		}
		if err := c.stateErr(); err != nil {
			return err
		}
		switch c.cfg.Wait {
		case BusyPoll:
			if i&63 != 63 {
				continue
			}
			if err := dl.expired(); err != nil {
				return err
			}
			if i&1023 == 1023 {
				runtime.Gosched()
			}
			continue
		case Hybrid:
			if i&63 != 63 {
				continue
			}
			if err := dl.expired(); err != nil {
				return err
			}
			if start.IsZero() {
				start, budget = time.Now(), time.Duration(w.spin.Load())
				continue
			}
			if time.Since(start) < budget {
				continue
			}
			if !parked {
				c.shrinkSpin(w.spin)
			}
		}
		parked = true
		if err := dl.expired(); err != nil {
			return err
		}
		c.park(dl, w)
	}
}

// Hybrid's spin adapts per direction: a wait that ends while spinning
// doubles the budget (up to Config.SpinTime), one that has to park halves
// it (down to minSpin). When the peer answers within the spin the channel
// keeps spinning; when it does not (it is asleep, or busy elsewhere),
// spinning would only take a core the peer may need to wake up on, so the
// side parks almost at once.
const minSpin = 2 * time.Microsecond

func (c *Chan) growSpin(s *atomic.Int64) {
	if b := s.Load(); b < int64(c.cfg.SpinTime) {
		s.Store(min(2*b, int64(c.cfg.SpinTime)))
	}
}

func (c *Chan) shrinkSpin(s *atomic.Int64) {
	if b := s.Load(); b > int64(minSpin) {
		s.Store(max(b/2, int64(minSpin)))
	}
}

// park sleeps on w.word for at most parkSlice (less if the deadline is
// nearer), following the protocol at the top of this file.
func (c *Chan) park(dl *deadline, w *waitCond) {
	var stop func() bool
	if dl.done != nil {
		word := w.word
		stop = context.AfterFunc(dl.ctx, func() { kick(word) })
		defer stop()
	}
	w.word.Store(1)
	if w.ready() || c.state.Load() != 0 || dl.isDone() {
		w.word.Store(0)
		return
	}
	d := parkSlice
	if !dl.at.IsZero() {
		if left := time.Until(dl.at); left < d {
			d = left
		}
	}
	if d > 0 {
		futexWait(w.word, 1, d)
	}
	w.word.Store(0)
}

// kick wakes whoever sleeps on word, as a waker would.
func kick(word *atomic.Uint32) {
	if word.CompareAndSwap(1, 0) {
		futexWake(word)
	}
}
