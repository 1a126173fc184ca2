package postbox_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/postbox-ipc/postbox"
)

// A service in miniature: a server answers requests on a service
// mailbox, a client calls it and gets the reply in one round trip.
func ExampleMailbox_Call() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()

	server, err := postbox.Dial(ctx, postbox.WithSocket(socket))
	if err != nil {
		panic(err)
	}
	defer server.Close()
	svc, err := server.Create(ctx, "greeter", postbox.Service(), postbox.Mode(0o622))
	if err != nil {
		panic(err)
	}
	go func() {
		req, err := svc.Receive(ctx)
		if err != nil {
			return
		}
		req.Reply(ctx, append([]byte("hello, "), req.Body...), postbox.AckRequest())
	}()

	client, err := postbox.Dial(ctx, postbox.WithSocket(socket))
	if err != nil {
		panic(err)
	}
	defer client.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	reply, err := client.Mailbox("greeter").Call(cctx, []byte("world"))
	if err != nil {
		panic(err)
	}
	fmt.Println(string(reply.Body))
	// Output: hello, world
}

// A call whose context ends before any server took the request: the
// broker withdrew it, and says so.
func ExampleCallError() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()
	c, err := postbox.Dial(ctx, postbox.WithSocket(socket))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	if _, err := c.Create(ctx, "idle", postbox.Service()); err != nil {
		panic(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = c.Mailbox("idle").Call(cctx, []byte("anyone?"))
	var ce *postbox.CallError
	if errors.As(err, &ce) {
		fmt.Println(ce.Outcome, errors.Is(err, postbox.ErrTimeout))
	}
	// Output: withdrawn true
}
