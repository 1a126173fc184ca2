package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/postbox-ipc/postbox"
)

// The wildcard-heavy workload (`postbox bench pubsub`'s): wildcardSubs
// subscriptions on wildcardConns subscriber connections, patterns
// W.g.* and W.g.> for wildcardGroups groups g, each connection holding
// one subscription per group, so that every publication, to W.g.x for
// the next g in turn, matches wildcardConns of them (one per
// connection). 64 B publications.
const (
	wildcardConns  = 4
	wildcardGroups = 2500
	wildcardSubs   = wildcardConns * wildcardGroups
	wildcardSize   = 64
	// wildcardBuffer is each postbox subscription's buffer: the default
	// (each one sees a 2,500th of a connection's events).
	wildcardBuffer = 256
)

const wildcardTitle = "pub/sub 64 B, wildcard-heavy: 10,000 subscriptions, 4 match each publication"

// wildcardPattern is connection i's pattern for group g under prefix.
func wildcardPattern(prefix string, i, g int) string {
	if i%2 == 1 {
		return fmt.Sprintf("%s.%d.>", prefix, g)
	}
	return fmt.Sprintf("%s.%d.*", prefix, g)
}

// wildcardSubjects are the subjects published to, in turn.
func wildcardSubjects(prefix string) []string {
	s := make([]string, wildcardGroups)
	for g := range s {
		s[g] = fmt.Sprintf("%s.%d.x", prefix, g)
	}
	return s
}

// postboxWildcard publishes through one TopicPublisher's PublishTo
// (window publications in flight, the subjects in turn) to the
// wildcard-heavy subscriptions, each with a buffer of buffer events and
// its own goroutine calling Next, and counts the events at the
// subscribers, per connection. A gap fails it (errDropped).
func postboxWildcard(ctx context.Context, sock string, server, window, buffer int, d time.Duration) (result, error) {
	pub, err := postbox.Dial(ctx, postbox.WithSocket(sock))
	if err != nil {
		return result{}, err
	}
	defer pub.Close()
	prefix := fmt.Sprintf("peers.w%d", pubsubSeq.Add(1))
	subs := newPostboxSubscribers(sock, wildcardConns)
	defer subs.close()
	for i := range wildcardConns {
		c, err := subs.dial(ctx)
		if err != nil {
			return result{}, err
		}
		for g := range wildcardGroups {
			if err := subs.subscribe(ctx, i, c, wildcardPattern(prefix, i, g), buffer); err != nil {
				return result{}, err
			}
		}
	}
	subjects := wildcardSubjects(prefix)
	tp := pub.Publisher(subjects[0], window)
	body := make([]byte, wildcardSize)
	fo, err := measureFanOut(ctx, subs.counts, server, d, func(stop <-chan struct{}) func() error {
		return publishUntil(stop, func(i int) error { return tp.PublishTo(ctx, subjects[i%wildcardGroups], body) })
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
	return result{rate: fo.rate, note: fmt.Sprintf("TopicPublisher.PublishTo round %d subjects, window %d, %.0f publications a frame; %s",
		wildcardGroups, window, float64(tp.Sent())/float64(max(tp.Frames(), 1)), fo.cpu())}, nil
}

// natsWildcard is postboxWildcard against NATS core: the same
// subscriptions, each with a callback counting, on wildcardConns
// connections; the publisher is held within natsWindowBytes of the
// slowest connection's count.
func natsWildcard(ctx context.Context, url string, server int, d time.Duration) (result, error) {
	pc, err := nats.Connect(url)
	if err != nil {
		return result{}, err
	}
	defer pc.Close()
	prefix := subject("w")
	counts := make(fanOutCounts, wildcardConns)
	var subs []*nats.Subscription
	for i := range wildcardConns {
		sc, err := nats.Connect(url)
		if err != nil {
			return result{}, err
		}
		defer sc.Close()
		for g := range wildcardGroups {
			sub, err := natsSubscribe(sc, wildcardPattern(prefix, i, g), &counts[i])
			if err != nil {
				return result{}, err
			}
			subs = append(subs, sub)
		}
		if err := sc.Flush(); err != nil {
			return result{}, err
		}
	}
	subjects := wildcardSubjects(prefix)
	window := int64(natsWindowBytes / wildcardSize)
	body := make([]byte, wildcardSize)
	fo, err := measureFanOut(ctx, counts, server, d, func(stop <-chan struct{}) func() error {
		return natsPublishHeld(stop, counts, window, func(sent int64) error { return pc.Publish(subjects[sent%wildcardGroups], body) })
	})
	if err != nil {
		return result{}, err
	}
	for _, sub := range subs {
		if err := checkDropped(sub); err != nil {
			return result{}, fmt.Errorf("NATS wildcard subscription: %w", err)
		}
	}
	return result{rate: fo.rate, note: fmt.Sprintf("publisher held within %d messages of the slowest connection; %s", window, fo.cpu())}, nil
}
