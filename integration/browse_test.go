package integration_test

import (
	"context"
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
)

// BROWSE and recv --peek: reading without taking, never a delivery.

func bodies(msgs []*postbox.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, string(m.Body))
	}
	return out
}

func runPostbox(t *testing.T, socket string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli(t), append(args, "--socket", socket)...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("postbox %q still running after %v\n%s", args, hangGuard, out)
	}
	return testbroker.ExitCode(err), string(out)
}

func TestPeekTwiceOnMaxDeliveriesTwoLeavesTheMessageQueued(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	dlq := create(t, c, "jobs.dead")
	create(t, c, "jobs", postbox.MaxDeliveries(2), postbox.DeadLetter("jobs.dead"))
	send(t, c.Mailbox("jobs"), "only")
	for i := range 3 {
		code, out := runPostbox(t, b.Socket, "recv", "jobs", "--peek", "-o", "json")
		if code != 0 || !strings.Contains(out, `"body":"only"`) || !strings.Contains(out, `"redeliveries":0`) {
			t.Fatalf("peek %d: exit %d, output %q", i+1, code, out)
		}
	}
	info, err := c.Mailbox("jobs").Stat(ctxT(t))
	if err != nil || info.Depth != 1 || info.InFlight != 0 {
		t.Fatalf("after three peeks: %+v, %v; want the message still queued", info, err)
	}
	if d, err := dlq.Stat(ctxT(t)); err != nil || d.Depth != 0 {
		t.Fatalf("dead-letter mailbox after peeks: %+v, %v; want empty", d, err)
	}
	m := recv(t, c.Mailbox("jobs"))
	if m.Redeliveries != 0 || string(m.Body) != "only" {
		t.Fatalf("first receive after peeks: %q redeliveries %d, want 0", m.Body, m.Redeliveries)
	}
	ack(t, m)
}

func TestBrowseOrderPriorityTypeAndPages(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "q")
	for _, s := range []struct {
		body string
		typ  int64
		prio uint8
	}{{"a", 3, 0}, {"b", 1, 5}, {"c", 2, 0}, {"d", 1, 0}, {"e", 5, 9}, {"f", 2, 5}, {"g", 3, 9}} {
		send(t, mb, s.body, postbox.Type(s.typ), postbox.Priority(s.prio))
	}
	for _, tc := range []struct {
		typ  int64
		want []string
	}{
		{0, []string{"e", "g", "b", "f", "a", "c", "d"}},
		{2, []string{"f", "c"}},
		{-3, []string{"b", "d", "f", "c", "g", "a"}},
	} {
		var got []string
		cursor, pages := "", 0
		for {
			page, next, err := mb.Browse(ctxT(t), cursor, 2, postbox.Type(tc.typ))
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 2 {
				t.Fatalf("type %d: page of %d, limit 2", tc.typ, len(page))
			}
			for _, m := range page {
				if m.Lease() != 0 {
					t.Fatalf("browsed message %q has lease %d", m.Body, m.Lease())
				}
			}
			got, pages = append(got, bodies(page)...), pages+1
			if next == "" {
				break
			}
			cursor = next
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("type %d: browse %v, want %v", tc.typ, got, tc.want)
		}
		if wantPages := (len(tc.want) + 1) / 2; pages != wantPages {
			t.Errorf("type %d: %d pages, want %d", tc.typ, pages, wantPages)
		}
		var peeked []string
		for m, err := range mb.Peek(ctxT(t), postbox.Type(tc.typ)) {
			if err != nil {
				t.Fatal(err)
			}
			peeked = append(peeked, string(m.Body))
		}
		if !slices.Equal(peeked, tc.want) {
			t.Errorf("type %d: Peek %v, want %v", tc.typ, peeked, tc.want)
		}
	}
	// A leased message is not listed; Ack of a browsed one is ErrNotLeased.
	m := recv(t, mb)
	page, _, err := mb.Browse(ctxT(t), "", 0)
	if err != nil || slices.Contains(bodies(page), string(m.Body)) || len(page) != 6 {
		t.Fatalf("browse with %q in flight: %v, %v", m.Body, bodies(page), err)
	}
	if err := page[0].Ack(ctxT(t)); !errors.Is(err, postbox.ErrNotLeased) {
		t.Fatalf("Ack of a browsed message: %v, want ErrNotLeased", err)
	}
	if err := page[0].Nack(ctxT(t)); !errors.Is(err, postbox.ErrNotLeased) {
		t.Fatalf("Nack of a browsed message: %v, want ErrNotLeased", err)
	}
	ack(t, m)
	// The CLI lists --count messages in the same order.
	code, out := runPostbox(t, b.Socket, "recv", "q", "--peek", "--count", "4")
	if code != 0 || out != "g\nb\nf\na\n" {
		t.Fatalf("recv --peek --count 4: exit %d, output %q", code, out)
	}
	info, _ := mb.Stat(ctxT(t))
	if info.Depth != 6 || info.Redelivered != 0 {
		t.Fatalf("after browsing: %+v", info)
	}
}

