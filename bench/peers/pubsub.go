package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/wire"
)

// pubsubTitle names the fan-out workload of size-byte publications to n
// subscribers.
func pubsubTitle(size, n int) string {
	return fmt.Sprintf("pub/sub %s, one publisher → %d %s", sizeName(size), n, subscribersWord(n))
}

// pubsubKey is that workload's key.
func pubsubKey(size, n int) string { return fmt.Sprintf("pubsub%d-%d", size, n) }

// subscriberBuffer is a postbox subscriber's buffer, in events, for
// size-byte publications: cfg.PubsubBufferBytes of them, at least 1 and
// at most the largest buffer a SUBSCRIBE may ask for.
func subscriberBuffer(cfg Config, size int) int {
	return min(max(1, cfg.PubsubBufferBytes/max(size, 1)), wire.MaxSubscribeBuffer)
}

func subscribersWord(n int) string {
	if n == 1 {
		return "subscriber"
	}
	return "subscribers"
}

// fanOutCounts is what n subscribers received, one counter each.
type fanOutCounts []atomic.Int64

// sum is the events received by all subscribers.
func (c fanOutCounts) sum() int64 {
	var s int64
	for i := range c {
		s += c[i].Load()
	}
	return s
}

// least is the count of the slowest subscriber.
func (c fanOutCounts) least() int64 {
	m := c[0].Load()
	for i := range c[1:] {
		m = min(m, c[i+1].Load())
	}
	return m
}

// fanOut is a fan-out measurement: events per second at the
// subscribers, and the CPU time the server process and this process (the
// publisher and every subscriber) spent per event meanwhile.
type fanOut struct {
	rate                 float64
	serverCPU, clientCPU time.Duration // per event
}

func (f fanOut) cpu() string {
	return fmt.Sprintf("CPU per event: server %s, clients %s", durText(float64(f.serverCPU)), durText(float64(f.clientCPU)))
}

// measureFanOut runs the publisher started by publish, waits d/5 (warm
// up), then counts what the subscribers receive over d, and the CPU time
// of the server process (pid server) and of this one, and stops the
// publisher (close(stop), then wait). The rate is the sum over all
// subscribers, per second.
func measureFanOut(ctx context.Context, counts fanOutCounts, server int, d time.Duration, publish func(stop <-chan struct{}) (wait func() error)) (fanOut, error) {
	stop := make(chan struct{})
	wait := publish(stop)
	sleep := func(d time.Duration) {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	sleep(d / 5) // warm up
	start, before := time.Now(), counts.sum()
	s0, c0 := processCPU(server), selfCPU()
	sleep(d)
	got, elapsed := counts.sum()-before, time.Since(start)
	s1, c1 := processCPU(server), selfCPU()
	close(stop)
	err := wait()
	if ctx.Err() != nil {
		return fanOut{}, ctx.Err()
	}
	if err != nil {
		return fanOut{}, err
	}
	f := fanOut{rate: float64(got) / elapsed.Seconds()}
	if got > 0 {
		f.serverCPU, f.clientCPU = (s1-s0)/time.Duration(got), (c1-c0)/time.Duration(got)
	}
	return f, nil
}

var pubsubSeq atomic.Uint64

// postboxSubscribers is the subscriber side of a postbox pub/sub row:
// clients, each with subscriptions whose goroutines count the events
// into counts[the client's index]. A gap notice is kept as errDropped:
// nothing may be lost.
type postboxSubscribers struct {
	sock    string
	counts  fanOutCounts
	gap     atomic.Value // the first gap notice seen, as an error
	subs    []*postbox.Subscription
	clients []*postbox.Client
	wg      sync.WaitGroup
}

func newPostboxSubscribers(sock string, clients int) *postboxSubscribers {
	return &postboxSubscribers{sock: sock, counts: make(fanOutCounts, clients)}
}

// dial connects the next subscriber client.
func (ps *postboxSubscribers) dial(ctx context.Context) (*postbox.Client, error) {
	c, err := postbox.Dial(ctx, postbox.WithSocket(ps.sock))
	if err == nil {
		ps.clients = append(ps.clients, c)
	}
	return c, err
}

// subscribe subscribes client i (c) to pattern with a buffer of buffer
// events and starts the goroutine that counts its events.
func (ps *postboxSubscribers) subscribe(ctx context.Context, i int, c *postbox.Client, pattern string, buffer int) error {
	s, err := c.Subscribe(ctx, pattern, postbox.Buffer(buffer))
	if err != nil {
		return err
	}
	ps.subs = append(ps.subs, s)
	ps.wg.Add(1)
	go func() {
		defer ps.wg.Done()
		for {
			ev, err := s.Next(context.Background())
			if err != nil {
				return // closed, or the connection ended
			}
			if ev.Gap || ev.Missed > 0 {
				ps.gap.CompareAndSwap(nil, fmt.Errorf("%w: a postbox subscription of %q (client %d of %d) missed %d publications",
					errDropped, pattern, i+1, len(ps.counts), ev.Missed))
				continue
			}
			ps.counts[i].Add(1)
		}
	}()
	return nil
}

// err is the first gap seen, or a subscription's missed count, as
// errDropped; nil if nothing was lost.
func (ps *postboxSubscribers) err() error {
	if err, _ := ps.gap.Load().(error); err != nil {
		return err
	}
	for _, s := range ps.subs {
		if m := s.Missed(); m > 0 {
			return fmt.Errorf("%w: a postbox subscription missed %d publications", errDropped, m)
		}
	}
	return nil
}

// close ends the subscriptions, waits for their goroutines, and closes
// the clients.
func (ps *postboxSubscribers) close() {
	for _, s := range ps.subs {
		s.Close()
	}
	ps.wg.Wait()
	for _, c := range ps.clients {
		c.Close()
	}
}

// publishUntil calls publish(0), publish(1), ... in a goroutine until
// stop is closed or a call fails; wait returns that failure, or nil.
func publishUntil(stop <-chan struct{}, publish func(i int) error) (wait func() error) {
	errc := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				errc <- nil
				return
			default:
			}
			if err := publish(i); err != nil {
				errc <- err
				return
			}
		}
	}()
	return func() error { return <-errc }
}

