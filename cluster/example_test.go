package cluster_test

import (
	"log"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/cluster"
)

// A broker embedding cluster mailboxes, as `postbox serve --cluster`
// does: the backend goes in broker.Config.Remote, and is closed after
// the broker.
func Example() {
	be, err := cluster.Open(cluster.Config{
		URLs: []string{"nats://h1:4222", "nats://h2:4222", "nats://h3:4222"},
		User: "broker-a", Password: "secret", // this broker's own NATS user (docs/CLUSTER.md)
	})
	if err != nil {
		log.Fatal(err)
	}
	defer be.Close()
	cfg := broker.DefaultConfig()
	cfg.Remote, cfg.HostID = be, "host-a"
	b, err := broker.Open(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	l, err := broker.Listen("/run/postbox/postbox.sock", 0o666)
	if err != nil {
		log.Fatal(err)
	}
	b.Serve(l) // clients may now: create NAME --cluster, send, receive...
}
