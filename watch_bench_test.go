package postbox_test

import (
	"context"
	"testing"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// BenchmarkSendReceive64Watched is BenchmarkSendReceive64 (one client
// sends 64-byte messages, 128 in flight, another consumes and acks) with
// the moved mailbox watched by a third client (its edges are computed on
// every step), and BenchmarkSendReceive64WatchElsewhere with only another
// mailbox watched. Compare both with BenchmarkSendReceive64 in the same
// run: the watch table's cost on the delivery path.
func BenchmarkSendReceive64Watched(b *testing.B) { benchWatched(b, "bench") }

// BenchmarkSendReceive64WatchElsewhere: see BenchmarkSendReceive64Watched.
func BenchmarkSendReceive64WatchElsewhere(b *testing.B) { benchWatched(b, "elsewhere") }

func benchWatched(b *testing.B, watched string) {
	br := testbroker.Start(b, nil)
	sc, rc, wc := br.Dial(b), br.Dial(b), br.Dial(b)
	ctx := context.Background()
	mb, err := sc.Create(ctx, "bench", postbox.Capacity(4096))
	if err != nil {
		b.Fatal(err)
	}
	w, err := wc.Watch(ctx, watched)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close(ctx)
	go func() { // keep reading the notices
		for {
			if _, err := w.Next(ctx); err != nil {
				return
			}
		}
	}()
	cons, err := rc.Mailbox("bench").Consume(ctx, postbox.Prefetch(1024))
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close(ctx)
	body := make([]byte, 64)
	b.SetBytes(64)
	b.ReportAllocs()
	b.ResetTimer()
	pub := mb.Publisher(128)
	errc := make(chan error, 1)
	go func() {
		for range b.N {
			if err := pub.Send(ctx, body); err != nil {
				errc <- err
				return
			}
		}
		errc <- pub.Flush(ctx)
	}()
	for range b.N {
		m, err := cons.Next(ctx)
		if err != nil {
			b.Fatal(err)
		}
		m.AckNoWait()
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}
