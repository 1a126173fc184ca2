package shm

import (
	"context"
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"
)

// loanSlot tracks one viewed message until it is released. Loans may be
// released in any order; the ring's head advances over the oldest
// released prefix, and pool runs and memfd mappings are freed at once.
type loanSlot struct {
	seq      uint64 // loan sequence, 0 when free
	end      uint64 // ring index just past the record
	released bool
	kind     uint8
	first    uint32 // recPool: the run to free
	mapping  []byte // recMemfd: the read-only mapping to unmap
}

// Loan is a received message lent in place: Bytes points into shared
// memory (the ring, a pool run or a sealed memfd) until Release. Holding
// loans holds room the peer cannot reuse; at most MaxLoans may be out.
type Loan struct {
	c   *Chan
	buf []byte
	seq uint64
}

// Bytes is the message. It must not be used after Release.
func (l Loan) Bytes() []byte { return l.buf }

// Release gives the message's memory back to the sender.
func (l Loan) Release() error {
	if l.c == nil {
		return ErrLoanReleased
	}
	l.c.recvMu.Lock()
	defer l.c.recvMu.Unlock()
	if l.c.state.Load()&stateClosed != 0 {
		return ErrClosed
	}
	return l.c.releaseLocked(l.seq, true)
}

// Receive copies the next message into p, waiting for one per ctx, and
// returns its length. If p is too short it returns the length and
// ErrShortBuffer, and the message stays queued. After the peer has gone,
// Receive returns the messages it published, then ErrPeerGone.
func (c *Chan) Receive(ctx context.Context, p []byte) (int, error) {
	dl := ctxDeadline(ctx)
	return c.receive(&dl, p)
}

// TryReceive is Receive without waiting: ErrEmpty if nothing is queued.
func (c *Chan) TryReceive(p []byte) (int, error) { return c.receive(&tryDeadline, p) }

// ReceiveTimeout is Receive with a time limit; it returns ErrTimeout when
// the limit passes.
func (c *Chan) ReceiveTimeout(p []byte, d time.Duration) (int, error) {
	dl := timeoutDeadline(d)
	return c.receive(&dl, p)
}

func (c *Chan) receive(dl *deadline, p []byte) (int, error) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	if c.state.Load() == 0 {
		if body, ok := c.takeInlineLocked(len(p)); ok {
			n := copy(p, body)
			c.cons.publish()
			return n, nil
		}
	}
	buf, seq, err := c.viewLocked(dl, len(p))
	if err == ErrShortBuffer {
		return int(seq), err // seq holds the message length
	}
	if err != nil {
		return 0, err
	}
	n := copy(p, buf)
	return n, c.releaseLocked(seq, true)
}

// ReceiveLoan lends the next message in place, waiting for one per ctx.
func (c *Chan) ReceiveLoan(ctx context.Context) (Loan, error) {
	dl := ctxDeadline(ctx)
	return c.receiveLoan(&dl)
}

// TryReceiveLoan is ReceiveLoan without waiting.
func (c *Chan) TryReceiveLoan() (Loan, error) { return c.receiveLoan(&tryDeadline) }

func (c *Chan) receiveLoan(dl *deadline) (Loan, error) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	buf, seq, err := c.viewLocked(dl, -1)
	if err != nil {
		return Loan{}, err
	}
	return Loan{c: c, buf: buf, seq: seq}, nil
}

// ReceiveBatch waits (per ctx) for at least one message, then calls fn on
// each queued message, up to max, in order. Each message is valid only
// during its fn call. What fn has seen is released with one index store
// per run of messages the sender published together (not one per
// message), so a long batch frees room for the sender as it goes. fn must
// not call back into c's receive side. It returns how many fn saw.
func (c *Chan) ReceiveBatch(ctx context.Context, max int, fn func(msg []byte)) (int, error) {
	dl := ctxDeadline(ctx)
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	n := 0
	for n < max {
		if c.relSeq == c.viewSeq && c.state.Load() == 0 {
			n += c.cons.takeInline(max-n, fn)
			if n == max {
				break
			}
		}
		// Empty, or the next record is not inline, or a loan is
		// outstanding: the general way, waiting only for the first.
		if n > 0 {
			dl = tryDeadline
		}
		buf, seq, err := c.viewLocked(&dl, -1)
		if err != nil {
			if n > 0 && (err == ErrEmpty || err == ErrPeerGone) {
				err = nil
			}
			c.publishLocked()
			return n, err
		}
		fn(buf)
		n++
		c.releaseLocked(seq, false)
	}
	c.publishLocked()
	return n, nil
}

func (c *Chan) publishLocked() {
	if c.state.Load()&stateClosed == 0 {
		c.cons.publish()
		c.cons.wakeProducer()
	}
}

