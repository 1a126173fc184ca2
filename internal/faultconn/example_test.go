package faultconn_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/faultconn"
	"github.com/postbox-ipc/postbox/wire"
)

// A client whose connection duplicates its second CALL request: the
// server sees that request twice, the caller gets one reply.
func Example() {
	dir, _ := os.MkdirTemp("", "faultconn-example-")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "broker.sock")
	l, _ := broker.Listen(sock, 0o600)
	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b := broker.New(cfg)
	go b.Serve(l)
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The server, on an ordinary connection.
	sc, _ := postbox.Dial(ctx, postbox.WithSocket(sock))
	defer sc.Close()
	sc.Create(ctx, "echo", postbox.Service())
	cons, _ := sc.Mailbox("echo").Consume(ctx)
	served := make(chan string, 8)
	go func() {
		for {
			m, err := cons.Next(context.Background())
			if err != nil {
				return
			}
			served <- string(m.Body)
			m.Reply(context.Background(), m.Body, postbox.AckRequest())
		}
	}()

	// The caller, through the faulty connection.
	nc, stats, err := faultconn.Dial(ctx, sock, faultconn.DuplicateRequest(wire.OpCall, faultconn.Nth(2)))
	if err != nil {
		fmt.Println(err)
		return
	}
	c, _ := postbox.NewClient(ctx, nc)
	for _, body := range []string{"one", "two", "three"} {
		rep, err := c.Mailbox("echo").Call(ctx, []byte(body))
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("reply:", string(rep.Body))
	}
	c.Close() // closes nc and its goroutines
	cons.Close(ctx)
	close(served)
	n := 0
	for range served {
		n++
	}
	fmt.Println("requests served:", n)
	fmt.Println("duplicated:", stats.Counts().Duplicated)
	// Output:
	// reply: one
	// reply: two
	// reply: three
	// requests served: 4
	// duplicated: 1
}
