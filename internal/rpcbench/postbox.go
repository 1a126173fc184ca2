package rpcbench

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/postbox-ipc/postbox"
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

// echoService answers every request on the service mailbox with its body.
type echoService struct {
	c    *postbox.Client
	cons *postbox.Consumer
	wg   sync.WaitGroup
}

func serveEcho(ctx context.Context, sock, service string) (*echoService, error) {
	c, err := postbox.Dial(ctx, postbox.WithSocket(sock), postbox.WithName("bench-rpc-server"))
	if err != nil {
		return nil, err
	}
	cons, err := c.Mailbox(service).Consume(ctx, postbox.Prefetch(256))
	if err != nil {
		c.Close()
		return nil, err
	}
	s := &echoService{c: c, cons: cons}
	work := make(chan *postbox.Message, handlers)
	s.wg.Add(1 + handlers)
	go func() {
		defer s.wg.Done()
		defer close(work)
		for {
			m, err := cons.Next(context.Background())
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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.cons.Close(ctx)
	s.c.Close()
	s.wg.Wait()
}

// postboxRow measures n callers sharing one client, calling the echo
// service with semantics sem.
func (e *env) postboxRow(ctx context.Context, cfg Config, sem string, n int) (Row, error) {
	c, err := postbox.Dial(ctx, postbox.WithSocket(e.sock), postbox.WithName("bench-rpc-client"))
	if err != nil {
		return Row{}, err
	}
	defer c.Close()
	mb := c.Mailbox(e.service)
	body := make([]byte, cfg.Size)
	opt := postbox.WithHeader(envelope.Semantics, sem)
	r, err := measure(ctx, n, cfg.Duration, func(ctx context.Context, w int) error {
		_, err := mb.Call(ctx, body, opt)
		return err
	})
	r.Name, r.Semantics, r.Size = NamePostbox, sem, cfg.Size
	r.Note = "Mailbox.Call to Message.Reply; one connection"
	return r, err
}
