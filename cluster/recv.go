package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postbox-ipc/postbox/broker"
)

// Receiving: one durable pull consumer per mailbox and type selector,
// shared by every broker. A work-queue stream does not allow consumers
// whose filters overlap, so a mailbox is received from either by any
// type (0) or by exact types at a time: the other kind is refused
// (broker.ErrClusterTypeMix) until the consumers of the first kind have
// been idle for consumerIdle and JetStream has removed them.

// consumerIdle is how long an unused consumer lives (nanoseconds; a
// test shortens it).
var consumerIdle atomic.Int64

func init() { consumerIdle.Store(int64(2 * time.Minute)) }

// consumerName is the durable consumer of name's receivers selecting typ.
func consumerName(typ int64) string {
	if typ == 0 {
		return "postbox-any"
	}
	return "postbox-t" + strconv.FormatInt(typ, 10)
}

// Receiver returns the shared consumer of name's messages typ selects.
func (b *Backend) Receiver(ctx context.Context, name string, typ int64) (broker.RemoteReceiver, error) {
	if err := b.up(); err != nil {
		return nil, err
	}
	k := consumerKey{streamName(name), typ}
	b.mu.Lock()
	c := b.consumers[k]
	b.mu.Unlock()
	if c != nil {
		return &receiver{b: b, key: k, name: name, c: c}, nil
	}
	c, err := b.consumer(ctx, k, name)
	if err != nil {
		return nil, err
	}
	return &receiver{b: b, key: k, name: name, c: c}, nil
}

// consumer makes (or finds) the consumer k and remembers it.
func (b *Backend) consumer(ctx context.Context, k consumerKey, name string) (jetstream.Consumer, error) {
	c, err := transient(ctx, func() (jetstream.Consumer, error) {
		return b.js.CreateOrUpdateConsumer(ctx, k.stream, b.consumerConfig(k, name))
	})
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && strings.Contains(apiErr.Description, "workqueue") {
			return nil, fmt.Errorf("%w (%s)", broker.ErrClusterTypeMix, apiErr.Description)
		}
		return nil, mapErr(err)
	}
	b.mu.Lock()
	b.consumers[k] = c
	b.mu.Unlock()
	return c, nil
}

func (b *Backend) consumerConfig(k consumerKey, name string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:           consumerName(k.typ),
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           b.cfg.AckWait,
		FilterSubject:     filter(name, k.typ),
		MaxAckPending:     -1,
		MaxWaiting:        4096,
		InactiveThreshold: time.Duration(consumerIdle.Load()),
	}
}

type receiver struct {
	b    *Backend
	key  consumerKey
	name string

	mu sync.Mutex // guards c: a fetch given up on may still run beside the next
	c  jetstream.Consumer
}

func (r *receiver) consumer() jetstream.Consumer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.c
}

// Fetch takes 1..n messages: it waits (until ctx ends) for the first,
// then takes the others that are there at once.
func (r *receiver) Fetch(ctx context.Context, n int, wait bool) ([]broker.RemoteDelivery, error) {
	if err := r.b.up(); err != nil {
		return nil, err
	}
	var ds []broker.RemoteDelivery
	var err error
	if wait {
		ds, err = r.wait(ctx)
		if err != nil || len(ds) == 0 || n == 1 {
			return ds, err
		}
		n--
	}
	more, err := r.fetch(func() (jetstream.MessageBatch, error) { return r.consumer().FetchNoWait(n) })
	ds = append(ds, more...)
	if len(ds) > 0 {
		return ds, nil
	}
	return nil, err
}

