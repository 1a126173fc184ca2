package broker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/wire"
)

// A broker embedded in a Go program: listen, serve, and shut down. The
// client here speaks the protocol with package wire; a Go program would
// use package postbox's Dial.
func Example() {
	dir, _ := os.MkdirTemp("", "postbox-broker-example-")
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "postbox.sock")

	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Name = "example"
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

	nc, _ := net.Dial("unix", socket)
	hello := wire.Hello{MinVersion: 2, MaxVersion: 2, Client: []byte("example")}
	frame, off := wire.StartFrame(nil, wire.Header{Op: wire.OpHello, Request: 1})
	nc.Write(wire.FinishFrame(hello.Append(frame), off))
	_, p, _ := wire.NewReader(nc, 0, 0).Next()
	var reply wire.HelloReply
	reply.Decode(p)
	fmt.Println(string(reply.Server), reply.Version, reply.Endpoint>>32 == reply.Epoch)
	nc.Close()

	b.Shutdown(context.Background())
	fmt.Println(errors.Is(<-served, broker.ErrServerClosed))
	// Output:
	// example 2 true
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
