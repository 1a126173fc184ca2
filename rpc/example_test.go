package rpc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/rpc"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// startBroker runs an in-process broker on a socket in a fresh directory,
// as a program embedding postbox would; the returned func stops it.
func startBroker() (socket string, stop func()) {
	dir, _ := os.MkdirTemp("", "postbox-rpc-example-")
	socket = filepath.Join(dir, "postbox.sock")
	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b := broker.New(cfg)
	l, err := broker.Listen(socket, 0o666)
	if err != nil {
		panic(err)
	}
	go b.Serve(l)
	return socket, func() { b.Close(); os.RemoveAll(dir) }
}

func dial(socket string) *postbox.Client {
	c, err := postbox.Dial(context.Background(), postbox.WithSocket(socket))
	if err != nil {
		panic(err)
	}
	return c
}

type GreetRequest struct {
	Name string `json:"name"`
}

type GreetReply struct {
	Greeting string `json:"greeting"`
}

// Greet is shared by both sides: the service (a mailbox), the method, and
// the default semantics of its calls.
var Greet = rpc.Method[GreetRequest, GreetReply]{Service: "demo.Greeter", Name: "Greet", Semantics: rpc.ExactlyOnce}

// A typed method: the server registers a handler, the client calls it.
func Example() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()

	srvConn := dial(socket)
	defer srvConn.Close()
	srv := rpc.NewServer(srvConn)
	rpc.Register(srv, Greet, func(ctx context.Context, req *GreetRequest) (*GreetReply, error) {
		if req.Name == "" {
			return nil, rpc.Errorf(envelope.InvalidArgument, "whom shall I greet?")
		}
		return &GreetReply{Greeting: "hello, " + req.Name}, nil
	})
	if err := srv.Start(ctx); err != nil { // creates the service mailbox
		panic(err)
	}
	defer srv.Close()

	callConn := dial(socket)
	defer callConn.Close()
	client := rpc.NewClient(callConn)
	reply, err := Greet.Call(ctx, client, &GreetRequest{Name: "world"})
	fmt.Println(reply.Greeting, err)
	_, err = Greet.Call(ctx, client, &GreetRequest{})
	fmt.Println(rpc.CodeOf(err))
	// Output:
	// hello, world <nil>
	// InvalidArgument
}

// The raw layer: bytes in, bytes out, with metadata both ways. A handler
// sees the request message itself (here, the caller's pid).
func ExampleClient_Invoke() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()

	srvConn := dial(socket)
	defer srvConn.Close()
	srv := rpc.NewServer(srvConn)
	srv.HandleRaw("demo.Text", "Upper", func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) {
		fromMe := r.Message.Sender.PID == int32(os.Getpid())
		return &rpc.Reply{
			Body:   []byte(strings.ToUpper(string(r.Body))),
			Header: rpc.Metadata{"same-process": {fmt.Sprint(fromMe)}},
		}, nil
	})
	if err := srv.Start(ctx); err != nil {
		panic(err)
	}
	defer srv.Close()

	callConn := dial(socket)
	defer callConn.Close()
	rep, err := rpc.NewClient(callConn).Invoke(ctx, "demo.Text", "Upper", []byte("shout"),
		rpc.WithMetadata(rpc.Metadata{"trace-id": {"t-1"}}))
	if err != nil {
		panic(err)
	}
	fmt.Println(string(rep.Body), rep.Header.Get("same-process"))
	// Output: SHOUT true
}

// Exactly-once: a retry of a finished call (same request id) gets the
// cached reply, and the handler runs once. The request ids are the same
// for every attempt of a call, so a handler can also use RequestID(ctx)
// to make its own effects idempotent.
func ExampleRequestID() {
	socket, stop := startBroker()
	defer stop()
	ctx := context.Background()

	srvConn := dial(socket)
	defer srvConn.Close()
	srv := rpc.NewServer(srvConn)
	var runs atomic.Int64 // handlers run on the server's goroutines
	srv.HandleRaw("demo.Counter", "Add", func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) {
		runs.Add(1)
		id, _ := rpc.RequestID(ctx)
		return &rpc.Reply{Body: []byte(fmt.Sprintf("request seq %d", id.Seq()))}, nil
	})
	if err := srv.Start(ctx); err != nil {
		panic(err)
	}
	defer srv.Close()

	callConn := dial(socket)
	defer callConn.Close()
	// Send one request twice by hand, as a retry would.
	id := envelope.NewID([16]byte{1}, 7)
	for range 2 {
		m, err := callConn.Mailbox("demo.Counter").Call(ctx, nil, postbox.CorrelationID(id[:]),
			postbox.WithHeader(envelope.Method, "Add"), postbox.WithHeader(envelope.Semantics, envelope.SemExactlyOnce))
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s, cached=%q\n", m.Body, m.Header().Get(envelope.Cached))
	}
	fmt.Println("runs:", runs.Load())
	// Output:
	// request seq 7, cached=""
	// request seq 7, cached="1"
	// runs: 1
}
