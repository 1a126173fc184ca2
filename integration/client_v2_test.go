package integration_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/wire"
)

// The client features of protocol v2: headers, batches, lease ranges,
// paged LIST, sessions and principal kinds, against real brokers.

// everyHeader is a send option set with every header field and user
// headers that exercise repeated keys, case-sensitive keys and an empty
// value.
func everyHeader(deadline time.Time) []postbox.SendOption {
	return []postbox.SendOption{
		postbox.ReplyTo("replies.v2"), postbox.CorrelationID([]byte{0, 1, 2, 0xff}),
		postbox.ContentType("application/json; charset=utf-8"), postbox.MessageDeadline(deadline),
		postbox.WithHeader("trace-id", "abc"), postbox.WithHeader("Trace-Id", "ABC"),
		postbox.WithHeader("k", "v1"), postbox.WithHeader("k", "v2"), postbox.WithHeader("empty", ""),
	}
}

func checkEveryHeader(t *testing.T, what string, m *postbox.Message, deadline time.Time) {
	t.Helper()
	want := postbox.Header{"trace-id": {"abc"}, "Trace-Id": {"ABC"}, "k": {"v1", "v2"}, "empty": {""}}
	if m.ReplyTo() != "replies.v2" || !bytes.Equal(m.CorrelationID(), []byte{0, 1, 2, 0xff}) ||
		m.ContentType() != "application/json; charset=utf-8" || !m.Deadline().Equal(deadline) {
		t.Fatalf("%s: headers reply-to %q correlation %x content-type %q deadline %v, want deadline %v", what,
			m.ReplyTo(), m.CorrelationID(), m.ContentType(), m.Deadline(), deadline)
	}
	h := m.Header()
	if len(h) != len(want) {
		t.Fatalf("%s: user headers %v, want %v", what, h, want)
	}
	for k, v := range want {
		if !slices.Equal(h.Values(k), v) {
			t.Fatalf("%s: header %q = %q, want %q (all: %v)", what, k, h.Values(k), v, h)
		}
	}
	if h.Get("k") != "v1" || h.Get("K") != "" {
		t.Fatalf("%s: Get is case-sensitive and returns the first value: k=%q K=%q", what, h.Get("k"), h.Get("K"))
	}
}

