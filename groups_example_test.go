package postbox_test

import (
	"context"
	"fmt"

	"github.com/postbox-ipc/postbox"
)

// A group: two clients join, a third multicasts, each member finds the
// copy in its inbox.
func ExampleClient_Multicast() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()
	dial := func() *postbox.Client {
		c, err := postbox.Dial(ctx, postbox.WithSocket(socket))
		if err != nil {
			panic(err)
		}
		return c
	}
	a, b, sender := dial(), dial(), dial()
	defer a.Close()
	defer b.Close()
	defer sender.Close()
	for _, m := range []*postbox.Client{a, b} {
		if err := m.Join(ctx, "#team"); err != nil {
			panic(err)
		}
	}
	n, err := sender.Multicast(ctx, "#team", []byte("stand-up in 5"))
	if err != nil {
		panic(err)
	}
	msg, err := a.Inbox().Receive(ctx, postbox.AutoAck())
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d recipients; a got %q\n", n, msg.Body)
	// Output: 2 recipients; a got "stand-up in 5"
}

// Watching an endpoint: one notice when it goes, then the watch ends.
func ExampleClient_Watch() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()
	watcher, err := postbox.Dial(ctx, postbox.WithSocket(socket))
	if err != nil {
		panic(err)
	}
	defer watcher.Close()
	peer, err := postbox.Dial(ctx, postbox.WithSocket(socket))
	if err != nil {
		panic(err)
	}
	w, err := watcher.Watch(ctx, postbox.InboxName(peer.Identity().Endpoint))
	if err != nil {
		panic(err)
	}
	peer.Close()
	n, err := w.Next(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(n.Kind, "-", n.Reason)
	// Output: endpoint-exited - disconnected
}
