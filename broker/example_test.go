package broker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
)

// A broker embedded in a Go program: listen, serve, and shut down.
func Example() {
	dir, _ := os.MkdirTemp("", "postbox-broker-example-")
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "postbox.sock")

	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.MaxMailboxes = 100
	b, err := broker.Open(cfg)
	if err != nil {
		panic(err)
	}
	l, err := broker.Listen(socket, 0o666)
	if err != nil {
		panic(err)
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()

	ctx := context.Background()
	c, _ := postbox.Dial(ctx, postbox.WithSocket(socket))
	c.Create(ctx, "hello")
	fmt.Println(c.Mailbox("hello").Name())
	c.Close()

	b.Shutdown(ctx)
	fmt.Println(errors.Is(<-served, broker.ErrServerClosed))
	// Output:
	// hello
	// true
}

// Durable mailboxes need a data directory; a second broker on the same
// directory is refused.
func ExampleOpen() {
	data, _ := os.MkdirTemp("", "postbox-data-example-")
	defer os.RemoveAll(data)
	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.DataDir = data
	first, err := broker.Open(cfg)
	if err != nil {
		panic(err)
	}
	defer first.Close()
	_, err = broker.Open(cfg)
	fmt.Println(err != nil)
	// Output: true
}
