package rpc_test

import (
	"context"
	"testing"

	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/rpc"
)

// BenchmarkInvoke is a 64-byte unary call per semantics, from parallel
// callers on one connection to a server on another (the CLI's
// `postbox bench rpc` is the measured table; this is for profiles).
func BenchmarkInvoke(b *testing.B) {
	br := testbroker.Start(b, nil)
	srv := rpc.NewServer(br.Dial(b), rpc.Concurrency(32))
	srv.HandleRaw("bench.Echo", "Echo", func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) {
		return &rpc.Reply{Body: r.Body}, nil
	})
	if err := srv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	c := rpc.NewClient(br.Dial(b))
	body := make([]byte, 64)
	for _, sem := range []rpc.Semantics{rpc.Maybe, rpc.AtLeastOnce, rpc.ExactlyOnce} {
		b.Run(sem.String(), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Invoke(context.Background(), "bench.Echo", "Echo", body, rpc.WithSemantics(sem)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
