package mux

import "github.com/postbox-ipc/postbox/wire"

// groupBit marks the request ids of a Group: groupBit | num<<32 | seq.
const groupBit = 1 << 63

// GroupHandler receives a Group's replies, on the reader goroutine (p is
// valid until Reply returns), and the connection's end.
type GroupHandler interface {
	Reply(hd wire.Header, p []byte)
	Stopped(err error)
}

// Flusher is implemented by a GroupHandler that appends frames of its own
// right before each write (see Conn.Kick): Flush runs under the writer's
// lock, appends whole frames to b and returns it. It may take its own
// locks but must not call the Conn.
type Flusher interface {
	Flush(b []byte) []byte
}

// Group is a set of requests whose replies go to one handler, with no
// Call per request: a Publisher's pipelined SENDs.
type Group struct {
	c   *Conn
	num uint64 // in bits 32..62 of the group's request ids
	h   GroupHandler
}

// NewGroup registers h. If h is also a Flusher it is called before each
// write until the group is closed. It fails with the stop error if the
// connection stopped.
func (c *Conn) NewGroup(h GroupHandler) (*Group, error) {
	c.mu.Lock()
	if c.err != nil || c.stopped.Load() {
		err := c.stopErrLocked()
		c.mu.Unlock()
		return nil, err
	}
	c.ngroup++
	g := &Group{c: c, num: c.ngroup & (1<<31 - 1), h: h}
	c.groups[g.num] = g
	c.mu.Unlock()
	if f, ok := h.(Flusher); ok {
		c.fmu.Lock()
		c.flushers = append(c.flushers, f)
		c.fmu.Unlock()
	}
	return g, nil
}

// Request returns the request id of the group's request seq.
func (g *Group) Request(seq uint32) uint64 { return groupBit | g.num<<32 | uint64(seq) }

// Close forgets the group: later replies to it are dropped.
func (g *Group) Close() {
	c := g.c
	c.mu.Lock()
	if c.groups[g.num] == g {
		delete(c.groups, g.num)
	}
	c.mu.Unlock()
	if f, ok := g.h.(Flusher); ok {
		c.fmu.Lock()
		for i, x := range c.flushers {
			if x == f {
				c.flushers = append(c.flushers[:i], c.flushers[i+1:]...)
				break
			}
		}
		c.fmu.Unlock()
	}
}
