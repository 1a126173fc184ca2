package broker_test

import (
	"testing"

	"github.com/postbox-ipc/postbox/wire"
)

// TestCancelEndsAWaitingPipeOpen: a reader's PIPE_OPEN waiting for its
// turn, and a WAIT_READER writer's waiting for a reader, each end with
// CANCELED in the urgent lane when CANCEL names them; the connection goes
// on, and a CANCEL of an answered open does nothing.
func TestCancelEndsAWaitingPipeOpen(t *testing.T) {
	tb := startBroker(t, nil)
	owner := dialRaw(t, tb.socket)
	owner.create(t, wire.Create{Name: []byte("p"), Capacity: -1, Mode: 0o666, Pipe: true})
	open := func(rc *rawConn, role, flags uint8) uint64 {
		b, id := rc.frame(wire.OpPipeOpen, flags, (&wire.PipeOpen{Name: []byte("p"), Role: role}).Append(nil))
		rc.write(t, b)
		return id
	}
	cancel := func(rc *rawConn, id uint64) {
		rc.write(t, wire.AppendHeader(nil, wire.Header{Op: wire.OpCancel, Request: id}, 0))
	}

	// A writer waiting for a reader (the pipe has none yet).
	w := dialRaw(t, tb.socket)
	id := open(w, wire.PipeWriter, wire.FlagWaitReader)
	w.ping(t) // the open is in and waiting
	cancel(w, id)
	hd, p := w.reply(t, id)
	must(t, "canceled WAIT_READER open", hd, p, wire.CodeCanceled)
	if !hd.Urgent() {
		t.Error("the CANCELED reply to a waiting PIPE_OPEN is not in the urgent lane")
	}

	// A second reader waiting for its turn behind the active one.
	r1 := dialRaw(t, tb.socket)
	hd, p = r1.reply(t, open(r1, wire.PipeReader, 0))
	must(t, "first reader's open", hd, p, wire.OK)
	cancel(r1, 1<<40) // names nothing: nothing happens
	r1.ping(t)
	r2 := dialRaw(t, tb.socket)
	id = open(r2, wire.PipeReader, 0)
	r2.ping(t)
	cancel(r2, id)
	hd, p = r2.reply(t, id)
	must(t, "canceled standby reader's open", hd, p, wire.CodeCanceled)

	// r2 is not in line any more: when r1 closes, the pipe has no reader,
	// and r2 may open again and becomes the reader at once.
	hd, p = r1.roundTrip(t, wire.OpPipeClose, 0, (&wire.PipeOpen{Name: []byte("p"), Role: wire.PipeReader}).Append(nil))
	must(t, "first reader's close", hd, p, wire.OK)
	hd, p = r2.reply(t, open(r2, wire.PipeReader, 0))
	must(t, "reopened reader", hd, p, wire.OK)
}
