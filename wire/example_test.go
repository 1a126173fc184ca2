package wire_test

import (
	"bytes"
	"fmt"

	"github.com/postbox-ipc/postbox/wire"
)

// Encoding a SEND frame and reading it back, as a client and the broker do.
func Example() {
	send := wire.Send{Target: []byte("jobs"), Type: 1, Priority: 5, Timeout: -1, Body: []byte("build #42")}
	b, off := wire.StartFrame(nil, wire.Header{Op: wire.OpSend, Request: 7})
	frame := wire.FinishFrame(send.Append(b), off)

	r := wire.NewReader(bytes.NewReader(frame), 0, 0)
	hd, payload, err := r.Next()
	if err != nil {
		panic(err)
	}
	var got wire.Send
	if err := got.Decode(payload); err != nil {
		panic(err)
	}
	fmt.Println(hd.Op, hd.Request, string(got.Target), got.Priority, string(got.Body))
	// Output: SEND 7 jobs 5 build #42
}