// wait takes one message, waiting until ctx's deadline for it. The pull
// request expires on the server at that deadline (not by the client
// giving up on it, which could drop a message the server had just sent,
// leaving it leased until the ack wait): if ctx ends first, what the
// request still brings is nacked, to go to another receiver at once.
func (r *receiver) wait(ctx context.Context) ([]broker.RemoteDelivery, error) {
	d := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		d = max(time.Until(dl), 10*time.Millisecond)
	}
	type result struct {
		ds  []broker.RemoteDelivery
		err error
	}
	res := make(chan result, 1)
	go func() {
		ds, err := r.fetch(func() (jetstream.MessageBatch, error) { return r.consumer().Fetch(1, jetstream.FetchMaxWait(d)) })
		res <- result{ds, err}
	}()
	select {
	case x := <-res:
		return x.ds, x.err
	case <-ctx.Done():
		go func() {
			for _, d := range (<-res).ds {
				d.Lease.Nack()
			}
		}()
		return nil, broker.ErrRemoteEmpty
	}
}

// fetch runs one pull request. A consumer just made (or whose leader
// just moved) has no responder for a moment: that is retried for up to
// two seconds before it is UNAVAILABLE.
//
// No responder may also mean the consumer is gone (JetStream removes a
// consumer idle for consumerIdle): that is checked first, and the
// consumer made again.
func (r *receiver) fetch(f func() (jetstream.MessageBatch, error)) ([]broker.RemoteDelivery, error) {
	ds, err := r.fetchOnce(f)
	if errors.Is(err, nats.ErrNoResponders) {
		if err = r.renew(); err == nil {
			ds, err = transient(context.Background(), func() ([]broker.RemoteDelivery, error) { return r.fetchOnce(f) })
		}
	}
	if err != nil {
		return nil, r.fetchErr(err)
	}
	return ds, nil
}

// renew makes the consumer again if it is gone; NOT_FOUND if its
// mailbox is.
func (r *receiver) renew() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := r.consumer().Info(ctx); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil // there (or no answer): a leader is missing for a moment
	}
	if err := r.fetchErr(jetstream.ErrConsumerNotFound); err != broker.ErrRemoteEmpty {
		return err
	}
	return nil
}

func (r *receiver) fetchOnce(f func() (jetstream.MessageBatch, error)) ([]broker.RemoteDelivery, error) {
	mb, err := f()
	if err != nil {
		return nil, err
	}
	var ds []broker.RemoteDelivery
	for m := range mb.Messages() {
		ds = append(ds, delivery(m))
	}
	if err := mb.Error(); err != nil && len(ds) == 0 {
		return nil, err
	}
	if len(ds) == 0 {
		return nil, broker.ErrRemoteEmpty
	}
	return ds, nil
}

// fetchErr maps a fetch's error; a consumer found gone (removed while
// idle, or with its mailbox) is forgotten, to be made again.
func (r *receiver) fetchErr(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, context.Canceled):
		return broker.ErrRemoteEmpty
	case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrConsumerDeleted):
		r.b.mu.Lock()
		delete(r.b.consumers, r.key)
		r.b.mu.Unlock()
		if _, serr := r.b.js.Stream(context.Background(), r.key.stream); errors.Is(serr, jetstream.ErrStreamNotFound) {
			return broker.ErrRemoteNotFound
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, cerr := r.b.consumer(ctx, r.key, r.name)
		if cerr != nil {
			return cerr
		}
		r.mu.Lock()
		r.c = c
		r.mu.Unlock()
		return broker.ErrRemoteEmpty // made again: nothing fetched yet
	}
	return mapErr(err)
}

// delivery is a fetched message as the broker hands it out.
func delivery(m jetstream.Msg) broker.RemoteDelivery {
	d := broker.RemoteDelivery{RemoteMessage: remoteMessage(m), Lease: lease{m}}
	if md, err := m.Metadata(); err == nil {
		d.Seq = md.Sequence.Stream
		if md.NumDelivered > 1 {
			d.Redeliveries = uint32(md.NumDelivered - 1)
		}
	}
	return d
}

// lease settles one delivery with JetStream's ack, nak and in-progress.
type lease struct{ m jetstream.Msg }

func (l lease) Ack(confirm bool) error {
	if !confirm {
		return mapErr(l.m.Ack())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return mapErr(l.m.DoubleAck(ctx))
}

func (l lease) Nack() error       { return mapErr(l.m.Nak()) }
func (l lease) InProgress() error { return mapErr(l.m.InProgress()) }
