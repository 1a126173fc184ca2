package grpcpostbox_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"github.com/fullstorydev/grpchan/grpchantesting"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// BenchmarkUnary measures one unary call with a 64-byte payload, one
// caller at a time: over postbox (the adapter, one CALL per call, through
// an in-process broker on a Unix socket) and over gRPC-go itself on a
// unix:// socket, the same generated client and server code on both.
//
//	go test -run '^$' -bench Unary -benchmem ./rpc/grpcpostbox/
func BenchmarkUnary(b *testing.B) {
	req := &grpchantesting.Message{Payload: make([]byte, 64)}
	run := func(b *testing.B, cc grpc.ClientConnInterface) {
		cli := grpchantesting.NewTestServiceClient(cc)
		ctx := context.Background()
		if _, err := cli.Unary(ctx, req); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, err := cli.Unary(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("postbox", func(b *testing.B) {
		cc, _ := setup(b, &grpchantesting.TestServer{})
		run(b, cc)
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
		run(b, cc)
	})
}
