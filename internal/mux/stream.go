package mux

import "github.com/postbox-ipc/postbox/wire"

// Stream receives the frames of one long-lived request (CONSUME): the
// pushed frames whose request field is its id, then the final reply that
// ends it, or the connection's end. Its methods run on the reader
// goroutine; p is valid until they return. Exactly one of End and Stopped
// is called, once.
type Stream interface {
	Push(hd wire.Header, p []byte)
	End(hd wire.Header, p []byte)
	Stopped(err error)
}

// OpenStream registers s under a new request id and returns the id; the
// caller then posts the request with it. It fails with the stop error if
// the connection stopped.
func (c *Conn) OpenStream(s Stream) (uint64, error) {
	id := c.ids.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.stopped.Load() {
		return 0, c.stopErrLocked()
	}
	c.streams[id] = s
	return id, nil
}
