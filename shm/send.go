package shm

import (
	"context"
	"os"
	"time"
)

// pending is the one outstanding send reservation (under Chan.sendMu).
type pending struct {
	gen   uint64 // non-zero while a reservation is open
	kind  uint8  // recInline, recPool or recMemfd
	pos   uint64 // ring offset of the reserved record's header
	n     uint64 // message length
	first uint32 // recPool: first block of the run
	word  uint32 // recPool: the run's state word
	mf    *os.File
	mmap  []byte // recMemfd: writable mapping of mf
	buf   []byte // where the message goes
}

// Reservation is room for one outgoing message, lent by Reserve: write the
// message into Bytes, then Commit (or Stage) it. Until then the peer sees
// nothing. A Reservation is a small value; copying it is fine.
type Reservation struct {
	c   *Chan
	buf []byte
	gen uint64
}

// Bytes is where the message goes: len(Bytes()) is the reserved size. It
// points into shared memory (the ring, a pool run, or a fresh memfd) and
// must not be used after Commit, Stage or Cancel.
func (r Reservation) Bytes() []byte { return r.buf }

// Commit publishes the message (and any staged before it).
func (r Reservation) Commit() error { return r.c.commit(r.gen, true) }

// Stage completes the message without publishing it: the peer sees it at
// the next Commit, Send, SendBatch or Flush, or as soon as this side has
// to wait for room. Stage several, then Flush: one index store for all.
func (r Reservation) Stage() error { return r.c.commit(r.gen, false) }

// Cancel gives the room back unsent.
func (r Reservation) Cancel() error {
	if r.c == nil {
		return ErrLoanReleased
	}
	r.c.sendMu.Lock()
	defer r.c.sendMu.Unlock()
	if r.gen == 0 || r.c.res.gen != r.gen {
		return ErrLoanReleased
	}
	r.c.cancelLocked()
	return nil
}

// Send copies p into the channel and publishes it, waiting for room (per
// ctx) if the ring or the pool is full.
func (c *Chan) Send(ctx context.Context, p []byte) error {
	dl := ctxDeadline(ctx)
	return c.send(&dl, p)
}

// TrySend is Send without waiting: ErrFull or ErrPoolExhausted if there is
// no room now.
func (c *Chan) TrySend(p []byte) error { return c.send(&tryDeadline, p) }

// SendTimeout is Send with a time limit; it returns ErrTimeout when the
// limit passes.
func (c *Chan) SendTimeout(p []byte, d time.Duration) error {
	dl := timeoutDeadline(d)
	return c.send(&dl, p)
}

func (c *Chan) send(dl *deadline, p []byte) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.res.gen == 0 && c.state.Load() == 0 && c.sendInlineLocked(p) {
		c.prod.publish()
		return nil
	}
	if err := c.reserveLocked(dl, len(p)); err != nil {
		return err
	}
	copy(c.res.buf, p)
	return c.commitLocked(c.res.gen, true)
}

// SendBatch sends msgs in order with one index store (more only if it has
// to wait for room, when it first publishes what it staged). It returns how
// many were sent; on error the first n are sent and published.
func (c *Chan) SendBatch(ctx context.Context, msgs [][]byte) (n int, err error) {
	dl := ctxDeadline(ctx)
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	defer c.prod.publish()
	if err := c.stateErr(); err != nil {
		return 0, err
	}
	c.cancelLocked()
	for i := 0; i < len(msgs); i++ {
		i += c.prod.stageInline(msgs[i:], c.inlineMax)
		if i == len(msgs) {
			break
		}
		// msgs[i] wraps the ring, needs a fresh look at head, or is not
		// inline: the general way.
		p := msgs[i]
		if c.sendInlineLocked(p) {
			continue
		}
		if err := c.reserveLocked(&dl, len(p)); err != nil {
			return i, err
		}
		copy(c.res.buf, p)
		if err := c.commitLocked(c.res.gen, false); err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}

// sendInlineLocked is the fast path of Send and SendBatch: it stages p
// inline if p is small enough and the ring has room now, and reports
// whether it did. The caller has checked the state and that no
// reservation is open; anything else goes the general way.
func (c *Chan) sendInlineLocked(p []byte) bool {
	n := uint64(len(p))
	if n > c.inlineMax {
		return false
	}
	pos, err := c.prod.reserve(n)
	if err != nil {
		return false // ErrFull waits, ErrCorrupt is reported, by reserveLocked
	}
	copy(c.prod.data[pos+recHeader:pos+recHeader+n], p)
	c.prod.commit(pos, n, recInline)
	return true
}

// Flush publishes staged messages.
func (c *Chan) Flush() error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if err := c.stateErr(); err != nil {
		return err
	}
	c.prod.publish()
	return nil
}

