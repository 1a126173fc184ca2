package wire_test

import (
	"bytes"
	"fmt"

	"github.com/postbox-ipc/postbox/wire"
)

// Encoding a SEND frame and reading it back, as a client and the broker do.
func Example() {
	headers := wire.AppendHeaders(nil, &wire.HeaderFields{ContentType: []byte("text/plain")})
	send := wire.Send{Target: []byte("jobs"), Timeout: -1, Msgs: []wire.SendMsg{
		{Type: 1, Priority: 5, Headers: headers, Body: []byte("build #42")}}}
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
	h, err := wire.ParseHeaders(got.Msgs[0].Headers)
	if err != nil {
		panic(err)
	}
	m := got.Msgs[0]
	fmt.Println(hd.Op, hd.Request, string(got.Target), m.Priority, string(h.ContentType), string(m.Body))
	// Output: SEND 7 jobs 5 text/plain build #42
}
