package broker

import (
	"fmt"
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// Output backlog bounds.
//
// A connection's output (its framewriter) holds what the broker decided
// to tell the peer and the peer has not read yet. Two things bound it at
// Config.MaxConnBacklog (cb below):
//
//   - replies: the reader takes no request while the backlog is over cb
//     (framewriter.Wait), so a peer that writes without reading stops
//     being read;
//   - deliveries: after a step under a mailbox lock appended a consumer's
//     DELIVER frames and left the backlog at cb or over, the same step
//     stalls that consumer (mailbox.Stall: its credit is taken away and
//     kept here, so the core keeps messages queued instead of handing
//     them out). Once the writer has drained to cb/2 it calls resume
//     (framewriter OnLow, run holding no writer lock), which gives each
//     stalled consumer its credit back under its mailbox lock.
//
// A durable mailbox's deliveries leave once their records are on disk
// (durable.go): the completion that appends them stalls the consumer the
// same way, taking the mailbox lock itself. One step can overshoot cb by
// what it delivers at once (at most the messages its mailbox held).
// Every writer adds its backlog to the
// broker's out gauge, which SEND's MaxQueuedBytes check counts with the
// mailboxes' held bytes: an auto-acked delivery has left its mailbox but
// not the broker's memory until it is written.
//
// Slow consumers: a connection stalled for Config.SlowConsumerTimeout
// (its backlog never drained to cb/2 meanwhile) is disconnected. Its unwritten deliveries
// are dropped (auto-acked ones are lost, as auto-ack means; leased ones
// return to their mailboxes when the connection ends), and each stalled
// consumer gets a final CONSUME reply, LIMIT "slow consumer: ...", in the
// urgent lane: the peer reads it after what the kernel already holds for
// it, if it reads within finalWriteGrace.

// finalWriteGrace bounds how long a slow consumer's last frames may take
// to be written before its socket is closed anyway.
const finalWriteGrace = 5 * time.Second

// overBacklog reports whether c's output is at its bound.
func (c *conn) overBacklog() bool { return c.w.Pending() >= c.b.cfg.MaxConnBacklog }

// stall parks consumer p, whose connection's backlog is over its bound,
// keeping its credit. bx.mu (p.box) must be held. It adds to r the work
// that must run without the lock (arming the resume, the slow-consumer
// timer).
func (c *conn) stall(p *pending, r *completions) {
	n := p.box.core.Stall(p.recv)
	if n == 0 {
		return
	}
	c.pmu.Lock()
	if c.stalled == nil {
		c.stalled = make(map[*pending]uint32)
	}
	c.stalled[p] += n
	first := c.slow == nil && c.b.cfg.SlowConsumerTimeout > 0
	if first {
		c.slow = time.AfterFunc(c.b.cfg.SlowConsumerTimeout, c.slowConsumer)
	}
	c.pmu.Unlock()
	r.add(c.armResume)
}

// stallLocking is stall for a caller holding no lock (a durable
// delivery released once its records are on disk).
func (c *conn) stallLocking(p *pending) {
	var r completions
	p.box.mu.Lock()
	c.stall(p, &r)
	p.box.mu.Unlock()
	r.run()
}

// armResume asks the writer to call resume at its low-water mark, or
// resumes now if it is already there.
func (c *conn) armResume() {
	if !c.w.ArmLow() {
		c.resume()
	}
}

// resume gives every stalled consumer of c its credit back. It takes
// mailbox locks: it runs holding none.
func (c *conn) resume() {
	c.pmu.Lock()
	st := c.stalled
	c.stalled = nil
	if c.slow != nil {
		c.slow.Stop()
		c.slow = nil
	}
	c.pmu.Unlock()
	if c.gone.Load() || c.w.Err() != nil {
		return // closing: its messages stay queued for the others
	}
	for p, n := range st {
		bx := p.box
		var r completions
		bx.mu.Lock()
		before := bx.core.HeldBytes()
		bx.core.AddCredit(p.recv, n)
		c.b.apply(bx, bx.core.Effects(), &r)
		c.b.account(bx, before)
		bx.mu.Unlock()
		r.run()
	}
}

// slowConsumer ends a connection whose consumers stayed stalled for
// SlowConsumerTimeout.
func (c *conn) slowConsumer() {
	c.pmu.Lock()
	c.slow = nil
	ps := make([]*pending, 0, len(c.stalled))
	for p := range c.stalled {
		ps = append(ps, p)
	}
	c.pmu.Unlock()
	unread := c.w.Pending()
	if len(ps) == 0 || c.gone.Load() {
		// Resumed meanwhile. (Still stalled means the peer did not read
		// even half its backlog in all that time.)
		return
	}
	d := c.b.cfg.SlowConsumerTimeout
	c.b.log.Warn("slow consumer disconnected", "endpoint", c.id, "pid", c.ident.PID, "unread", unread, "for", d)
	msg := fmt.Sprintf("slow consumer: %d bytes unread for %s", unread, d)
	c.w.DropData()
	for _, p := range ps {
		h := replyHeader(p.header(nil), wire.CodeLimit)
		h.Flags |= wire.FlagUrgent
		c.w.Append(true, func(b []byte) []byte {
			b, off := wire.StartFrame(b, h)
			return wire.FinishFrame(wire.AppendError(b, msg), off)
		})
	}
	c.nc.SetWriteDeadline(time.Now().Add(finalWriteGrace))
	c.w.Shutdown(true)
	c.closeRead() // the reader ends: cleanup returns the leases
}
