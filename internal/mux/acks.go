package mux

import "github.com/postbox-ipc/postbox/wire"

// AckNoWait queues lease to be acked without a reply: queued leases are
// folded into ACK frames of lease ranges (consecutive leases cost 12
// bytes per run, not per lease) right before the writer's next write.
func (c *Conn) AckNoWait(lease uint64) {
	if c.stopped.Load() {
		return
	}
	c.amu.Lock()
	c.acks = append(c.acks, lease)
	first := len(c.acks) == 1
	c.amu.Unlock()
	if first {
		c.w.Kick()
	}
}

// Nack returns leases to their mailboxes without waiting for a reply.
func (c *Conn) Nack(leases []uint64) { c.settleNoReply(wire.OpNack, leases) }

func (c *Conn) settleNoReply(op wire.Op, leases []uint64) {
	if len(leases) == 0 {
		return
	}
	rs := wire.RangesOf(append([]uint64(nil), leases...), nil)
	for len(rs) > 0 {
		var l wire.Leases
		rs = l.Fill(rs)
		c.Post(false, wire.Header{Op: op, Flags: wire.FlagNoReply}, l.Append)
	}
}

// beforeWrite runs under the writer's lock right before each write: it
// lets each Flusher append its frames (first, so that one finding the
// buffer empty may hand over its own instead of copying), then folds
// queued acks into ACK frames. Lock order: writer, then amu or fmu, then whatever a Flusher
// takes; none of them may call the writer.
func (c *Conn) beforeWrite(b []byte) []byte {
	c.wrote.Store(true)
	c.fmu.Lock()
	for _, f := range c.flushers {
		b = f.Flush(b)
	}
	c.fmu.Unlock()
	c.amu.Lock()
	if len(c.acks) > 0 {
		all := wire.RangesOf(c.acks, c.ranges[:0])
		for rs := all; len(rs) > 0; {
			rs = c.leases.Fill(rs)
			var off int
			b, off = wire.StartFrame(b, wire.Header{Op: wire.OpAck, Flags: wire.FlagNoReply})
			b = wire.FinishFrame(c.leases.Append(b), off)
		}
		c.acks, c.ranges = c.acks[:0], all[:0]
	}
	c.amu.Unlock()
	return b
}
