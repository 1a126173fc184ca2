package postbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
)

// startBroker runs an in-process broker on a socket in a fresh directory,
// as a program embedding postbox would; the returned func stops it.
func startBroker() (socket string, stop func()) {
	dir, _ := os.MkdirTemp("", "postbox-example-")
	socket = filepath.Join(dir, "postbox.sock")
	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b := broker.New(cfg)
	l, err := broker.Listen(socket, 0o666)
	if err != nil {
		panic(err)
	}
	go b.Serve(l)
	return socket, func() { b.Close(); os.RemoveAll(dir) }
}

// A worker pool in miniature: a job is sent to a bounded mailbox, a worker
// receives it, sees who sent it, and acks it.
func Example() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()

	c, err := postbox.Dial(ctx, postbox.WithSocket(socket))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	jobs, err := c.Create(ctx, "jobs", postbox.Capacity(1000), postbox.Mode(0o660))
	if err != nil {
		panic(err)
	}
	if _, err := jobs.Send(ctx, []byte("build #42"), postbox.Priority(5)); err != nil {
		panic(err)
	}

	msg, err := jobs.Receive(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s from pid %v\n", msg.Body, msg.Sender.PID == int32(os.Getpid()))
	if err := msg.Ack(ctx); err != nil {
		panic(err)
	}
	// Output: build #42 from pid true
}

// Typed receive follows SysV msgrcv: a negative type takes the message
// with the lowest type at most |type|.
func ExampleType() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()
	c, _ := postbox.Dial(ctx, postbox.WithSocket(socket))
	defer c.Close()
	mb, _ := c.Create(ctx, "typed")
	for _, t := range []int64{5, 3, 9, 2} {
		mb.Send(ctx, []byte(fmt.Sprint("type ", t)), postbox.Type(t))
	}
	m, _ := mb.Receive(ctx, postbox.Type(-4), postbox.AutoAck())
	fmt.Println(string(m.Body))
	m, _ = mb.Receive(ctx, postbox.Type(9), postbox.AutoAck())
	fmt.Println(string(m.Body))
	m, _ = mb.Receive(ctx, postbox.AutoAck())
	fmt.Println(string(m.Body))
	// Output:
	// type 2
	// type 9
	// type 5
}

// A rendezvous mailbox (capacity 0): the send completes only when a
// receiver takes the message, and its receipt names that receiver.
func ExampleRendezvous() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()
	sender, _ := postbox.Dial(ctx, postbox.WithSocket(socket))
	defer sender.Close()
	receiver, _ := postbox.Dial(ctx, postbox.WithSocket(socket))
	defer receiver.Close()
	mb, _ := sender.Create(ctx, "handoff", postbox.Rendezvous())

	got := make(chan string)
	go func() {
		m, _ := receiver.Mailbox("handoff").Receive(ctx, postbox.AutoAck())
		got <- string(m.Body)
	}()
	r, err := mb.Send(ctx, []byte("baton"))
	if err != nil {
		panic(err)
	}
	fmt.Println(<-got, r.Taken, r.By.Endpoint == receiver.Identity().Endpoint)
	// Output: baton true true
}

// A consumer streams messages with prefetch; a publisher pipelines sends.
func ExampleMailbox_Publisher() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()
	c, _ := postbox.Dial(ctx, postbox.WithSocket(socket))
	defer c.Close()
	mb, _ := c.Create(ctx, "stream")

	pub := mb.Publisher(64)
	for i := range 1000 {
		pub.Send(ctx, []byte(fmt.Sprint(i)))
	}
	if err := pub.Flush(ctx); err != nil {
		panic(err)
	}
	cons, _ := mb.Consume(ctx, postbox.Prefetch(128))
	defer cons.Close(ctx)
	sum := 0
	for range 1000 {
		m, _ := cons.Next(ctx)
		var n int
		fmt.Sscan(string(m.Body), &n)
		sum += n
		m.AckNoWait()
	}
	fmt.Println(sum)
	// Output: 499500
}

