package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/grpcpeer"
)

// rpcMailbox is the mailbox the postbox responder answers in.
const rpcMailbox = "peers-rpc"

// servers is where each started server listens.
type servers struct {
	postbox   string // postbox serve's Unix socket
	nats      string // nats-server core, nats://127.0.0.1:PORT
	jetstream string // nats-server with JetStream sync_interval: always
	grpc      string // gRPC-go echo, Unix socket
	raw       string // raw echo, Unix socket
	dir       string // on the disk the durable figures measure
	// The pids of postbox serve and nats-server core, whose CPU time the
	// pub/sub rows report per event.
	postboxPID, natsPID int
}

// binaries are the programs the bench runs.
type binaries struct {
	postbox, natsServer, peerServer string
}

// build compiles what cfg does not name: postbox from the repository
// (its own go.mod), nats-server and peerserver from this module.
func build(ctx context.Context, cfg Config, dir string) (binaries, error) {
	mod, err := moduleDir()
	if err != nil {
		return binaries{}, err
	}
	bin := binaries{postbox: cfg.Postbox, natsServer: cfg.NatsServer}
	if bin.postbox == "" {
		bin.postbox = filepath.Join(dir, "postbox")
		if err := goBuild(ctx, filepath.Join(mod, "..", ".."), bin.postbox, "./cmd/postbox"); err != nil {
			return bin, err
		}
	}
	if bin.natsServer == "" {
		bin.natsServer = filepath.Join(dir, "nats-server")
		if err := goBuild(ctx, mod, bin.natsServer, "github.com/nats-io/nats-server/v2"); err != nil {
			return bin, err
		}
	}
	bin.peerServer = filepath.Join(dir, "peerserver")
	if err := goBuild(ctx, mod, bin.peerServer, "./peerserver"); err != nil {
		return bin, err
	}
	return bin, nil
}

// startAll starts postbox serve (data directory under dir, so durable
// mailboxes fsync before their ack), nats-server core, nats-server with
// JetStream syncing every write (its store under dir), and peerserver
// with gRPC-go and the raw echo, their sockets in sockDir; each is
// waited for until it answers.
func startAll(ctx context.Context, ps *procs, bin binaries, dir, sockDir string) (servers, error) {
	s := servers{
		postbox: filepath.Join(sockDir, "postbox.sock"),
		grpc:    filepath.Join(sockDir, "grpc.sock"),
		raw:     filepath.Join(sockDir, "raw.sock"),
		dir:     dir,
	}
	pb, err := ps.start("postbox", bin.postbox, "serve", "--socket", s.postbox,
		"--data", filepath.Join(dir, "postbox-data"), "--log-level", "warn")
	if err != nil {
		return s, err
	}
	s.postboxPID = pb.cmd.Process.Pid
	if err := waitReady(ctx, pb, func(ctx context.Context) error {
		c, err := postbox.Dial(ctx, postbox.WithSocket(s.postbox))
		if err != nil {
			return err
		}
		return c.Close()
	}); err != nil {
		return s, err
	}

	port, err := freePort()
	if err != nil {
		return s, err
	}
	s.nats = "nats://127.0.0.1:" + strconv.Itoa(port)
	core, err := ps.start("nats-core", bin.natsServer, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	if err != nil {
		return s, err
	}
	s.natsPID = core.cmd.Process.Pid
	if err := waitReady(ctx, core, func(context.Context) error {
		nc, err := nats.Connect(s.nats)
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	}); err != nil {
		return s, err
	}

	if port, err = freePort(); err != nil {
		return s, err
	}
	s.jetstream = "nats://127.0.0.1:" + strconv.Itoa(port)
	conf := filepath.Join(dir, "jetstream.conf")
	text := fmt.Sprintf("listen: \"127.0.0.1:%d\"\njetstream {\n  store_dir: %q\n  sync_interval: always\n}\n",
		port, filepath.Join(dir, "jetstream-data"))
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return s, err
	}
	js, err := ps.start("nats-jetstream", bin.natsServer, "-c", conf)
	if err != nil {
		return s, err
	}
	if err := waitReady(ctx, js, func(ctx context.Context) error {
		nc, err := nats.Connect(s.jetstream)
		if err != nil {
			return err
		}
		defer nc.Close()
		j, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		_, err = j.AccountInfo(ctx)
		return err
	}); err != nil {
		return s, err
	}

	gp, err := ps.start("grpc", bin.peerServer, "--grpc", s.grpc, "--raw", s.raw)
	if err != nil {
		return s, err
	}
	if err := waitReady(ctx, gp, func(ctx context.Context) error {
		c, err := grpcpeer.Dial(ctx, s.grpc)
		if err != nil {
			return err
		}
		return c.Close()
	}); err != nil {
		return s, err
	}
	return s, nil
}

// startResponder creates the RPC mailbox in postbox and starts the
// process answering it.
func startResponder(ctx context.Context, ps *procs, bin binaries, s servers) error {
	c, err := postbox.Dial(ctx, postbox.WithSocket(s.postbox))
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Create(ctx, rpcMailbox, postbox.Capacity(4096)); err != nil {
		return err
	}
	r, err := ps.start("postbox-responder", bin.peerServer, "--postbox", s.postbox, "--mailbox", rpcMailbox)
	if err != nil {
		return err
	}
	mb := c.Mailbox(rpcMailbox)
	return waitReady(ctx, r, func(ctx context.Context) error {
		_, err := mb.Call(ctx, []byte{0})
		return err
	})
}