// postboxFanOut is `postbox bench`'s batched fan-out (benchFanOut): one
// client publishes size-byte messages to a subject through a
// TopicPublisher with window publications in flight (batched PUBLISH
// frames, each answered by the broker), and n clients, each with one
// subscription (buffer events, policy block: a publication waits in the
// broker while a subscriber's buffer is full, and the subscriber returns
// credit every buffer/4 events it takes) and a goroutine calling Next,
// count the events. Nothing may be lost: a gap notice fails the
// measurement with errDropped.
func postboxFanOut(ctx context.Context, sock string, server, n, size, window, buffer int, d time.Duration) (result, error) {
	pub, err := postbox.Dial(ctx, postbox.WithSocket(sock))
	if err != nil {
		return result{}, err
	}
	defer pub.Close()
	subj := fmt.Sprintf("peers.fanout.%d", pubsubSeq.Add(1))
	subs := newPostboxSubscribers(sock, n)
	defer subs.close()
	for i := range n {
		c, err := subs.dial(ctx)
		if err != nil {
			return result{}, err
		}
		if err := subs.subscribe(ctx, i, c, subj, buffer); err != nil {
			return result{}, err
		}
	}
	tp := pub.Publisher(subj, window)
	body := make([]byte, size)
	fo, err := measureFanOut(ctx, subs.counts, server, d, func(stop <-chan struct{}) func() error {
		return publishUntil(stop, func(int) error { return tp.Publish(ctx, body) })
	})
	if err != nil {
		return result{}, err
	}
	if err := tp.Close(ctx); err != nil {
		return result{}, err
	}
	if err := subs.err(); err != nil {
		return result{}, err
	}
	return result{rate: fo.rate, note: fmt.Sprintf("Client.Publisher window %d, %.0f publications a frame; %s",
		window, float64(tp.Sent())/float64(max(tp.Frames(), 1)), fo.cpu())}, nil
}

// natsPublishHeld calls publish(0), publish(1), ... in a goroutine until
// stop is closed or a call fails, keeping the sent ones within window
// of the slowest count (NATS core has no flow control); wait returns
// the failure, or nil.
func natsPublishHeld(stop <-chan struct{}, counts fanOutCounts, window int64, publish func(sent int64) error) (wait func() error) {
	var halt atomic.Bool
	go func() { <-stop; halt.Store(true) }()
	errc := make(chan error, 1)
	go func() {
		var sent int64
		least := counts.least() // of the slowest subscriber, refreshed when the bound looks reached
		for !halt.Load() {
			for sent-least > window && !halt.Load() {
				if least = counts.least(); sent-least > window {
					time.Sleep(20 * time.Microsecond)
				}
			}
			if err := publish(sent); err != nil {
				errc <- err
				return
			}
			sent++
		}
		errc <- nil
	}()
	return func() error { return <-errc }
}

// natsFanOut is postboxFanOut against NATS core: one publisher
// connection, n subscriber connections each with one subscription whose
// callback counts. Core NATS has no flow control, so the publisher is
// held within natsWindowBytes of the slowest subscriber; a subscriber
// that dropped messages anyway fails the measurement with errDropped.
func natsFanOut(ctx context.Context, url string, server, n, size int, d time.Duration) (result, error) {
	pc, err := nats.Connect(url)
	if err != nil {
		return result{}, err
	}
	defer pc.Close()
	subj := subject("fanout")
	counts := make(fanOutCounts, n)
	subs := make([]*nats.Subscription, n)
	for i := range n {
		sc, err := nats.Connect(url)
		if err != nil {
			return result{}, err
		}
		defer sc.Close()
		sub, err := natsSubscribe(sc, subj, &counts[i])
		if err != nil {
			return result{}, err
		}
		if err := sc.Flush(); err != nil { // the subscription is in place
			return result{}, err
		}
		subs[i] = sub
	}
	window := int64(natsWindowBytes / size)
	body := make([]byte, size)
	fo, err := measureFanOut(ctx, counts, server, d, func(stop <-chan struct{}) func() error {
		return natsPublishHeld(stop, counts, window, func(int64) error { return pc.Publish(subj, body) })
	})
	if err != nil {
		return result{}, err
	}
	for i, sub := range subs {
		if err := checkDropped(sub); err != nil {
			return result{}, fmt.Errorf("NATS subscriber %d of %d: %w", i+1, n, err)
		}
	}
	return result{rate: fo.rate, note: fmt.Sprintf("publisher held within %d messages of the slowest subscriber; %s", window, fo.cpu())}, nil
}