func TestHeadersTravelWithTheMessageByEveryPath(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "hdr")
	deadline := time.Unix(1_900_000_000, 123456789)
	opts := everyHeader(deadline)

	send(t, mb, "one", opts...)
	checkEveryHeader(t, "Receive", recv(t, mb), deadline)

	if _, err := mb.SendBatch(ctxT(t), []postbox.Outgoing{{Body: []byte("batch")}}, opts...); err != nil {
		t.Fatal(err)
	}
	cons, err := c.Mailbox("hdr").Consume(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctxT(t))
	m, err := cons.Next(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	checkEveryHeader(t, "SendBatch then Consume", m, deadline)

	pub := mb.Publisher(8, postbox.ContentType("text/plain"), postbox.WithHeader("via", "publisher"))
	if err := pub.Send(ctxT(t), []byte("pub")); err != nil {
		t.Fatal(err)
	}
	if err := pub.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if m, err = cons.Next(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if m.ContentType() != "text/plain" || m.Header().Get("via") != "publisher" || m.ReplyTo() != "" || m.CorrelationID() != nil {
		t.Fatalf("publisher's message: content-type %q headers %v reply-to %q", m.ContentType(), m.Header(), m.ReplyTo())
	}

	// A message without headers has none.
	send(t, mb, "plain")
	if m, err = cons.Next(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if m.Header() != nil || m.ReplyTo() != "" || !m.Deadline().IsZero() || m.ContentType() != "" || m.CorrelationID() != nil {
		t.Fatalf("plain message has headers: %v %q", m.Header(), m.ReplyTo())
	}
}

// TestDurableHeadersSurviveBrokerRestart: the broker stores the headers
// block with the message, so a separate broker process stopped and started
// again on the same data directory delivers them unchanged.
func TestDurableHeadersSurviveBrokerRestart(t *testing.T) {
	bin := cli(t)
	dir := t.TempDir()
	p := testbroker.StartProcess(t, bin, "--data", dir)
	mb := create(t, p.Dial(t), "hdr.durable", postbox.Durable())
	deadline := time.Unix(1_900_000_000, 5)
	send(t, mb, "kept", everyHeader(deadline)...)
	p.Signal(syscall.SIGTERM)
	if err := p.Wait(); err != nil {
		t.Fatalf("broker exit: %v\n%s", err, p.Log())
	}
	p = testbroker.StartProcess(t, bin, "--data", dir)
	m := recv(t, p.Dial(t).Mailbox("hdr.durable"))
	if string(m.Body) != "kept" {
		t.Fatalf("after restart: %q", m.Body)
	}
	checkEveryHeader(t, "after restart", m, deadline)
	ack(t, m)
}

// TestHeaderLimitsAreRefusedBeforeSending: each broken rule fails the call
// with ErrInvalid, naming the rule, and nothing reaches the mailbox.
func TestHeaderLimitsAreRefusedBeforeSending(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "limits")
	many := make([]postbox.SendOption, 0, wire.MaxHeaderEntries+1)
	for i := range wire.MaxHeaderEntries + 1 {
		many = append(many, postbox.WithHeader(fmt.Sprintf("k%d", i), "v"))
	}
	big := make([]postbox.SendOption, 0, 5)
	for i := range 5 {
		big = append(big, postbox.WithHeader(fmt.Sprintf("k%d", i), strings.Repeat("x", wire.MaxHeaderUserValue)))
	}
	for _, tc := range []struct {
		what string
		opts []postbox.SendOption
		says string
	}{
		{"reply-to not an address", []postbox.SendOption{postbox.ReplyTo("no spaces")}, "ReplyTo"},
		{"reply-to malformed inbox", []postbox.SendOption{postbox.ReplyTo("@007")}, "ReplyTo"},
		{"reply-to too long", []postbox.SendOption{postbox.ReplyTo(strings.Repeat("a", 256))}, "ReplyTo"},
		{"correlation id empty", []postbox.SendOption{postbox.CorrelationID([]byte{})}, "CorrelationID"},
		{"correlation id too long", []postbox.SendOption{postbox.CorrelationID(make([]byte, 256))}, "CorrelationID"},
		{"content type not printable", []postbox.SendOption{postbox.ContentType("text/\tplain")}, "ContentType"},
		{"user key empty", []postbox.SendOption{postbox.WithHeader("", "v")}, "key"},
		{"user key bad byte", []postbox.SendOption{postbox.WithHeader("a b", "v")}, "key"},
		{"user key too long", []postbox.SendOption{postbox.WithHeader(strings.Repeat("k", 129), "v")}, "key"},
		{"user value too long", []postbox.SendOption{postbox.WithHeader("k", strings.Repeat("v", 4097))}, "value"},
		{"too many entries", many, "entries"},
		{"block too large", big, "bytes"},
	} {
		_, err := mb.Send(ctxT(t), []byte("x"), tc.opts...)
		if !errors.Is(err, postbox.ErrInvalid) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: Send: %v, want ErrInvalid mentioning %q", tc.what, err, tc.says)
		}
		_, err = mb.SendBatch(ctxT(t), postbox.Bodies([]byte("a"), []byte("b")), tc.opts...)
		var be *postbox.BatchError
		if !errors.Is(err, postbox.ErrInvalid) || errors.As(err, &be) {
			t.Errorf("%s: SendBatch: %v, want ErrInvalid before anything was sent (no BatchError)", tc.what, err)
		}
		popts := make([]postbox.PublisherOption, len(tc.opts))
		for i, o := range tc.opts {
			popts[i] = o.(postbox.PublisherOption) // every header option is one
		}
		pub := mb.Publisher(1, popts...)
		if err := pub.Send(ctxT(t), []byte("x")); !errors.Is(err, postbox.ErrInvalid) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: Publisher.Send: %v, want ErrInvalid mentioning %q", tc.what, err, tc.says)
		}
		if err := pub.Close(ctxT(t)); !errors.Is(err, postbox.ErrInvalid) {
			t.Errorf("%s: Publisher.Close: %v, want the same ErrInvalid", tc.what, err)
		}
	}
	if info, err := mb.Stat(ctxT(t)); err != nil || info.Sent != 0 {
		t.Fatalf("after refused sends: %+v %v, want nothing sent", info, err)
	}
}

