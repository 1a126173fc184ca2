package postbox_test

import (
	"context"
	"fmt"

	"github.com/postbox-ipc/postbox"
)

// A batch of work is called off: its queued jobs are withdrawn, and an
// urgent message tells the workers, ahead of everything still queued.
func ExampleMailbox_WithdrawMatching() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()
	c, err := postbox.Dial(ctx, postbox.WithSocket(socket))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	jobs, err := c.Create(ctx, "jobs")
	if err != nil {
		panic(err)
	}
	for i := range 3 {
		if _, err := jobs.Send(ctx, fmt.Appendf(nil, "job %d", i), postbox.WithHeader("batch", "7")); err != nil {
			panic(err)
		}
	}
	other, _ := jobs.Send(ctx, []byte("job of batch 8"), postbox.WithHeader("batch", "8"))
	outs, err := jobs.WithdrawMatching(ctx, postbox.MatchHeader("batch", "7"))
	if err != nil {
		panic(err)
	}
	for _, o := range outs {
		fmt.Println(o.ID, o.Outcome)
	}
	if _, err := jobs.Send(ctx, []byte("stop batch 7"), postbox.Urgent()); err != nil {
		panic(err)
	}
	m, err := jobs.Receive(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s (urgent %v)\n", m.Body, m.Urgent())
	m.Ack(ctx)
	again, _ := jobs.Withdraw(ctx, other.ID, 1)
	fmt.Println(again[0].Outcome, again[1].Outcome)
	// Output:
	// 1 withdrawn
	// 2 withdrawn
	// 3 withdrawn
	// stop batch 7 (urgent true)
	// withdrawn settled
}
