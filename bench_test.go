package postbox_test

import (
	"context"
	"testing"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// BenchmarkSendReceive64 moves 64-byte messages from one client to a
// consumer on another, acks on, b.N of them, with 128 sends in flight.
func BenchmarkSendReceive64(b *testing.B) { benchSendReceive(b, 64, 128) }

// BenchmarkSendReceive4K is the same at 4 KiB.
func BenchmarkSendReceive4K(b *testing.B) { benchSendReceive(b, 4096, 128) }

func benchSendReceive(b *testing.B, size, window int) {
	br := testbroker.Start(b, nil)
	sc, rc := br.Dial(b), br.Dial(b)
	ctx := context.Background()
	mb, err := sc.Create(ctx, "bench", postbox.Capacity(4096))
	if err != nil {
		b.Fatal(err)
	}
	cons, err := rc.Mailbox("bench").Consume(ctx, postbox.Prefetch(1024))
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close(ctx)
	body := make([]byte, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	pub := mb.Publisher(window)
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

// BenchmarkSendReceive4KWindow1024 is SendReceive4K with the window
// `postbox bench` uses (1024 sends in flight, so the Publisher's SEND
// frames carry hundreds of messages each).
func BenchmarkSendReceive4KWindow1024(b *testing.B) { benchSendReceive(b, 4096, 1024) }
