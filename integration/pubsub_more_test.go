package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
)

// pubsubRole runs the publish/subscribe commands of a client role:
//
//	pub SUBJECT BODY       publish one publication
//	sub PATTERN            subscribe, take one event (its body in Body), report
//	subtry PATTERN         subscribe and report whether it was allowed
//	claim PATTERN MODE     claim a pattern (octal mode)
//	bind PATTERN MAILBOX   bind a pattern to a mailbox
func pubsubRole(ctx context.Context, c *postbox.Client, args []string, out *roleResult) (bool, error) {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	switch args[0] {
	case "pub":
		_, err := c.Publish(ctx, arg(1), []byte(arg(2)))
		return true, err
	case "subtry":
		s, err := c.Subscribe(ctx, arg(1))
		if err == nil {
			s.Close()
		}
		return true, err
	case "claim":
		mode, _ := strconv.ParseUint(arg(2), 8, 32)
		return true, c.Claim(ctx, arg(1), os.FileMode(mode))
	case "bind":
		return true, c.Bind(ctx, arg(1), arg(2))
	}
	return false, nil
}

func TestPubSubClaimsDenyAnotherUID(t *testing.T) {
	needRoot(t)
	b := start(t, nil)
	root := b.Dial(t)
	ctx := ctxT(t)
	if err := root.Claim(ctx, "payroll.>", 0o600); err != nil {
		t.Fatal(err)
	}
	if err := root.Claim(ctx, "news.>", 0o644); err != nil {
		t.Fatal(err)
	}
	wantRoleErr(t, asNobody(t, b.Socket, "pub", "payroll.march", "raise"), "ErrPermission", "publish under a 0600 claim")
	wantRoleErr(t, asNobody(t, b.Socket, "subtry", "payroll.*"), "ErrPermission", "subscribe under a 0600 claim")
	wantRoleErr(t, asNobody(t, b.Socket, "subtry", ">"), "ErrPermission", "a wildcard reaching a 0600 claim")
	wantRoleErr(t, asNobody(t, b.Socket, "subtry", "news.>"), "", "subscribe under a 0644 claim")
	wantRoleErr(t, asNobody(t, b.Socket, "pub", "news.today", "fake"), "ErrPermission", "publish under a 0644 claim")
	wantRoleErr(t, asNobody(t, b.Socket, "pub", "open.subject", "hi"), "", "publish to an unclaimed subject")
	wantRoleErr(t, asNobody(t, b.Socket, "claim", "payroll.mine", "0600"), "ErrPermission", "claim inside another's claim")
	wantRoleErr(t, asNobody(t, b.Socket, "claim", "nobody.>", "0600"), "", "claim a free pattern")
	wantRoleErr(t, asNobody(t, b.Socket, "subtry", "$SYS.>"), "ErrPermission", "subscribe to $SYS")
	mb := create(t, root, "inbox.root", postbox.Mode(0o600))
	_ = mb
	wantRoleErr(t, asNobody(t, b.Socket, "bind", "open.>", "inbox.root"), "ErrPermission", "bind into a 0600 mailbox")

	// Root publishes and subscribes under its claims; nobody's claim is
	// listed with its owner.
	s := subscribe(t, root, "payroll.*")
	publish(t, root, "payroll.march", "ok")
	if ev := next(t, s); string(ev.Body) != "ok" {
		t.Fatal(ev.Body)
	}
	info, err := root.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, cl := range info.Claims {
		if cl.Pattern == "nobody.>" && cl.UID == 65534 && cl.Mode == 0o600 {
			found = true
		}
	}
	if !found {
		t.Fatalf("claims: %+v", info.Claims)
	}
}