// TestHeaderLimitsAreRefusedByTheBroker: a client that skips the checks
// (a raw connection) gets INVALID for a block that parses but breaks a
// rule, MALFORMED for one that does not parse; the mailbox is untouched.
func TestHeaderLimitsAreRefusedByTheBroker(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "rawhdr", postbox.Mode(0o666))
	rc := dialRaw(t, b.Socket)
	twice := wire.AppendHeaders(nil, &wire.HeaderFields{ContentType: []byte("a")})
	twice = wire.AppendHeaders(twice, &wire.HeaderFields{ContentType: []byte("b")})
	for _, tc := range []struct {
		what string
		raw  []byte
		want wire.Code
	}{
		{"content type twice", twice, wire.CodeInvalid},
		{"bad user key", wire.AppendHeaders(nil, &wire.HeaderFields{User: []wire.KV{{Key: []byte("a b"), Value: []byte("v")}}}), wire.CodeInvalid},
		{"reply-to not an address", wire.AppendHeaders(nil, &wire.HeaderFields{ReplyTo: []byte("@")}), wire.CodeInvalid},
		{"entry past the end", []byte{4, 0, 9, 0, 'x'}, wire.CodeMalformed},
	} {
		req := wire.Send{Target: []byte("rawhdr"), Timeout: 0, Msgs: []wire.SendMsg{{Type: 1, Headers: tc.raw, Body: []byte("x")}}}
		hd, p := rc.roundTrip(t, wire.OpSend, 0, req.Append(nil))
		if hd.Status != tc.want {
			msg, _ := wire.DecodeError(p)
			t.Errorf("%s: status %s (%q), want %s", tc.what, hd.Status, msg, tc.want)
		}
	}
	if info, err := mb.Stat(ctxT(t)); err != nil || info.Depth != 0 || info.Sent != 0 {
		t.Fatalf("after refused raw sends: %+v %v", info, err)
	}
}

func TestSendBatchQueuesInOrderAcrossFrames(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "batch")
	n := 2*wire.MaxBatch + 17 // three frames
	msgs := make([]postbox.Outgoing, n)
	for i := range msgs {
		msgs[i] = postbox.Outgoing{Body: []byte(fmt.Sprint(i)), Type: int64(1 + i%3)}
	}
	ids, err := mb.SendBatch(ctxT(t), msgs, postbox.Priority(4))
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != n {
		t.Fatalf("%d ids for %d messages", len(ids), n)
	}
	for i := 1; i < n; i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("ids not increasing at %d: %d then %d", i, ids[i-1], ids[i])
		}
	}
	for i := range n {
		m := recv(t, mb, postbox.NoWait())
		if string(m.Body) != fmt.Sprint(i) || m.ID != ids[i] || m.Type != int64(1+i%3) || m.Priority != 4 {
			t.Fatalf("message %d: %q id %d type %d priority %d; want id %d", i, m.Body, m.ID, m.Type, m.Priority, ids[i])
		}
		m.AckNoWait()
	}
}

// TestSendBatchPartialFailureSaysHowManyWereQueued: a batch that meets a
// full mailbox (NoWait) fails with a *BatchError whose Done is the number
// of leading messages queued, matching ErrFull; those stay queued and the
// rest were not, also when the batch spans frames.
func TestSendBatchPartialFailureSaysHowManyWereQueued(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	for _, tc := range []struct{ capacity, n int }{{5, 8}, {wire.MaxBatch + 300, 2*wire.MaxBatch + 5}} {
		name := fmt.Sprintf("partial-%d", tc.capacity)
		mb := create(t, c, name, postbox.Capacity(int64(tc.capacity)))
		msgs := make([]postbox.Outgoing, tc.n)
		for i := range msgs {
			msgs[i].Body = []byte(fmt.Sprint(i))
		}
		ids, err := mb.SendBatch(ctxT(t), msgs, postbox.NoWait())
		var be *postbox.BatchError
		if !errors.As(err, &be) || !errors.Is(err, postbox.ErrFull) || be.Done != tc.capacity {
			t.Fatalf("%s: %v, want a *BatchError with Done %d matching ErrFull", name, err, tc.capacity)
		}
		if len(ids) > be.Done || len(ids) != tc.capacity/wire.MaxBatch*wire.MaxBatch {
			t.Fatalf("%s: %d ids returned, Done %d: want the ids of the frames answered in full", name, len(ids), be.Done)
		}
		info, err := mb.Stat(ctxT(t))
		if err != nil || info.Depth != uint64(tc.capacity) {
			t.Fatalf("%s: depth %d (%v), want %d", name, info.Depth, err, tc.capacity)
		}
		for i := range tc.capacity {
			if m := recv(t, mb, postbox.NoWait()); string(m.Body) != fmt.Sprint(i) {
				t.Fatalf("%s: message %d is %q", name, i, m.Body)
			}
		}
	}
	// Every message is checked before any is sent.
	mb := create(t, c, "checked")
	_, err := mb.SendBatch(ctxT(t), []postbox.Outgoing{{Body: []byte("ok")}, {Body: []byte("bad"), Type: -1}})
	if !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("batch with a bad type: %v, want ErrInvalid", err)
	}
	if info, _ := mb.Stat(ctxT(t)); info.Sent != 0 {
		t.Fatalf("a refused batch queued %d messages", info.Sent)
	}
}

