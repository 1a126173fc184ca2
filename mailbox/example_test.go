package mailbox_test

import (
	"fmt"

	"github.com/postbox-ipc/postbox/mailbox"
)

// A broker drives a Mailbox with inputs and carries out the Effects it
// returns: here a consumer waits, a send is delivered to it under a lease,
// and the consumer's ack ends the lease.
func Example() {
	m := mailbox.New(mailbox.Config{Capacity: 16})

	worker := &mailbox.Receiver{
		Ref:      "worker",
		Ident:    mailbox.Identity{Endpoint: 7},
		Consumer: true,
		Credit:   10,
	}
	if err := m.Receive(worker, true); err != nil {
		fmt.Println(err)
	}

	res, done, err := m.Send(&mailbox.Message{Type: 1, Body: []byte("hello")}, false, nil)
	fmt.Println("send:", done, err, "seq", res.Seq, "taken", res.Taken)

	var lease uint64
	for _, e := range m.Effects() {
		if e.Kind == mailbox.EffDeliver {
			fmt.Printf("deliver %q to %v under lease %d\n", e.Msg.Body, e.Ref, e.Lease)
			lease = e.Lease
		}
	}
	fmt.Println("in flight:", m.Stats().InFlight)

	fmt.Println("ack:", m.Ack(7, lease))
	fmt.Println("ack again:", m.Ack(7, lease))
	fmt.Println("held bytes:", m.HeldBytes())
	// Output:
	// send: true <nil> seq 1 taken true
	// deliver "hello" to worker under lease 1
	// in flight: 1
	// ack: <nil>
	// ack again: mailbox: stale lease
	// held bytes: 0
}

// A typed receive follows msgrcv(2): a negative type takes the message with
// the lowest type at most its magnitude.
func ExampleMailbox_Receive_negativeType() {
	m := mailbox.New(mailbox.Config{Capacity: -1})
	for _, t := range []int64{5, 3, 9, 2} {
		m.Send(&mailbox.Message{Type: t, Body: fmt.Appendf(nil, "type %d", t)}, false, nil)
	}
	for range 3 {
		r := &mailbox.Receiver{Ref: "r", Type: -5, AutoAck: true}
		if err := m.Receive(r, false); err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s\n", m.Effects()[0].Msg.Body)
	}
	// Output:
	// type 2
	// type 3
	// type 5
}

// Capacity 0 is a rendezvous: the send waits until a receiver takes the
// message, and its completion names the receiver.
func ExampleMailbox_Send_rendezvous() {
	m := mailbox.New(mailbox.Config{Capacity: 0})
	s := &mailbox.Sender{Ref: "sender", Endpoint: 1}
	_, done, _ := m.Send(&mailbox.Message{Body: []byte("ping")}, false, s)
	fmt.Println("done at once:", done)

	m.Receive(&mailbox.Receiver{Ref: "receiver", Ident: mailbox.Identity{PID: 4242, Endpoint: 2}}, false)
	for _, e := range m.Effects() {
		switch e.Kind {
		case mailbox.EffSendDone:
			fmt.Println(e.Ref, "completed; taken by pid", e.Receipt.PID)
		case mailbox.EffDeliver:
			fmt.Printf("%v got %s\n", e.Ref, e.Msg.Body)
		}
	}
	// Output:
	// done at once: false
	// sender completed; taken by pid 4242
	// receiver got ping
}
