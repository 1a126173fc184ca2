package shmbroker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/shm"
	"github.com/postbox-ipc/postbox/shm/shmbroker"
)

// Two clients of a broker open a shared-memory channel: one offers it to
// the other's inbox, the other accepts the offer, and from then on their
// messages go through shared memory, not through the broker.
func Example() {
	dir, _ := os.MkdirTemp("", "postbox-shmbroker-example-")
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "postbox.sock")
	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b := broker.New(cfg)
	l, _ := broker.Listen(socket, 0o666)
	go b.Serve(l)
	defer b.Close()

	ctx := context.Background()
	alice, _ := postbox.Dial(ctx, postbox.WithSocket(socket))
	defer alice.Close()
	bob, _ := postbox.Dial(ctx, postbox.WithSocket(socket))
	defer bob.Close()

	a, err := shmbroker.Open(ctx, alice, bob.Inbox().Name(), shm.Config{})
	if err != nil {
		panic(err)
	}
	defer a.Close()
	offer, _ := bob.Inbox().Receive(ctx, postbox.AutoAck())
	bch, err := shmbroker.Accept(ctx, bob, offer, shm.Config{})
	if err != nil {
		panic(err)
	}
	defer bch.Close()

	a.Send(ctx, []byte("through shared memory"))
	buf := make([]byte, 64)
	n, _ := bch.Receive(ctx, buf)
	fmt.Println(string(buf[:n]))
	// Output: through shared memory
}
