package postbox_test

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/postbox-ipc/postbox"
)

// A named pipe between two clients: the writer's bytes reach the reader
// in order, and the reader gets io.EOF once the writer has closed.
func ExampleClient_OpenPipeReader() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()
	c, err := postbox.Dial(ctx, postbox.WithSocket(socket))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	if err := c.CreatePipe(ctx, "logs", 64<<10); err != nil {
		panic(err)
	}
	w, err := c.OpenPipeWriter(ctx, "logs")
	if err != nil {
		panic(err)
	}
	fmt.Fprintln(w, "line one") // each Write of up to PipeAtomic bytes is one chunk
	fmt.Fprintln(w, "line two")
	if err := w.Close(); err != nil { // the last writer: end of file after the buffer
		panic(err)
	}
	r, err := c.OpenPipeReader(ctx, "logs")
	if err != nil {
		panic(err)
	}
	defer r.Close()
	all, err := io.ReadAll(r)
	if err != nil {
		panic(err)
	}
	fmt.Print(string(all))
	// Output:
	// line one
	// line two
}

// End of stream for a message mailbox: the consumer drains it, then ends.
func ExampleMailbox_CloseSend() {
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
	jobs.Send(ctx, []byte("build"))
	jobs.Send(ctx, []byte("test"))
	if err := jobs.CloseSend(ctx); err != nil {
		panic(err)
	}
	for {
		m, err := jobs.Receive(ctx)
		if err != nil {
			fmt.Println("end of stream:", errors.Is(err, postbox.ErrEndOfStream))
			return
		}
		fmt.Println(string(m.Body))
		m.Ack(ctx)
	}
	// Output:
	// build
	// test
	// end of stream: true
}
