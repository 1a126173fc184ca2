package store_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/postbox-ipc/postbox/store"
)

// A broker shell records every state change of a durable mailbox and, on
// start, rebuilds its mailboxes from Recovered.
func Example() {
	dir, _ := os.MkdirTemp("", "postbox-store-")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	s, err := store.Open(store.DefaultOptions(dir))
	if err != nil {
		log.Fatal(err)
	}
	s.PutMailbox(store.MailboxDef{Name: "jobs", Capacity: -1, Mode: 0o600})
	s.Append(&store.Message{Mailbox: "jobs", Seq: 1, Body: []byte("low")})
	t := s.Append(&store.Message{Mailbox: "jobs", Seq: 2, Priority: 9, Body: []byte("urgent")})
	// Records from one goroutine are logged in order, so waiting for the
	// last one means all of them are durable.
	if err := t.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	s.Lease("jobs", 2) // handed to a receiver that then dies with the broker
	s.Close()

	s, err = store.Open(store.DefaultOptions(dir))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	r := s.Recovered()
	for _, m := range r.Messages["jobs"] {
		fmt.Printf("seq %d %q redeliveries %d\n", m.Seq, m.Body, m.Redeliveries)
	}
	fmt.Println("next seq", r.NextSeq["jobs"])
	// Output:
	// seq 2 "urgent" redeliveries 1
	// seq 1 "low" redeliveries 0
	// next seq 3
}

// Ticket.Wait reports a write the disk refused; the store keeps going.
func ExampleTicket_Wait() {
	dir, _ := os.MkdirTemp("", "postbox-store-")
	defer os.RemoveAll(dir)
	s, err := store.Open(store.DefaultOptions(dir))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	err = s.Append(&store.Message{Mailbox: "jobs", Seq: 1}).Wait(context.Background())
	switch {
	case err == nil:
		fmt.Println("durable")
	case errors.Is(err, store.ErrDiskFull):
		fmt.Println("disk full: tell the sender, try again later")
	default:
		fmt.Println("not stored:", err)
	}
	// Output: durable
}

// Open refuses a directory another store holds.
func ExampleOpen_locked() {
	dir, _ := os.MkdirTemp("", "postbox-store-")
	defer os.RemoveAll(dir)
	s, err := store.Open(store.DefaultOptions(dir))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	_, err = store.Open(store.DefaultOptions(dir))
	fmt.Println(errors.Is(err, store.ErrLocked))
	// Output: true
}
