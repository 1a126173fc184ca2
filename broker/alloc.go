package broker

import "github.com/postbox-ipc/postbox/mailbox"

// newMessage returns a message holding a copy of body. Small bodies share
// one allocation with the message: on the send hot path that halves the
// allocations per message.
func newMessage(body []byte) *mailbox.Message {
	n := len(body)
	switch {
	case n <= 64:
		x := new(struct {
			m mailbox.Message
			b [64]byte
		})
		x.m.Body = x.b[:n:n]
		copy(x.m.Body, body)
		return &x.m
	case n <= 512:
		x := new(struct {
			m mailbox.Message
			b [512]byte
		})
		x.m.Body = x.b[:n:n]
		copy(x.m.Body, body)
		return &x.m
	}
	return &mailbox.Message{Body: append(make([]byte, 0, n), body...)}
}
