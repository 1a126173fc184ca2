// Command peerserver is the server side of bench/peers that is not a
// broker: it serves, each in this one process, whichever of these its
// flags name, until its standard input closes or it is signalled:
//
//   - --grpc PATH: gRPC-go's unary echo (internal/grpcpeer, the same
//     service `postbox bench rpc` measures) on a Unix socket;
//   - --raw PATH: a raw Unix-socket echo, the inter-process round trip
//     every broker's latency is compared with;
//   - --postbox SOCKET --mailbox NAME: a postbox responder answering each
//     request in mailbox NAME with Message.Reply (the bare CALL, no rpc
//     layer), from HANDLERS goroutines.
//
// It prints "ready" on standard output once everything listens.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/grpcpeer"
)

func main() {
	grpcPath := flag.String("grpc", "", "serve gRPC-go's echo on this Unix socket")
	rawPath := flag.String("raw", "", "serve a raw echo on this Unix socket")
	sock := flag.String("postbox", "", "broker socket to answer requests from")
	mailbox := flag.String("mailbox", "", "mailbox the requests arrive in (created by the caller)")
	handlers := flag.Int("handlers", 16, "postbox requests answered at once")
	flag.Parse()
	if err := run(*grpcPath, *rawPath, *sock, *mailbox, *handlers); err != nil {
		fmt.Fprintln(os.Stderr, "peerserver:", err)
		os.Exit(1)
	}
}

func run(grpcPath, rawPath, sock, mailbox string, handlers int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if grpcPath != "" {
		s, err := grpcpeer.Listen(grpcPath)
		if err != nil {
			return err
		}
		defer s.Close()
	}
	if rawPath != "" {
		l, err := serveRaw(rawPath)
		if err != nil {
			return err
		}
		defer l.Close()
	}
	if sock != "" {
		r, err := respond(ctx, sock, mailbox, handlers)
		if err != nil {
			return err
		}
		defer r.close()
	}
	fmt.Println("ready")
	go func() {
		io.Copy(io.Discard, os.Stdin) // the parent holds our stdin open
		stop()
	}()
	<-ctx.Done()
	return nil
}

// serveRaw echoes every connection's bytes back to it.
func serveRaw(path string) (net.Listener, error) {
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	return l, nil
}

// responder answers the requests of one mailbox.
type responder struct {
	c    *postbox.Client
	cons *postbox.Consumer
	wg   sync.WaitGroup
}

// respond consumes mailbox through the broker at sock; one goroutine
// takes the requests (Next is for one caller at a time) and handlers
// goroutines each reply with the request's body, acking it in the same
// frame.
func respond(ctx context.Context, sock, mailbox string, handlers int) (*responder, error) {
	if mailbox == "" {
		return nil, errors.New("--postbox needs --mailbox")
	}
	c, err := postbox.Dial(ctx, postbox.WithSocket(sock), postbox.WithName("peers-responder"))
	if err != nil {
		return nil, err
	}
	cons, err := c.Mailbox(mailbox).Consume(ctx, postbox.Prefetch(256))
	if err != nil {
		c.Close()
		return nil, err
	}
	r := &responder{c: c, cons: cons}
	work := make(chan *postbox.Message, handlers)
	r.wg.Add(1 + handlers)
	go func() {
		defer r.wg.Done()
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
			defer r.wg.Done()
			for m := range work {
				m.Reply(context.Background(), m.Body, postbox.AckRequest())
			}
		}()
	}
	return r, nil
}

func (r *responder) close() {
	r.c.Close() // ends Next and every Reply
	r.wg.Wait()
}
