package grpcpostbox_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/fullstorydev/grpchan/grpchantesting"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/rpc"
	"github.com/postbox-ipc/postbox/rpc/grpcpostbox"
)

// Generated gRPC code on both sides: grpchantesting's TestService
// (protoc-gen-go-grpc output) served and called over postbox.
func Example() {
	dir, _ := os.MkdirTemp("", "grpcpostbox-example-")
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "postbox.sock")
	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b := broker.New(cfg)
	l, err := broker.Listen(socket, 0o666)
	if err != nil {
		panic(err)
	}
	go b.Serve(l)
	defer b.Close()
	ctx := context.Background()

	// The server process: gRPC methods on an rpc.Server.
	pc, err := postbox.Dial(ctx, postbox.WithSocket(socket))
	if err != nil {
		panic(err)
	}
	defer pc.Close()
	rs := rpc.NewServer(pc)
	srv := grpcpostbox.NewServer(rs, pc)
	grpchantesting.RegisterTestServiceServer(srv, &grpchantesting.TestServer{})
	if err := rs.Start(ctx); err != nil {
		panic(err)
	}
	defer srv.Close()

	// The client process.
	pc2, err := postbox.Dial(ctx, postbox.WithSocket(socket))
	if err != nil {
		panic(err)
	}
	defer pc2.Close()
	cc, err := grpcpostbox.Dial(ctx, rpc.NewClient(pc2))
	if err != nil {
		panic(err)
	}
	defer cc.Close()
	cli := grpchantesting.NewTestServiceClient(cc)

	rep, err := cli.Unary(ctx, &grpchantesting.Message{Payload: []byte("hello")})
	if err != nil {
		panic(err)
	}
	fmt.Printf("unary: %s\n", rep.Payload)

	stream, err := cli.ServerStream(ctx, &grpchantesting.Message{Payload: []byte("tick"), Count: 3})
	if err != nil {
		panic(err)
	}
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		fmt.Printf("stream: %s\n", m.Payload)
	}
	// Output:
	// unary: hello
	// stream: tick
	// stream: tick
	// stream: tick
}
