package rpcbench

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	for _, name := range []string{e.service, bareName(e.service)} {
		if _, err := c.Create(ctx, name, postbox.Service()); err != nil && !errors.Is(err, postbox.ErrExists) {
			return err
		}
	}
	e.closers = append(e.closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := postbox.Dial(ctx, postbox.WithSocket(e.sock))
		if err != nil {
			return err
		}
		defer c.Close()
		return errors.Join(c.Mailbox(e.service).Destroy(ctx), c.Mailbox(bareName(e.service)).Destroy(ctx))
	})
	return nil
}

// echoService is the postbox side's server: package rpc's Server with
// one raw method that returns its request body, and beside it a bare
// echo of Message.Reply on a second mailbox (the CALL primitive without
// the rpc layer).
type echoService struct {
	c    *postbox.Client
	srv  *rpc.Server
	bare *postbox.Consumer
	wg   sync.WaitGroup
}

// bareName is the mailbox of the bare echo beside service.
func bareName(service string) string { return service + "-bare" }

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
	s := &echoService{c: c, srv: srv}
	if s.bare, err = c.Mailbox(bareName(service)).Consume(ctx, postbox.Prefetch(256)); err != nil {
		s.close()
		return nil, err
	}
	// One goroutine takes requests (Next is for one at a time), handlers
	// reply: each Reply waits for the broker's answer.
	work := make(chan *postbox.Message, handlers)
	s.wg.Add(1 + handlers)
	go func() {
		defer s.wg.Done()
		defer close(work)
		for {
			m, err := s.bare.Next(context.Background())
			if err != nil {
				return
			}
			work <- m
		}
	}()
	for range handlers {
		go func() {
			defer s.wg.Done()
			for m := range work {
				m.Reply(context.Background(), m.Body, postbox.AckRequest())
			}
		}()
	}
	return s, nil
}

func (s *echoService) close() {
	s.srv.Close()
	if s.bare != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.bare.Close(ctx)
		cancel()
	}
	s.c.Close()
	s.wg.Wait()
}

// bareRow measures n callers sharing one client, calling the bare echo
// with Mailbox.Call: what the rpc layer adds is the difference.
func (e *env) bareRow(ctx context.Context, cfg Config, n int) (Row, error) {
	c, err := postbox.Dial(ctx, postbox.WithSocket(e.sock), postbox.WithName("bench-rpc-client"))
	if err != nil {
		return Row{}, err
	}
	defer c.Close()
	mb := c.Mailbox(bareName(e.service))
	body := make([]byte, cfg.Size)
	r, err := measure(ctx, n, cfg.Duration, func(ctx context.Context, w int) error {
		_, err := mb.Call(ctx, body)
		return err
	})
	r.Name, r.Size = NameBare, cfg.Size
	r.Note = fmt.Sprintf("Mailbox.Call to a consumer (prefetch 256) answering with Message.Reply, %d handlers", handlers)
	return r, err
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
