package postbox_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/postbox-ipc/postbox"
)

// Peek lists what is queued, in the order receivers would take it,
// without taking anything: no lease, and no delivery counted.
func ExampleMailbox_Peek() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()
	c, err := postbox.Dial(ctx, postbox.WithSocket(socket))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	jobs, err := c.Create(ctx, "jobs", postbox.MaxDeliveries(1))
	if err != nil {
		panic(err)
	}
	jobs.Send(ctx, []byte("routine"))
	jobs.Send(ctx, []byte("urgent"), postbox.Priority(9))

	for range 2 { // peeking twice does not use up MaxDeliveries(1)
		for msg, err := range jobs.Peek(ctx) {
			if err != nil {
				panic(err)
			}
			fmt.Println(string(msg.Body), msg.Redeliveries, errors.Is(msg.Ack(ctx), postbox.ErrNotLeased))
		}
	}
	msg, err := jobs.Receive(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("received", string(msg.Body), msg.Redeliveries)
	// Output:
	// urgent 0 true
	// routine 0 true
	// urgent 0 true
	// routine 0 true
	// received urgent 0
}
