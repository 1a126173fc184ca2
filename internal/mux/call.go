package mux

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// Call is one request waiting for its reply. Calls are pooled: get one
// with NewCall, give it back with Release once its fields are read. The
// exported fields are the reply, valid after Await returned nil.
type Call struct {
	// Status is the reply's status. If it is not OK, Msg is the broker's
	// explanation and Done/HasDone the error's DONE (batches).
	Status  wire.Code
	Msg     string
	Done    uint32
	HasDone bool
	// Ext is a copy of an error reply's ext tail after DONE (a CALL's
	// OUTCOME and RECEIVER).
	Ext []byte
	// Payload is a copy of an OK reply's payload, except SEND and
	// CHANNEL replies (decoded into Send).
	Payload []byte
	Send    wire.SendReply
	// Files are the descriptors of a CHANNEL or ATTACH reply, or of a
	// RECV reply's Delivery; the caller owns them.
	Files []*os.File

	id     uint64
	closed error         // set instead of a reply when the connection stopped
	done   chan struct{} // receives one value when the reply is in
}

var callPool = sync.Pool{New: func() any { return &Call{done: make(chan struct{}, 1)} }}

// NewCall returns a cleared call.
func (c *Conn) NewCall() *Call {
	cl := callPool.Get().(*Call)
	cl.Status, cl.Msg, cl.Done, cl.HasDone, cl.Payload, cl.Files, cl.closed = 0, "", 0, false, cl.Payload[:0], nil, nil
	cl.Ext = cl.Ext[:0]
	cl.Send.Taken = false
	return cl
}

// Release gives cl back to the pool. Its Payload must not be used after.
func (c *Conn) Release(cl *Call) {
	if cap(cl.Payload) > 64<<10 {
		cl.Payload = nil
	}
	cl.Files = nil
	callPool.Put(cl)
}

// Start registers cl under a new request id and queues the frame: header
// op and flags, payload appended by enc (in the writer's buffer: nothing
// is copied). It fails with the connection's stop error if it stopped.
func (c *Conn) Start(cl *Call, op wire.Op, flags uint8, enc func([]byte) []byte) error {
	return c.start(cl, op, flags, nil, enc)
}

func (c *Conn) start(cl *Call, op wire.Op, flags uint8, files []*os.File, enc func([]byte) []byte) error {
	id := c.ids.Add(1)
	cl.id = id
	c.mu.Lock()
	if c.err != nil || c.stopped.Load() {
		err := c.stopErrLocked()
		c.mu.Unlock()
		CloseFiles(files)
		return err
	}
	c.calls[id] = cl
	c.mu.Unlock()
	hd := wire.Header{Op: op, Flags: flags, Request: id}
	frame := func(b []byte) []byte {
		b, off := wire.StartFrame(b, hd)
		return wire.FinishFrame(enc(b), off)
	}
	var ok bool
	if files != nil {
		ok = c.w.AppendWithFiles(hd.Urgent(), files, frame) // closes them once written
	} else {
		ok = c.w.Append(hd.Urgent(), frame) // URGENT: the urgent lane
	}
	if ok {
		return nil
	}
	c.mu.Lock()
	_, still := c.calls[id]
	delete(c.calls, id)
	err := c.stopErrLocked()
	c.mu.Unlock()
	if !still {
		// stop took the call first and completes it: wait, so the call
		// is not pooled while stop still writes to it.
		<-cl.done
	}
	return err
}

// Await waits for cl's reply. If ctx ends first it cancels the request at
// the broker (CANCEL, urgent lane) and waits up to the grace for the
// reply, which says whether the request took effect after all: normally
// it arrives at once (the broker knows the request's timeout, and answers
// CANCEL promptly). If it does not, the broker is stuck or unreachable:
// Await takes the call out of the table, so that a late reply finds
// nothing to write into, and returns ErrNoReply.
//
// nil means the reply is in cl (check Status); otherwise the error is
// ErrNoReply or the connection's stop error.
func (c *Conn) Await(ctx context.Context, cl *Call) error {
	select {
	case <-cl.done:
		return cl.closed
	case <-ctx.Done():
	}
	c.Post(true, wire.Header{Op: wire.OpCancel, Flags: wire.FlagUrgent, Request: cl.id}, nil)
	t := time.NewTimer(c.cfg.Grace)
	defer t.Stop()
	select {
	case <-cl.done:
		return cl.closed
	case <-t.C:
	}
	c.mu.Lock()
	_, still := c.calls[cl.id]
	delete(c.calls, cl.id)
	c.mu.Unlock()
	if !still {
		// The reader (or stop) took the call first and is completing it:
		// the reply is in after all.
		<-cl.done
		return cl.closed
	}
	return ErrNoReply
}
