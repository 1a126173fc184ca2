package postbox_test

import (
	"context"
	"sync"
	"testing"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// BenchmarkFanOut16Multicast sends one 64-byte message to a group of 16
// endpoints per op (one SEND, 16 copies made by the broker); each member
// consumes its inbox with AutoAck. BenchmarkFanOut16Sends is the baseline
// measured the same way: the sender itself sends the message to each of
// the 16 inboxes (16 SENDs per op). Compare their ns/op.
func BenchmarkFanOut16Multicast(b *testing.B) { benchFanOut(b, 16, true) }

// BenchmarkFanOut16Sends: see BenchmarkFanOut16Multicast.
func BenchmarkFanOut16Sends(b *testing.B) { benchFanOut(b, 16, false) }

func benchFanOut(b *testing.B, members int, multicast bool) {
	br := testbroker.Start(b, nil)
	ctx := context.Background()
	sender := br.Dial(b)
	var wg sync.WaitGroup
	var inboxes []*postbox.Mailbox
	for range members {
		m := br.Dial(b)
		if err := m.Join(ctx, "#bench"); err != nil {
			b.Fatal(err)
		}
		inboxes = append(inboxes, sender.Mailbox(m.Inbox().Name()))
		cons, err := m.Inbox().Consume(ctx, postbox.AutoAck(), postbox.Prefetch(1024))
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range b.N {
				if _, err := cons.Next(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	body := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if multicast {
			// A multicast never waits: a copy that finds an inbox full is
			// dropped. The consumers keep up (their prefetch is far above
			// what is in flight), so every member must get every copy.
			n, err := sender.Multicast(ctx, "#bench", body)
			if err != nil {
				b.Fatal(err)
			}
			if n != members {
				b.Fatalf("%d of %d members got the copy: an inbox was full", n, members)
			}
			continue
		}
		for _, mb := range inboxes {
			if _, err := mb.Send(ctx, body); err != nil {
				b.Fatal(err)
			}
		}
	}
	wg.Wait()
}