// TestPublisherBatchesQueuedSends: a pipelined Publisher puts the sends
// queued while the writer is busy into shared SEND frames, so it needs
// fewer frames than messages, and every message arrives once, in order.
func TestPublisherBatchesQueuedSends(t *testing.T) {
	b := start(t, nil)
	c, rc := b.Dial(t), b.Dial(t)
	mb := create(t, c, "pub")
	cons, err := rc.Mailbox("pub").Consume(ctxT(t), postbox.Prefetch(4096))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctxT(t))
	const n = 20000
	pub := mb.Publisher(4096, postbox.Type(7))
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if err := pub.Send(ctxT(t), []byte(fmt.Sprint(i))); err != nil {
				done <- err
				return
			}
		}
		done <- pub.Flush(ctxT(t))
	}()
	var last uint64
	for i := range n {
		m, err := cons.Next(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Body) != fmt.Sprint(i) || m.Type != 7 || m.ID <= last {
			t.Fatalf("message %d: %q type %d id %d after %d", i, m.Body, m.Type, m.ID, last)
		}
		last = m.ID
		m.AckNoWait()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sent, frames := pub.Sent(), pub.Frames()
	t.Logf("%d messages in %d SEND frames (%.1f per frame)", sent, frames, float64(sent)/float64(frames))
	if sent != n || frames == 0 || frames >= sent {
		t.Fatalf("%d messages in %d frames: want fewer frames than messages", sent, frames)
	}
	waitStat(t, mb, "all acked", func(i postbox.Info) bool { return i.Received == n && i.InFlight == 0 && i.Depth == 0 })
}

// TestAckNoWaitSettlesEveryLease: fire-and-forget acks gathered into lease
// ranges settle each lease once, including leases out of order and with
// gaps (some messages nacked instead).
func TestAckNoWaitSettlesEveryLease(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "acks")
	const n = 3000
	msgs := make([]postbox.Outgoing, n)
	for i := range msgs {
		msgs[i].Body = []byte{byte(i)}
	}
	if _, err := mb.SendBatch(ctxT(t), msgs); err != nil {
		t.Fatal(err)
	}
	got := make([]*postbox.Message, 0, n)
	for range n {
		got = append(got, recv(t, mb, postbox.NoWait()))
	}
	var nacked int
	for i := len(got) - 1; i >= 0; i-- { // backwards: the ranges are built from unsorted leases
		if i%100 == 50 {
			if err := got[i].Nack(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			nacked++
			continue
		}
		got[i].AckNoWait()
	}
	info := waitStat(t, mb, "acks settled", func(i postbox.Info) bool { return i.Received == uint64(n-nacked) })
	if info.Depth != uint64(nacked) || info.InFlight != 0 {
		t.Fatalf("after %d acks and %d nacks: %+v", n-nacked, nacked, info)
	}
	// An acked lease is gone: acking it again is stale.
	wantErr(t, got[0].Ack(ctxT(t)), postbox.ErrStaleLease, "ack after AckNoWait")
}

