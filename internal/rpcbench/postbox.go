package rpcbench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// Semantics are the invocation semantics measured, in table order.
var Semantics = []string{envelope.SemMaybe, envelope.SemAtLeastOnce, envelope.SemExactlyOnce}

// handlers is how many requests the echo service handles at once.
const handlers = 16

// createService makes the service's mailbox before the peer serves it.
func (e *env) createService(ctx context.Context) error {
	c, err := postbox.Dial(ctx, postbox.WithSocket(e.sock), postbox.WithName("bench-rpc"))
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Create(ctx, e.service, postbox.Service()); err != nil && !errors.Is(err, postbox.ErrExists) {
		return err
	}
	e.closers = append(e.closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := postbox.Dial(ctx, postbox.WithSocket(e.sock))
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Mailbox(e.service).Destroy(ctx)
	})
	return nil
}

// echoService is the postbox side's server: package rpc's Server with
// one raw method that returns its request body.
type echoService struct {
	c   *postbox.Client
	srv *rpc.Server
}

func serveEcho(ctx context.Context, sock, service string) (*echoService, error) {
	c, err := postbox.Dial(ctx, postbox.WithSocket(sock), postbox.WithName("bench-rpc-server"))
	if err != nil {
		return nil, err
	}
	srv := rpc.NewServer(c, rpc.Concurrency(handlers))
	srv.HandleRaw(service, Method, func(ctx context.Context, req *rpc.Request) (*rpc.Reply, error) {
		return &rpc.Reply{Body: req.Body}, nil
	})
	if err := srv.Start(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return &echoService{c: c, srv: srv}, nil
}

func (s *echoService) close() {
	s.srv.Close()
	s.c.Close()
}

// Method is the echo method's name.
const Method = "Echo"

// postboxRow measures n callers sharing one rpc.Client (one connection),
// calling the echo service with semantics sem.
func (e *env) postboxRow(ctx context.Context, cfg Config, sem string, n int) (Row, error) {
	c, err := postbox.Dial(ctx, postbox.WithSocket(e.sock), postbox.WithName("bench-rpc-client"))
	if err != nil {
		return Row{}, err
	}
	defer c.Close()
	s, err := rpc.ParseSemantics(sem)
	if err != nil {
		return Row{}, err
	}
	rc := rpc.NewClient(c)
	body := make([]byte, cfg.Size)
	opt := rpc.WithSemantics(s)
	r, err := measure(ctx, n, cfg.Duration, func(ctx context.Context, w int) error {
		_, err := rc.Invoke(ctx, e.service, Method, body, opt)
		return err
	})
	r.Name, r.Semantics, r.Size = NamePostbox, sem, cfg.Size
	r.Note = fmt.Sprintf("rpc.Client.Invoke, one connection; rpc.Server, %d handlers", handlers)
	return r, err
}
