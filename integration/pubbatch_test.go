package integration_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/wire"
)

// Batched PUBLISH through the real broker: PublishBatch and the pipelined
// TopicPublisher fan out in order, a batch waits part way for a full
// PolicyBlock subscriber (and says how far it got when its time is up),
// filters apply per item, and malformed or partly invalid batches are
// refused with the published prefix counted, other clients unaffected.

func numbered(n int, prefix string) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func TestPubBatchFansOutInOrder(t *testing.T) {
	b := start(t, nil)
	pub := b.Dial(t)
	var subs []*postbox.Subscription
	var clients []*postbox.Client
	for _, pat := range []string{"batch.a", "batch.*", ">"} {
		c := b.Dial(t)
		clients = append(clients, c)
		subs = append(subs, subscribe(t, c, pat, postbox.Buffer(8192)))
	}
	const n = 2500 // three frames of at most wire.MaxBatch
	matched, err := pub.PublishBatch(ctxT(t), "batch.a", numbered(n, ""), postbox.Type(4), postbox.WithHeader("k", "v"))
	if err != nil || matched != 3*n {
		t.Fatalf("PublishBatch: matched %d, %v; want %d", matched, err, 3*n)
	}
	// The pipelined publisher, after it, on the same connection.
	tp := pub.Publisher("batch.a", 256)
	for i := range n {
		if err := tp.Publish(ctxT(t), []byte(fmt.Sprintf("p%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := tp.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if tp.Matched() != 3*n || tp.Sent() != n {
		t.Fatalf("publisher: sent %d matched %d, want %d and %d", tp.Sent(), tp.Matched(), n, 3*n)
	}
	if tp.Frames() >= tp.Sent() {
		t.Fatalf("publisher: %d frames for %d publications: nothing was batched", tp.Frames(), tp.Sent())
	}
	for si, s := range subs {
		for i := range 2 * n {
			want := fmt.Sprint(i)
			if i >= n {
				want = fmt.Sprintf("p%d", i-n)
			}
			ev := next(t, s)
			if string(ev.Body) != want || ev.Type != 4 && i < n || ev.Missed != 0 {
				t.Fatalf("subscriber %d event %d: %q type %d missed %d, want %q", si, i, ev.Body, ev.Type, ev.Missed, want)
			}
			if i < n && ev.Header().Get("k") != "v" {
				t.Fatalf("subscriber %d event %d: headers %v", si, i, ev.Header())
			}
		}
		nothingMore(t, clients[si], s)
	}
}

func TestPubBatchBlockWaitsPartway(t *testing.T) {
	b := start(t, nil)
	pub := b.Dial(t)
	sc := b.Dial(t)
	s := subscribe(t, sc, "m", postbox.Buffer(3), postbox.WithPolicy(postbox.PolicyBlock))
	// Items 0-2 fit, 3-9 wait for room: the batch returns once the
	// subscriber has taken enough.
	done := make(chan error, 1)
	go func() {
		n, err := pub.PublishBatch(ctxT(t), "m", numbered(10, ""))
		if err == nil && n != 10 {
			err = fmt.Errorf("matched %d, want 10", n)
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the batch returned %v before the subscriber had room", err)
	case <-time.After(50 * time.Millisecond):
	}
	for i := range 10 {
		if ev := next(t, s); string(ev.Body) != fmt.Sprint(i) || ev.Missed != 0 {
			t.Fatalf("event %d: %q (missed %d)", i, ev.Body, ev.Missed)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("waiting batch: %v", err)
	}
	nothingMore(t, sc, s)

	// With a deadline: 0-2 fit, 3 and 4 wait and are withdrawn at the
	// deadline; DONE says 3.
	ctx, cancel := context.WithTimeout(ctxT(t), 200*time.Millisecond)
	_, err := pub.PublishBatch(ctx, "m", numbered(5, "t"))
	cancel()
	var be *postbox.BatchError
	if !errors.Is(err, postbox.ErrTimeout) || !errors.As(err, &be) || be.Done != 3 {
		t.Fatalf("batch past a full block subscriber: %v, want ErrTimeout with Done 3", err)
	}
	for i := range 3 {
		if ev := next(t, s); string(ev.Body) != fmt.Sprintf("t%d", i) {
			t.Fatalf("event %d: %q", i, ev.Body)
		}
	}
	nothingMore(t, sc, s)

	// Timeout 0 never waits: FULL at the first item that would, and no
	// item after it is published.
	publish(t, pub, "m", "f0")
	publish(t, pub, "m", "f1")
	publish(t, pub, "m", "f2")
	raw := dialRaw(t, b.Socket)
	batch := wire.PublishBatch{Timeout: 0, Items: []wire.PublishItem{{Subject: []byte("m"), Type: 1, Body: []byte("x")}}}
	hd, p := raw.roundTrip(t, wire.OpPublish, wire.FlagPublishBatch, batch.Append(nil))
	if hd.Status != wire.CodeFull {
		t.Fatalf("timeout-0 batch to a full subscriber: %s %q, want FULL", hd.Status, errText(p))
	}
	if _, d := wire.DecodeError(p); d != 0 {
		t.Fatalf("DONE %d, want 0", d)
	}
}

func TestPubBatchFiltersApplyPerItem(t *testing.T) {
	b := start(t, nil)
	pub := b.Dial(t)
	sc := b.Dial(t)
	s := subscribe(t, sc, "sensor.>", postbox.FilterType(2, 5), postbox.FilterHeader("region", "eu"))
	if n, err := pub.PublishBatch(ctxT(t), "sensor.t", numbered(20, "a"), postbox.Type(1), postbox.WithHeader("region", "eu")); err != nil || n != 0 {
		t.Fatalf("type 1: matched %d, %v; want 0", n, err)
	}
	if n, err := pub.PublishBatch(ctxT(t), "sensor.t", numbered(20, "b"), postbox.Type(3), postbox.WithHeader("region", "us")); err != nil || n != 0 {
		t.Fatalf("region us: matched %d, %v; want 0", n, err)
	}
	if n, err := pub.PublishBatch(ctxT(t), "sensor.t", numbered(20, "c"), postbox.Type(3), postbox.WithHeader("region", "eu")); err != nil || n != 20 {
		t.Fatalf("wanted ones: matched %d, %v; want 20", n, err)
	}
	for i := range 20 {
		if ev := next(t, s); string(ev.Body) != fmt.Sprintf("c%d", i) {
			t.Fatalf("event %d: %q: a filtered-out item arrived", i, ev.Body)
		}
	}
	nothingMore(t, sc, s)
}

func TestPubBatchBadInputIsRefusedWithThePrefixCounted(t *testing.T) {
	b := start(t, nil)
	sc := b.Dial(t)
	s := subscribe(t, sc, ">")
	raw := dialRaw(t, b.Socket)
	item := func(subject, body string) wire.PublishItem {
		return wire.PublishItem{Subject: []byte(subject), Type: 1, Body: []byte(body)}
	}

	// Malformed: a count of 0, a count past the items, a truncated item.
	good := wire.PublishBatch{Timeout: -1, Items: []wire.PublishItem{item("a", "1"), item("a", "2")}}
	enc := good.Append(nil)
	for name, payload := range map[string][]byte{
		"count 0":        wire.AppendU16(wire.AppendI64(nil, -1), 0),
		"count too high": append(wire.AppendU16(wire.AppendI64(nil, -1), 3), enc[10:]...),
		"truncated":      enc[:len(enc)-1],
		"count past max": append(wire.AppendU16(wire.AppendI64(nil, -1), wire.MaxBatch+1), make([]byte, 20*(wire.MaxBatch+1))...),
	} {
		hd, p := raw.roundTrip(t, wire.OpPublish, wire.FlagPublishBatch, payload)
		if hd.Status != wire.CodeMalformed {
			t.Fatalf("%s: %s %q, want MALFORMED", name, hd.Status, errText(p))
		}
	}
	// An empty subject first: nothing is published.
	empty := wire.PublishBatch{Timeout: -1, Items: []wire.PublishItem{item("", "x"), item("a", "y")}}
	if hd, p := raw.roundTrip(t, wire.OpPublish, wire.FlagPublishBatch, empty.Append(nil)); hd.Status != wire.CodeInvalid {
		t.Fatalf("an empty subject: %s %q, want INVALID", hd.Status, errText(p))
	} else if _, done := wire.DecodeError(p); done != 0 {
		t.Fatalf("an empty subject: DONE %d, want 0", done)
	}
	nothingMore(t, sc, s)
	// An invalid item: the ones before it are published, DONE says how
	// many, none after it is.
	bad := map[string]struct {
		it   wire.PublishItem
		code wire.Code
		text string
	}{
		"bad subject": {item("a..b", "x"), wire.CodeInvalid, "item 3 of 4"},
		"sys subject": {item("$SYS.x", "x"), wire.CodePermission, "$SYS"},
		"type 0":      {wire.PublishItem{Subject: []byte("a"), Type: 0}, wire.CodeInvalid, "type must be at least 1"},
	}
	for name, c := range bad {
		batch := wire.PublishBatch{Timeout: -1, Items: []wire.PublishItem{item("a", name+"0"), item("a", name+"1"), c.it, item("a", "after")}}
		hd, p := raw.roundTrip(t, wire.OpPublish, wire.FlagPublishBatch, batch.Append(nil))
		msg, done := wire.DecodeError(p)
		if hd.Status != c.code || done != 2 || !strings.Contains(msg, c.text) {
			t.Fatalf("%s: %s DONE %d %q; want %s DONE 2 mentioning %q", name, hd.Status, done, msg, c.code, c.text)
		}
		for i := range 2 {
			if ev := next(t, s); string(ev.Body) != fmt.Sprintf("%s%d", name, i) {
				t.Fatalf("%s: event %d: %q", name, i, ev.Body)
			}
		}
		nothingMore(t, sc, s)
	}
	// The raw connection and the other clients go on.
	raw.ping(t)
	other := b.Dial(t)
	publish(t, other, "a", "still fine")
	if ev := next(t, s); string(ev.Body) != "still fine" {
		t.Fatalf("after the bad batches: %q", ev.Body)
	}
	// The client refuses what it can tell is wrong.
	if _, err := other.PublishBatch(ctxT(t), "a", numbered(2, ""), postbox.Type(0)); !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("type 0: %v, want ErrInvalid", err)
	}
	if err := other.Publisher("a", 8, postbox.Type(0)).Publish(ctxT(t), nil); !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("publisher type 0: %v, want ErrInvalid", err)
	}
	// A publisher to an invalid subject fails at its first reply.
	tp := other.Publisher("a..b", 8)
	_ = tp.Publish(ctxT(t), []byte("x"))
	if err := tp.Close(ctxT(t)); !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("publisher to an invalid subject: %v, want ErrInvalid", err)
	}
}

func TestPubBatchWaitingEndsOnCancelAndOnDisconnect(t *testing.T) {
	b := start(t, nil)
	sc := b.Dial(t)
	s := subscribe(t, sc, "m", postbox.Buffer(2), postbox.WithPolicy(postbox.PolicyBlock))
	pub := b.Dial(t)
	// Cancelled while items 2-4 wait: CANCELED (or the deadline's
	// TIMEOUT), DONE 2.
	ctx, cancel := context.WithCancel(ctxT(t))
	done := make(chan error, 1)
	go func() { _, err := pub.PublishBatch(ctx, "m", numbered(5, "c")); done <- err }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	err := <-done
	var be *postbox.BatchError
	if !errors.As(err, &be) || be.Done != 2 || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled batch: %v, want a BatchError with Done 2 matching context.Canceled", err)
	}
	for i := range 2 {
		if ev := next(t, s); string(ev.Body) != fmt.Sprintf("c%d", i) {
			t.Fatalf("event %d: %q", i, ev.Body)
		}
	}
	nothingMore(t, sc, s)
	// A publisher that goes away while its batch waits: the rest is
	// withdrawn, the subscriber and other publishers go on.
	gone := b.Dial(t)
	go gone.PublishBatch(context.Background(), "m", numbered(5, "g"))
	for range 2 {
		next(t, s) // g0, g1 (placed before the wait)
	}
	gone.Close()
	// Another publisher goes on. It may itself wait for room (g2, g3 may
	// have been placed before the close and fill the buffer), so the
	// subscriber reads while it publishes.
	other := b.Dial(t)
	otherDone := make(chan error, 1)
	go func() {
		n, err := other.PublishBatch(ctxT(t), "m", numbered(2, "o"))
		if err == nil && n != 2 {
			err = fmt.Errorf("matched %d, want 2", n)
		}
		otherDone <- err
	}()
	// Whatever of g2-g4 was placed before the close comes first; then o0, o1.
	var rest []string
	for len(rest) == 0 || rest[len(rest)-1] != "o1" {
		rest = append(rest, string(next(t, s).Body))
	}
	if err := <-otherDone; err != nil {
		t.Fatalf("after the publisher left: %v", err)
	}
	if len(rest) < 2 || rest[len(rest)-2] != "o0" {
		t.Fatalf("after the publisher left: %q", rest)
	}
}

// TestTopicPublisherPublishToManySubjects: one TopicPublisher pipelines
// publications to many subjects (PublishTo) beside its own (Publish);
// each subscriber sees what its pattern matches, in the order made, with
// each event's own subject; an invalid subject, then a $SYS one, fails
// the publisher with the error the broker gives.
func TestTopicPublisherPublishToManySubjects(t *testing.T) {
	b := start(t, nil)
	pub := b.Dial(t)
	all, onlyB := b.Dial(t), b.Dial(t)
	sAll := subscribe(t, all, "multi.*", postbox.Buffer(8192))
	sB := subscribe(t, onlyB, "multi.b", postbox.Buffer(8192))
	tp := pub.Publisher("multi.own", 64, postbox.Type(3))
	const n = 3000
	subjects := []string{"multi.a", "multi.b", "multi.c"}
	for i := range n {
		var err error
		if i%4 == 3 {
			err = tp.Publish(ctxT(t), []byte(fmt.Sprint(i)))
		} else {
			err = tp.PublishTo(ctxT(t), subjects[i%4], []byte(fmt.Sprint(i)))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tp.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// multi.* takes all n; multi.b those with i%4 == 1.
	if want := uint64(n + n/4); tp.Matched() != want || tp.Frames() >= tp.Sent() {
		t.Fatalf("matched %d (want %d), %d frames for %d publications", tp.Matched(), want, tp.Frames(), tp.Sent())
	}
	for i := range n {
		want := "multi.own"
		if i%4 != 3 {
			want = subjects[i%4]
		}
		if ev := next(t, sAll); ev.Subject != want || string(ev.Body) != fmt.Sprint(i) || ev.Type != 3 {
			t.Fatalf("multi.* event %d: %s %q type %d, want %s %d type 3", i, ev.Subject, ev.Body, ev.Type, want, i)
		}
		if i%4 == 1 {
			if ev := next(t, sB); ev.Subject != "multi.b" || string(ev.Body) != fmt.Sprint(i) {
				t.Fatalf("multi.b event: %s %q, want multi.b %d", ev.Subject, ev.Body, i)
			}
		}
	}
	nothingMore(t, all, sAll)
	nothingMore(t, onlyB, sB)

	for _, c := range []struct {
		subject string
		want    error
	}{{"multi..x", postbox.ErrInvalid}, {"$SYS.x", postbox.ErrPermission}} {
		tp := pub.Publisher("multi.own", 8)
		_ = tp.PublishTo(ctxT(t), c.subject, []byte("x"))
		if err := tp.Close(ctxT(t)); !errors.Is(err, c.want) {
			t.Fatalf("PublishTo %q: %v, want %v", c.subject, err, c.want)
		}
		if err := tp.PublishTo(ctxT(t), "multi.a", []byte("after")); !errors.Is(err, c.want) {
			t.Fatalf("PublishTo after the failure: %v, want the failure", err)
		}
	}
	nothingMore(t, all, sAll)
}
