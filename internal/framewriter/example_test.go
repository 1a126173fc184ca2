package framewriter_test

import (
	"bytes"
	"fmt"

	"github.com/postbox-ipc/postbox/internal/framewriter"
	"github.com/postbox-ipc/postbox/wire"
)

// A connection's writer: frames are encoded straight into the writer's
// buffer, and an urgent CANCEL goes out ahead of data queued before it.
func Example() {
	var conn bytes.Buffer // a net.Conn in real use
	w := framewriter.New(&conn, framewriter.Config{})

	send := wire.Send{Target: []byte("jobs"), Timeout: -1, Msgs: []wire.SendMsg{{Type: 1, Body: []byte("hi")}}}
	w.Append(false, func(b []byte) []byte {
		b, off := wire.StartFrame(b, wire.Header{Op: wire.OpSend, Request: 1})
		return wire.FinishFrame(send.Append(b), off)
	})
	w.Append(true, func(b []byte) []byte {
		b, off := wire.StartFrame(b, wire.Header{Op: wire.OpCancel, Flags: wire.FlagUrgent, Request: 9})
		return wire.FinishFrame(b, off)
	})

	go w.Run()
	w.Close(true) // flush, then stop

	r := wire.NewReader(&conn, 0, 0)
	for {
		h, _, err := r.Next()
		if err != nil {
			break
		}
		fmt.Println(h.Op, h.Request, h.Urgent())
	}
	// Output:
	// CANCEL 9 true
	// SEND 1 false
}
