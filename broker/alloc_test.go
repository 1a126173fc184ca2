package broker

import (
	"bytes"
	"testing"
)

// TestNewMessageCopies checks every size class of newMessage: the message
// holds its own copy of body and headers (the read buffer they came from
// is reused for the next frame), at their exact lengths.
func TestNewMessageCopies(t *testing.T) {
	for _, n := range []int{0, 1, 64, 65, 512, 513, 4096, 70000} {
		for _, h := range []int{0, 7} {
			body := bytes.Repeat([]byte{'b'}, n)
			hdr := bytes.Repeat([]byte{'h'}, h)
			m := newMessage(body, hdr)
			for i := range body {
				body[i] = 'x'
			}
			for i := range hdr {
				hdr[i] = 'y'
			}
			if len(m.Body) != n || bytes.Count(m.Body, []byte{'b'}) != n {
				t.Errorf("%d B body, %d B headers: body not an exact copy", n, h)
			}
			if len(m.Headers) != h || bytes.Count(m.Headers, []byte{'h'}) != h {
				t.Errorf("%d B body, %d B headers: headers not an exact copy", n, h)
			}
		}
	}
}
