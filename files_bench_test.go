package postbox_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// BenchmarkSendWithFile measures a message that carries one descriptor
// (an open file) beside a plain one, in the same run: one client sends
// (Send, waiting for each reply), a consumer on another receives, closes
// what came and acks. It reports ns per message of each and their ratio
// (fd/plain); ns/op is the two together.
//
//	go test -run '^$' -bench SendWithFile -benchmem .
func BenchmarkSendWithFile(b *testing.B) {
	br := testbroker.Start(b, nil)
	sc, rc := br.Dial(b), br.Dial(b)
	ctx := context.Background()
	mb, err := sc.Create(ctx, "fdbench", postbox.Capacity(64)) // with Prefetch(64): under the 256 descriptors a connection may have held
	if err != nil {
		b.Fatal(err)
	}
	cons, err := rc.Mailbox("fdbench").Consume(ctx, postbox.Prefetch(64))
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close(ctx)
	f, err := os.Open(os.DevNull)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	body := make([]byte, 64)
	run := func(opts ...postbox.SendOption) time.Duration {
		start := time.Now()
		errc := make(chan error, 1)
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			for range b.N {
				if _, err := mb.Send(ctx, body, opts...); err != nil {
					errc <- err
					cancel() // the receiver would wait for it forever
					return
				}
			}
			errc <- nil
		}()
		for range b.N {
			m, err := cons.Next(rctx)
			if err != nil {
				b.Fatal(err, <-errc)
			}
			m.CloseFiles()
			m.AckNoWait()
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	b.ReportAllocs()
	b.ResetTimer()
	plain := run()
	withFile := run(postbox.WithFiles(f))
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(plain.Nanoseconds())/n, "plain-ns/msg")
	b.ReportMetric(float64(withFile.Nanoseconds())/n, "fd-ns/msg")
	b.ReportMetric(float64(withFile)/float64(plain), "ratio")
}