// Every connection has a private inbox that anyone may send to and only
// it may read: the way to reply to one process.
func ExampleClient_Inbox() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()
	a, _ := postbox.Dial(ctx, postbox.WithSocket(socket))
	defer a.Close()
	b, _ := postbox.Dial(ctx, postbox.WithSocket(socket))
	defer b.Close()

	b.Mailbox(a.Inbox().Name()).Send(ctx, []byte("just for you"))
	m, _ := a.Inbox().Receive(ctx, postbox.AutoAck())
	fmt.Println(string(m.Body), m.Sender.Endpoint == b.Identity().Endpoint)
	// Output: just for you true
}

// A receive with a deadline ends in one of three ways, and a caller that
// must not lose or double-process work tells them apart.
func ExampleErrUnknownOutcome() {
	socket, stop := startBroker()
	defer stop()
	// A generous grace: this broker is alive, so its definite answer is
	// worth waiting for even on a loaded machine.
	c, err := postbox.Dial(context.Background(), postbox.WithSocket(socket), postbox.WithReplyGrace(10*time.Second))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	jobs, err := c.Create(context.Background(), "jobs")
	if err != nil {
		panic(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = jobs.Receive(ctx)
	switch {
	case err == nil:
		fmt.Println("got a job")
	case errors.Is(err, postbox.ErrUnknownOutcome):
		// The broker did not answer in time: a send may have been queued,
		// an ack may have taken effect. Check before retrying.
		fmt.Println("outcome unknown")
	case errors.Is(err, postbox.ErrTimeout):
		// The broker said so: nothing was taken.
		fmt.Println("no job within the deadline")
	}
	// Output: no job within the deadline
}

// Request and reply with headers: the request names where to answer
// (ReplyTo, here the client's inbox) and ties the answer to itself
// (CorrelationID); the server answers there with the same id.
func ExampleReplyTo() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()

	client, err := postbox.Dial(ctx, postbox.WithSocket(socket))
	if err != nil {
		panic(err)
	}
	defer client.Close()
	server, err := postbox.Dial(ctx, postbox.WithSocket(socket))
	if err != nil {
		panic(err)
	}
	defer server.Close()
	rpc, err := server.Create(ctx, "rpc.upper", postbox.Mode(0o622))
	if err != nil {
		panic(err)
	}

	_, err = client.Mailbox("rpc.upper").Send(ctx, []byte("hello"),
		postbox.ReplyTo(client.Inbox().Name()), postbox.CorrelationID([]byte("req-1")),
		postbox.ContentType("text/plain"), postbox.WithHeader("trace-id", "4bf92f35"))
	if err != nil {
		panic(err)
	}

	req, err := rpc.Receive(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("request %q, content type %s, trace %s\n", req.Body, req.ContentType(), req.Header().Get("trace-id"))
	_, err = server.Mailbox(req.ReplyTo()).Send(ctx, bytes.ToUpper(req.Body), postbox.CorrelationID(req.CorrelationID()))
	if err != nil {
		panic(err)
	}
	req.Ack(ctx)

	answer, err := client.Inbox().Receive(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("answer %q to %s\n", answer.Body, answer.CorrelationID())
	answer.Ack(ctx)
	// Output:
	// request "hello", content type text/plain, trace 4bf92f35
	// answer "HELLO" to req-1
}

// SendBatch queues many messages with one frame per 1024; on a partial
// failure the *BatchError says how many were queued.
func ExampleMailbox_SendBatch() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()

	c, err := postbox.Dial(ctx, postbox.WithSocket(socket))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	mb, err := c.Create(ctx, "small", postbox.Capacity(3))
	if err != nil {
		panic(err)
	}
	ids, err := mb.SendBatch(ctx, postbox.Bodies([]byte("a"), []byte("b")))
	fmt.Println(len(ids), err)

	_, err = mb.SendBatch(ctx, postbox.Bodies([]byte("c"), []byte("d"), []byte("e")), postbox.NoWait())
	var be *postbox.BatchError
	if errors.As(err, &be) {
		fmt.Println("queued", be.Done, "of 3; full:", errors.Is(err, postbox.ErrFull))
	}
	// Output:
	// 2 <nil>
	// queued 1 of 3; full: true
}