// takeInlineLocked is the fast path of Receive: if no
// loan is outstanding and the next record is an inline message of at most
// max bytes (any size if max < 0), it consumes the record (head and read
// move together; the caller publishes head) and returns its body, valid
// until head is published. Otherwise it reports false and the general
// path (viewLocked) takes over, which also reports ErrCorrupt. The caller
// holds recvMu and has checked the state since taking it.
func (c *Chan) takeInlineLocked(max int) ([]byte, bool) {
	if c.relSeq != c.viewSeq {
		return nil, false
	}
	rec, err := c.cons.peek()
	if err != nil || rec.kind != recInline || (max >= 0 && rec.n > uint64(max)) {
		return nil, false
	}
	c.cons.read, c.cons.head = rec.end, rec.end
	return c.cons.data[rec.body : rec.body+rec.n : rec.body+rec.n], true
}

// viewLocked finds the next message, waiting per dl, and records it as
// loan seq. With max >= 0 a message longer than max is left queued and its
// length returned in place of seq, with ErrShortBuffer.
func (c *Chan) viewLocked(dl *deadline, max int) (buf []byte, seq uint64, err error) {
	for {
		if s := c.state.Load(); s&(stateClosed|stateCorrupt) != 0 {
			return nil, 0, c.stateErr()
		}
		if c.viewSeq-c.relSeq >= MaxLoans {
			return nil, 0, ErrTooManyLoans
		}
		rec, err := c.cons.peek()
		if err == ErrEmpty {
			c.cons.publish() // padding skipped by peek
			if err := c.waitData(dl); err != nil {
				return nil, 0, err
			}
			continue
		}
		if err != nil {
			return nil, 0, c.setCorrupt()
		}
		slot := loanSlot{seq: c.viewSeq, end: rec.end, kind: rec.kind}
		body := c.cons.data[rec.body : rec.body+rec.n : rec.body+rec.n]
		switch rec.kind {
		case recInline:
			buf = body
		case recPool:
			length, first, word := getPoolDesc(body)
			if err := c.rxPool.check(length, first, word); err != nil {
				return nil, 0, c.setCorrupt()
			}
			buf, slot.first = c.rxPool.bytes(first, length), first
		case recMemfd:
			length, id := binary.LittleEndian.Uint64(body), binary.LittleEndian.Uint64(body[8:])
			if max >= 0 && length > uint64(max) && length <= c.geo.maxMessage {
				return nil, length, ErrShortBuffer
			}
			m, err := c.openMemfd(dl, length, id)
			if err != nil {
				return nil, 0, err
			}
			buf, slot.mapping = m, m
		}
		if max >= 0 && len(buf) > max {
			return nil, uint64(len(buf)), ErrShortBuffer
		}
		c.loans[c.viewSeq%MaxLoans] = slot
		c.cons.read = rec.end
		c.viewSeq++
		return buf, slot.seq, nil
	}
}

// waitData waits for the producer to publish past what this side has
// read, with recvMu dropped so that loans can be released meanwhile.
func (c *Chan) waitData(dl *deadline) error {
	if dl.try {
		if err := c.stateErr(); err != nil {
			return err
		}
		return ErrEmpty
	}
	w := waitCond{idx: c.cons.tail, old: c.cons.read, word: c.cons.dataWait, spin: &c.spin[spinRecv]}
	c.rxWaiters.Add(1)
	c.recvMu.Unlock()
	err := c.wait(dl, &w)
	c.rxWaiters.Done()
	c.recvMu.Lock()
	return err
}

// releaseLocked ends loan seq; with publish, the new head is stored and a
// producer waiting for room is woken.
func (c *Chan) releaseLocked(seq uint64, publish bool) error {
	if seq < c.relSeq || seq >= c.viewSeq {
		return ErrLoanReleased
	}
	s := &c.loans[seq%MaxLoans]
	if s.seq != seq || s.released {
		return ErrLoanReleased
	}
	s.released = true
	kind := s.kind
	switch kind {
	case recPool:
		c.rxPool.free(s.first)
	case recMemfd:
		unix.Munmap(s.mapping)
		s.mapping = nil
	}
	for c.relSeq < c.viewSeq {
		s := &c.loans[c.relSeq%MaxLoans]
		if !s.released {
			break
		}
		c.cons.head = s.end
		*s = loanSlot{}
		c.relSeq++
	}
	if c.relSeq == c.viewSeq {
		// Nothing outstanding: padding skipped after the last loan is
		// released too.
		c.cons.head = c.cons.read
	}
	if publish {
		c.cons.publish()
		if kind == recPool {
			c.cons.wakeProducer()
		}
	}
	return nil
}