func TestPubSubDurableBindingSurvivesARestart(t *testing.T) {
	cfg := durableConfig(t.TempDir())
	b := start(t, cfg)
	c := b.Dial(t)
	create(t, c, "archive", postbox.Durable())
	create(t, c, "scratch") // not durable: its binding goes with it
	ctx := ctxT(t)
	if err := c.Bind(ctx, "orders.>", "archive"); err != nil {
		t.Fatal(err)
	}
	if err := c.Bind(ctx, "orders.>", "scratch"); err != nil {
		t.Fatal(err)
	}
	if err := c.Claim(ctx, "orders.secret", 0o600); err != nil {
		t.Fatal(err)
	}
	if n := publish(t, c, "orders.eu.1", "before", postbox.Type(7), postbox.WithHeader("id", "1")); n != 2 {
		t.Fatalf("matched %d, want 2 bindings", n)
	}
	b = restart(t, b, cfg)
	c = b.Dial(t)
	if n := publish(t, c, "orders.eu.2", "after"); n != 1 {
		t.Fatalf("after the restart matched %d, want 1 (the durable mailbox's binding)", n)
	}
	publish(t, c, "invoices.x", "not bound")
	mb := c.Mailbox("archive")
	m := recv(t, mb)
	if string(m.Body) != "before" || m.Type != 7 || m.Header().Get("id") != "1" {
		t.Fatalf("first: %q type %d headers %v", m.Body, m.Type, m.Header())
	}
	ack(t, m)
	m = recv(t, mb)
	if string(m.Body) != "after" || m.Sender.Endpoint != c.Identity().Endpoint {
		t.Fatalf("second: %q from %+v", m.Body, m.Sender)
	}
	ack(t, m)
	if _, err := mb.Receive(ctxT(t), postbox.NoWait()); !errors.Is(err, postbox.ErrEmpty) {
		t.Fatalf("a third message: %v", err)
	}
	info, err := c.Topics(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Bindings) != 1 || info.Bindings[0] != (postbox.Binding{Pattern: "orders.>", Mailbox: "archive"}) {
		t.Fatalf("bindings after the restart: %+v", info.Bindings)
	}
	if len(info.Claims) != 1 || info.Claims[0].Pattern != "orders.secret" {
		t.Fatalf("claims after the restart: %+v", info.Claims)
	}
	// Destroying the mailbox drops its binding, durably.
	if err := mb.Destroy(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	b = restart(t, b, cfg)
	c = b.Dial(t)
	if n := publish(t, c, "orders.eu.3", "gone"); n != 0 {
		t.Fatalf("the destroyed mailbox's binding still matched: %d", n)
	}
}

func TestPubSubBindingFollowsTheMailboxRules(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "small", postbox.Capacity(2))
	if err := c.Bind(ctxT(t), "m.*", "small"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		publish(t, c, "m.x", strconv.Itoa(i))
	}
	info := waitStat(t, mb, "", func(i postbox.Info) bool { return i.Dropped == 3 })
	if info.Depth != 2 {
		t.Fatalf("depth %d dropped %d, want 2 queued and 3 dropped", info.Depth, info.Dropped)
	}
	if err := c.Unbind(ctxT(t), "m.*", "small"); err != nil {
		t.Fatal(err)
	}
	if n := publish(t, c, "m.x", "after unbind"); n != 0 {
		t.Fatalf("matched %d after unbind", n)
	}
}

func TestPubSubSysEventsForOperators(t *testing.T) {
	b := start(t, limits(func(c *broker.Config) { c.MaxMailboxes = 1 }))
	root := b.Dial(t)
	sys := subscribe(t, root, "$SYS.>")
	all := subscribe(t, root, ">")
	other := b.Dial(t)
	create(t, other, "watched")
	if _, err := other.Create(ctxT(t), "one-too-many"); !errors.Is(err, postbox.ErrLimit) {
		t.Fatalf("second mailbox: %v, want ErrLimit", err)
	}
	if err := other.Mailbox("watched").Destroy(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ep := other.Identity().Endpoint
	other.Close()
	want := []string{"$SYS.conn.opened", "$SYS.mailbox.created", "$SYS.limit.reached", "$SYS.mailbox.destroyed", "$SYS.conn.closed"}
	for _, subj := range want {
		var ev *postbox.Event
		for {
			ev = next(t, sys)
			var f map[string]any
			d := json.NewDecoder(bytes.NewReader(ev.Body))
			d.UseNumber() // endpoint ids need all 64 bits
			if err := d.Decode(&f); err != nil {
				t.Fatalf("%s body %q: %v", ev.Subject, ev.Body, err)
			}
			// Only the other client's events, not those of root's own
			// connection or of the test harness.
			if e, ok := f["endpoint"].(json.Number); ok && e.String() != strconv.FormatUint(ep, 10) {
				continue
			}
			break
		}
		if ev.Subject != subj || ev.ContentType() != "application/json" || ev.Sender.PID != int32(os.Getpid()) {
			t.Fatalf("event %q (%s, pid %d), want %q", ev.Subject, ev.ContentType(), ev.Sender.PID, subj)
		}
	}
	// A ">" subscription never sees $SYS.
	ctx, cancel := context.WithTimeout(ctxT(t), 50*time.Millisecond)
	defer cancel()
	if ev, err := all.Next(ctx); err == nil {
		t.Fatalf("'>' got %q", ev.Subject)
	}
}
