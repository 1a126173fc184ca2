package postbox_test

import (
	"context"
	"testing"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// One publisher to one subscriber through the in-process broker: the
// batched, pipelined TopicPublisher beside Publish with 64 goroutines (a
// frame and a reply per publication), in the same run. ns/op is per
// publication, received at the subscriber.

func BenchmarkPublishOnePerFrame64(b *testing.B) { benchPublish(b, 64, false, false) }
func BenchmarkPublishBatched64(b *testing.B)     { benchPublish(b, 64, true, false) }

// BenchmarkPublishToBatched64 is BenchmarkPublishBatched64 through
// PublishTo (the subject given with each publication).
func BenchmarkPublishToBatched64(b *testing.B) { benchPublish(b, 64, true, true) }

func benchPublish(b *testing.B, size int, batched, to bool) {
	br := testbroker.Start(b, nil)
	pub, sc := br.Dial(b), br.Dial(b)
	ctx := context.Background()
	s, err := sc.Subscribe(ctx, "bench.p", postbox.Buffer(4096))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := make([]byte, size)
	done := make(chan error, 1)
	go func() {
		for range b.N {
			if _, err := s.Next(ctx); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	if batched {
		tp := pub.Publisher("bench.p", 4096)
		for range b.N {
			var err error
			if to {
				err = tp.PublishTo(ctx, "bench.p", body)
			} else {
				err = tp.Publish(ctx, body)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := tp.Close(ctx); err != nil {
			b.Fatal(err)
		}
	} else {
		sem := make(chan struct{}, 64)
		errs := make(chan error, 64)
		for range b.N {
			sem <- struct{}{}
			go func() {
				_, err := pub.Publish(ctx, "bench.p", body)
				<-sem
				if err != nil {
					errs <- err
				}
			}()
		}
		for range 64 {
			sem <- struct{}{}
		}
		select {
		case err := <-errs:
			b.Fatal(err)
		default:
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