// Reserve lends room for an n-byte message, waiting (per ctx) for it. The
// message goes inline, in a pool run or in a memfd by its size, exactly as
// Send would send it. A Reservation still open is cancelled.
func (c *Chan) Reserve(ctx context.Context, n int) (Reservation, error) {
	dl := ctxDeadline(ctx)
	return c.reserve(&dl, n)
}

// TryReserve is Reserve without waiting.
func (c *Chan) TryReserve(n int) (Reservation, error) { return c.reserve(&tryDeadline, n) }

func (c *Chan) reserve(dl *deadline, n int) (Reservation, error) {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if err := c.reserveLocked(dl, n); err != nil {
		return Reservation{}, err
	}
	return Reservation{c: c, buf: c.res.buf, gen: c.res.gen}, nil
}

func (c *Chan) commit(gen uint64, publish bool) error {
	if c == nil {
		return ErrLoanReleased
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.commitLocked(gen, publish)
}

// reserveLocked opens c.res for an n-byte message.
func (c *Chan) reserveLocked(dl *deadline, n int) error {
	if err := c.stateErr(); err != nil {
		return err
	}
	if c.res.gen != 0 {
		c.cancelLocked()
	}
	if n < 0 || uint64(n) > c.geo.maxMessage {
		return ErrTooLarge
	}
	size := uint64(n)
	tier := uint8(recMemfd)
	switch {
	case size <= c.inlineMax:
		tier = recInline
	case size <= c.txPool.max():
		tier = recPool
	}
	for {
		body := size
		if tier != recInline {
			body = poolDescSize // == memfdDescSize
		}
		pos, err := c.prod.reserve(body)
		if err == ErrFull {
			if err := c.waitRoom(dl, nil, 0); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return c.setCorrupt()
		}
		c.resGen++
		c.res = pending{gen: c.resGen, kind: tier, pos: pos, n: size}
		switch tier {
		case recInline:
			c.res.buf = c.prod.data[pos+recHeader : pos+recHeader+size : pos+recHeader+size]
			return nil
		case recMemfd:
			return c.reserveMemfd()
		}
		first, word, used, err := c.txPool.alloc(c.txPool.blocksFor(size))
		if err == ErrPoolExhausted {
			c.res.gen = 0
			if err := c.waitRoom(dl, &c.txPool, used); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			c.res.gen = 0
			return c.setCorrupt()
		}
		c.res.first, c.res.word = uint32(first), word
		c.res.buf = c.txPool.bytes(uint32(first), size)
		return nil
	}
}

// waitRoom waits for the consumer to release ring space (p == nil) or pool
// blocks. Staged records are published first: the consumer cannot free
// room for records it cannot see.
func (c *Chan) waitRoom(dl *deadline, p *pool, used int) error {
	if dl.try {
		if p != nil {
			return ErrPoolExhausted
		}
		return ErrFull
	}
	c.prod.publish()
	w := waitCond{idx: c.prod.head, old: c.prod.headCache, word: c.prod.roomWait, spin: &c.spin[spinSend]}
	if p != nil {
		w.pool, w.used = p, used
	}
	return c.wait(dl, &w)
}

func (c *Chan) commitLocked(gen uint64, publish bool) error {
	if gen == 0 || c.res.gen != gen {
		return ErrLoanReleased
	}
	if err := c.stateErr(); err != nil {
		c.cancelLocked()
		return err
	}
	r := &c.res
	switch r.kind {
	case recInline:
		c.prod.commit(r.pos, r.n, recInline)
	case recPool:
		putPoolDesc(c.prod.data[r.pos+recHeader:], r.n, r.first, r.word)
		c.prod.commit(r.pos, poolDescSize, recPool)
	case recMemfd:
		if err := c.commitMemfd(); err != nil {
			c.cancelLocked()
			return err
		}
	}
	r.gen = 0
	r.buf = nil
	if publish {
		c.prod.publish()
	}
	return nil
}

// cancelLocked abandons c.res. Ring room needs no undo (the tail only
// moves on commit); a pool run or memfd is given back.
func (c *Chan) cancelLocked() {
	r := &c.res
	if r.gen == 0 {
		return
	}
	switch r.kind {
	case recPool:
		c.txPool.free(r.first)
	case recMemfd:
		c.dropMemfd()
	}
	*r = pending{}
}
