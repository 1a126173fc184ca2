package grpcpostbox_test

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/fullstorydev/grpchan/grpchantesting"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// BenchmarkUnary measures unary calls with a 64-byte payload, by one
// caller and by 16 at once: over postbox (the adapter: one CALL per call,
// through an in-process broker on a Unix socket) and over gRPC-go itself
// on a unix:// socket, with the same generated client and server code.
//
//	go test -run '^$' -bench Unary -benchmem ./rpc/grpcpostbox/
func BenchmarkUnary(b *testing.B) { benchBoth(b, benchUnary) }

// BenchmarkServerStream measures one 64-byte message of a server stream
// (flow control included: the default window of 32 messages).
func BenchmarkServerStream(b *testing.B) { benchBoth(b, benchServerStream) }

// benchBoth runs bench over postbox and over gRPC-go on a unix:// socket.
func benchBoth(b *testing.B, bench func(*testing.B, grpc.ClientConnInterface)) {
	b.Run("postbox", func(b *testing.B) {
		cc, _ := setup(b, &grpchantesting.TestServer{})
		bench(b, cc)
	})
	b.Run("grpc-go-unix", func(b *testing.B) {
		sock := filepath.Join(b.TempDir(), "grpc.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			b.Fatal(err)
		}
		s := grpc.NewServer()
		grpchantesting.RegisterTestServiceServer(s, &grpchantesting.TestServer{})
		go s.Serve(l)
		defer s.Stop()
		cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Close()
		bench(b, cc)
	})
}

func benchServerStream(b *testing.B, cc grpc.ClientConnInterface) {
	cli := grpchantesting.NewTestServiceClient(cc)
	b.ReportAllocs()
	ss, err := cli.ServerStream(context.Background(), &grpchantesting.Message{Payload: make([]byte, 64), Count: int32(b.N)})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if _, err := ss.Recv(); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := ss.Recv(); err != io.EOF {
		b.Fatalf("after the last message: %v", err)
	}
}

func benchUnary(b *testing.B, cc grpc.ClientConnInterface) {
	req := &grpchantesting.Message{Payload: make([]byte, 64)}
	cli := grpchantesting.NewTestServiceClient(cc)
	ctx := context.Background()
	if _, err := cli.Unary(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.Run("callers=1", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cli.Unary(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("callers=16", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := cli.Unary(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
