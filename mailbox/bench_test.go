package mailbox

import "testing"

// Send + delivery to a waiting consumer + Ack: the broker's hot path. The
// message is reused, so -benchmem shows what the mailbox itself allocates
// per message (0).
func BenchmarkSendReceiveAckConsumer(b *testing.B) {
	m := New(Config{Capacity: 1024})
	c := &Receiver{Ref: "c", Ident: Identity{Endpoint: 1}, Consumer: true, Credit: 1}
	if err := m.Receive(c, true); err != nil {
		b.Fatal(err)
	}
	msg := &Message{Type: 1, Body: make([]byte, 64)}
	b.ReportAllocs()
	for b.Loop() {
		msg.Seq, msg.Redeliveries = 0, 0
		if _, done, err := m.Send(msg, false, nil); !done || err != nil {
			b.Fatal(done, err)
		}
		lease := m.Effects()[0].Lease
		if err := m.Ack(1, lease); err != nil {
			b.Fatal(err)
		}
		m.AddCredit(c, 1)
	}
}

// The same through the queue: the message waits, then a consumer's credit
// pulls it.
func BenchmarkSendQueuedThenReceiveAck(b *testing.B) {
	m := New(Config{Capacity: 1024})
	c := &Receiver{Ref: "c", Ident: Identity{Endpoint: 1}, Consumer: true}
	if err := m.Receive(c, true); err != nil {
		b.Fatal(err)
	}
	msg := &Message{Type: 1, Body: make([]byte, 64)}
	b.ReportAllocs()
	for b.Loop() {
		msg.Seq = 0
		if _, done, err := m.Send(msg, false, nil); !done || err != nil {
			b.Fatal(done, err)
		}
		m.AddCredit(c, 1)
		lease := m.Effects()[0].Lease
		if err := m.Ack(1, lease); err != nil {
			b.Fatal(err)
		}
	}
}

// Typed receive with a negative selector scans the queue; this measures it
// against a backlog of 100 messages of mixed types.
func BenchmarkReceiveNegativeTypeBacklog(b *testing.B) {
	m := New(Config{Capacity: -1})
	for i := range 100 {
		m.Send(&Message{Type: int64(2 + i%7), Priority: uint8(i % 3)}, false, nil)
	}
	r := &Receiver{Ref: "r", Ident: Identity{Endpoint: 1}, Type: -4}
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Receive(r, false); err != nil {
			b.Fatal(err)
		}
		if err := m.Nack(1, m.Effects()[0].Lease); err != nil {
			b.Fatal(err)
		}
	}
}
