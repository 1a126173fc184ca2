package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// errDropped is a subscriber losing messages (a NATS slow consumer, or a
// postbox gap notice): the figure would count less than was sent, so the
// run fails instead.
var errDropped = errors.New("peers: a subscriber dropped messages")

// natsWindowBytes bounds how far the NATS publisher runs ahead of its
// subscriber. Core NATS has no acks, so without a bound a publisher
// faster than its subscriber fills the subscriber's pending buffers
// until messages are dropped; 8 MiB stays well inside nats.go's and the
// server's default limits (64 MiB) and never limits a subscriber that
// keeps up.
const natsWindowBytes = 8 << 20

var subjectSeq atomic.Uint64

func subject(prefix string) string {
	return fmt.Sprintf("%s.%d", prefix, subjectSeq.Add(1))
}

// natsThroughput moves size-byte messages from one publisher connection
// to one subscriber connection through NATS core (no acks, at most once)
// for d, and counts what the subscriber received.
func natsThroughput(ctx context.Context, url string, size int, d time.Duration) (result, error) {
	pc, err := nats.Connect(url)
	if err != nil {
		return result{}, err
	}
	defer pc.Close()
	sc, err := nats.Connect(url)
	if err != nil {
		return result{}, err
	}
	defer sc.Close()
	subj := subject("tput")
	var received atomic.Int64
	sub, err := natsSubscribe(sc, subj, &received)
	if err != nil {
		return result{}, err
	}
	if err := sc.Flush(); err != nil { // the subscription is in place
		return result{}, err
	}
	window := int64(natsWindowBytes / size)
	body := make([]byte, size)
	var stop atomic.Bool
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var sent int64
		for !stop.Load() {
			for sent-received.Load() > window && !stop.Load() {
				time.Sleep(20 * time.Microsecond)
			}
			if err := pc.Publish(subj, body); err != nil {
				errc <- err
				return
			}
			sent++
		}
	}()
	start := time.Now()
	from := received.Load()
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	got := received.Load() - from
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	select {
	case err := <-errc:
		return result{}, err
	default:
	}
	if err := checkDropped(sub); err != nil {
		return result{}, fmt.Errorf("%d B: %w", size, err)
	}
	return result{rate: float64(got) / elapsed.Seconds(),
		note: fmt.Sprintf("publisher held within %d messages of the subscriber", window)}, nil
}

// natsSubscribe subscribes sc to subj with a callback that counts into
// count, and a pending limit (64 MiB) that no subscriber keeping up
// reaches.
func natsSubscribe(sc *nats.Conn, subj string, count *atomic.Int64) (*nats.Subscription, error) {
	sub, err := sc.Subscribe(subj, func(*nats.Msg) { count.Add(1) })
	if err != nil {
		return nil, err
	}
	if err := sub.SetPendingLimits(-1, 64<<20); err != nil {
		return nil, err
	}
	return sub, nil
}

// checkDropped fails if sub has dropped messages.
func checkDropped(sub *nats.Subscription) error {
	n, err := sub.Dropped()
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%w: %d messages", errDropped, n)
	}
	return nil
}

// natsLatency measures a Publish on one connection to the message coming
// out of NextMsg on another.
func natsLatency(ctx context.Context, url string, size, samples int) (result, error) {
	pc, err := nats.Connect(url)
	if err != nil {
		return result{}, err
	}
	defer pc.Close()
	sc, err := nats.Connect(url)
	if err != nil {
		return result{}, err
	}
	defer sc.Close()
	subj := subject("lat")
	sub, err := sc.SubscribeSync(subj)
	if err != nil {
		return result{}, err
	}
	if err := sc.Flush(); err != nil {
		return result{}, err
	}
	body := make([]byte, size)
	lat := make([]time.Duration, 0, samples)
	for i := range samples + samples/10 {
		if ctx.Err() != nil {
			return result{}, ctx.Err()
		}
		t0 := time.Now()
		if err := pc.Publish(subj, body); err != nil {
			return result{}, err
		}
		if _, err := sub.NextMsg(10 * time.Second); err != nil {
			return result{}, err
		}
		if i >= samples/10 { // warm-up discarded
			lat = append(lat, time.Since(t0))
		}
	}
	return latencies(lat), nil
}

// jsSends has senders connections each publish size-byte messages to one
// file-backed JetStream stream, one at a time, each waiting for its
// PubAck, for d. The server syncs every write (sync_interval: always),
// so an ack means the message is on disk.
func jsSends(ctx context.Context, url string, senders, size int, d time.Duration) (result, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return result{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return result{}, err
	}
	subj := subject("durable")
	name := fmt.Sprintf("PEERS_%d", subjectSeq.Add(1))
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: name, Subjects: []string{subj}, Storage: jetstream.FileStorage,
	}); err != nil {
		return result{}, err
	}
	defer js.DeleteStream(context.Background(), name)
	return concurrent(ctx, senders, d, func(ctx context.Context) (func(context.Context) error, func(), error) {
		c, err := nats.Connect(url)
		if err != nil {
			return nil, nil, err
		}
		j, err := jetstream.New(c)
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		body := make([]byte, size)
		return func(ctx context.Context) error {
			_, err := j.Publish(ctx, subj, body)
			return err
		}, c.Close, nil
	})
}