// TestListPagesPastOneThousandMailboxes: List gathers every page; ListPage
// and Mailboxes walk the same names in order.
func TestListPagesPastOneThousandMailboxes(t *testing.T) {
	b := start(t, limits(func(c *broker.Config) { c.MaxMailboxes = 5000 }))
	c := b.Dial(t)
	const n = 2100
	for i := range n {
		create(t, c, fmt.Sprintf("list.%05d", i))
	}
	infos, err := c.List(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range infos {
		if strings.HasPrefix(i.Name, "list.") {
			names = append(names, i.Name)
		}
	}
	if len(names) != n || !slices.IsSorted(names) || names[0] != "list.00000" || names[n-1] != fmt.Sprintf("list.%05d", n-1) {
		t.Fatalf("List: %d of %d mailboxes, sorted %v", len(names), n, slices.IsSorted(names))
	}
	page, next, err := c.ListPage(ctxT(t), "list.00999", 1000)
	if err != nil || len(page) != 1000 || page[0].Name != "list.01000" || next == "" {
		t.Fatalf("ListPage after list.00999: %d entries, first %v, next %q, %v", len(page), page[0].Name, next, err)
	}
	count := 0
	for info, err := range c.Mailboxes(ctxT(t)) {
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(info.Name, "list.") {
			count++
		}
	}
	if count != n {
		t.Fatalf("Mailboxes yielded %d, want %d", count, n)
	}
}

// TestSessionAndIdentityFromTheHandshake: every client gets a random
// session unless it resumes one with WithSession; the broker's epoch is
// the high half of every endpoint id; the principal is kind unix.
func TestSessionAndIdentityFromTheHandshake(t *testing.T) {
	b := start(t, nil)
	c1, c2 := b.Dial(t), b.Dial(t)
	if c1.Session().IsZero() || c1.Session() == c2.Session() {
		t.Fatalf("sessions %s and %s: want two random ones", c1.Session(), c2.Session())
	}
	c3, err := postbox.Dial(ctxT(t), postbox.WithSocket(b.Socket), postbox.WithSession(c1.Session()))
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if c3.Session() != c1.Session() {
		t.Fatalf("WithSession(%s): session %s", c1.Session(), c3.Session())
	}
	if s, err := postbox.ParseSession(c1.Session().String()); err != nil || s != c1.Session() {
		t.Fatalf("ParseSession(String()) = %s, %v", s, err)
	}
	for _, c := range []*postbox.Client{c1, c2, c3} {
		id := c.Identity()
		if c.Epoch() == 0 || c.Epoch() != c1.Epoch() || id.Endpoint>>32 != c.Epoch() {
			t.Fatalf("epoch %#x, endpoint %#x: want one non-zero epoch in every endpoint's high half", c.Epoch(), id.Endpoint)
		}
		if id.Kind != postbox.KindUnix || int(id.PID) != syscall.Getpid() || int(id.UID) != syscall.Getuid() {
			t.Fatalf("identity %+v, want kind unix and this process", id)
		}
	}
	mb := create(t, c1, "who")
	send(t, mb, "x")
	if m := recv(t, c2.Mailbox("who")); m.Sender != c1.Identity() || m.Sender.Kind != postbox.KindUnix {
		t.Fatalf("sender %+v, want %+v", m.Sender, c1.Identity())
	}
}

// TestCLIHeadersRoundTrip: `send --header/--reply-to/--correlation-id/
// --content-type` and `recv -o json` carry the headers.
func TestCLIHeadersRoundTrip(t *testing.T) {
	b := start(t, nil)
	create(t, b.Dial(t), "clihdr", postbox.Mode(0o666))
	run := func(args ...string) []byte {
		cmd := exec.Command(cli(t), append(args, "--socket", b.Socket)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("postbox %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	run("send", "clihdr", "body", "--header", "a=1", "--header", "a=2", "--header", "B=x=y",
		"--reply-to", "@12", "--correlation-id", "req-7", "--content-type", "text/plain")
	out := run("recv", "clihdr", "-o", "json")
	var j struct {
		Body          string              `json:"body"`
		ReplyTo       string              `json:"reply_to"`
		CorrelationID string              `json:"correlation_id"`
		ContentType   string              `json:"content_type"`
		Headers       map[string][]string `json:"headers"`
		Sender        struct{ Kind string }
	}
	if err := json.Unmarshal(out, &j); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if j.Body != "body" || j.ReplyTo != "@12" || j.CorrelationID != "req-7" || j.ContentType != "text/plain" ||
		!slices.Equal(j.Headers["a"], []string{"1", "2"}) || !slices.Equal(j.Headers["B"], []string{"x=y"}) || j.Sender.Kind != "unix" {
		t.Fatalf("recv -o json: %s", out)
	}
	cmd := exec.Command(cli(t), "send", "clihdr", "x", "--header", "no-equals", "--socket", b.Socket)
	if out, err := cmd.CombinedOutput(); testbroker.ExitCode(err) != 2 {
		t.Fatalf("--header without '=': exit %d, want 2\n%s", testbroker.ExitCode(err), out)
	}
}