func TestBrowseDeniedWithoutReadPermission(t *testing.T) {
	needRoot(t)
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "secret", postbox.Mode(0o622)) // others may send, not read
	send(t, mb, "x")
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli(t), "recv", "secret", "--peek", "--socket", b.Socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if code := testbroker.ExitCode(err); code != 77 || !strings.Contains(string(out), "permission denied") {
		t.Fatalf("peek as uid 65534: exit %d, output %q; want 77 (permission denied), permission denied", code, out)
	}
	// Another endpoint's inbox is browsed by nobody but its endpoint.
	other := b.Dial(t)
	send(t, other.Inbox(), "private")
	if _, _, err := c.Mailbox(other.Inbox().Name()).Browse(ctxT(t), "", 0); !errors.Is(err, postbox.ErrPermission) {
		t.Fatalf("browse of another endpoint's inbox: %v, want ErrPermission", err)
	}
	if page, _, err := other.Inbox().Browse(ctxT(t), "", 0); err != nil || len(page) != 1 {
		t.Fatalf("browse of one's own inbox: %d, %v", len(page), err)
	}
	if info, _ := mb.Stat(ctxT(t)); info.Depth != 1 {
		t.Fatalf("after the denied peek: depth %d", info.Depth)
	}
}

// recv --follow | head -3 ends with head, and leaves the next message
// alone.
func TestRecvFollowEndsWhenItsOutputCloses(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "q")
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	sh := exec.CommandContext(ctx, "/bin/sh", "-c", `"$0" recv q --follow --socket "$1" | head -3`, cli(t), b.Socket)
	var out strings.Builder
	sh.Stdout, sh.Stderr = &out, &out
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	// recv --follow is a consumer (a prefetching stream), counted apart
	// from one-shot receivers.
	waitStat(t, mb, "recv --follow waiting", func(i postbox.Info) bool { return i.Receivers+i.Consumers == 1 })
	for i := range 3 {
		send(t, mb, fmt.Sprint("m", i))
	}
	done := make(chan error, 1)
	go func() { done <- sh.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("pipeline: %v\n%s", err, out.String())
		}
	case <-time.After(hangGuard):
		t.Fatalf("recv --follow | head -3 still running %v after head's third line\n%s", hangGuard, out.String())
	}
	if out.String() != "m0\nm1\nm2\n" {
		t.Fatalf("pipeline output %q", out.String())
	}
	// sh waited for both; recv is gone, and took nothing with it.
	send(t, mb, "m3")
	info := waitStat(t, mb, "the fourth message queued", func(i postbox.Info) bool { return i.Depth == 1 })
	if info.InFlight != 0 || info.Receivers != 0 || info.Consumers != 0 {
		t.Fatalf("after the pipeline: %+v", info)
	}
	m := recv(t, mb)
	if string(m.Body) != "m3" || m.Redeliveries != 0 {
		t.Fatalf("fourth message %q redeliveries %d, want m3 and 0", m.Body, m.Redeliveries)
	}
	ack(t, m)
}

func TestBrowsePageEndsEarlyWithinTheMaxFrame(t *testing.T) {
	b := start(t, limits(func(c *broker.Config) { c.MaxMessage, c.MaxFrame = 8<<10, 10<<10 }))
	c := b.Dial(t)
	mb := create(t, c, "big")
	body := strings.Repeat("x", 4<<10)
	for i := range 5 {
		send(t, mb, fmt.Sprint(i)+body[1:])
	}
	var sizes []int
	cursor, n := "", 0
	for {
		page, next, err := mb.Browse(ctxT(t), cursor, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			t.Fatalf("empty page with next %q", next)
		}
		for _, m := range page {
			if m.Body[0] != byte('0'+n) {
				t.Fatalf("message %d out of order: %q...", n, m.Body[:1])
			}
			n++
		}
		sizes = append(sizes, len(page))
		if next == "" {
			break
		}
		cursor = next
	}
	if n != 5 || !slices.Equal(sizes, []int{2, 2, 1}) {
		t.Fatalf("pages %v (%d messages), want [2 2 1] within a 10 KiB frame", sizes, n)
	}
}

func TestBrowseWithholdsAChannelOfferToken(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "offers")
	files, _, err := c.OfferChannel(ctxT(t), "offers", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	page, _, err := mb.Browse(ctxT(t), "", 0)
	if err != nil || len(page) != 1 {
		t.Fatalf("browse: %d, %v", len(page), err)
	}
	if !page[0].IsChannelOffer() || len(page[0].Body) != 0 {
		t.Fatalf("browsed offer: channel offer %v, body of %d bytes; want the flag and no token", page[0].IsChannelOffer(), len(page[0].Body))
	}
	if _, err := c.AttachChannel(ctxT(t), page[0]); !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("attach with a browsed offer: %v, want ErrInvalid", err)
	}
	m := recv(t, mb) // the receiver still gets the token
	if len(m.Body) != 16 {
		t.Fatalf("received offer body of %d bytes", len(m.Body))
	}
	theirs, err := c.AttachChannel(ctxT(t), m)
	if err != nil {
		t.Fatal(err)
	}
	theirs.Close()
	ack(t, m)
}
