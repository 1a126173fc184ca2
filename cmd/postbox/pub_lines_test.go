package main

// pub --lines through the real CLI and broker: every line published in
// order, batched; and on a full block subscriber with --timeout, the
// exact published prefix in the error, and no line after it delivered.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

func TestCLIPubLinesPublishesEveryLineInOrder(t *testing.T) {
	p := startBroker(t)
	c := p.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	s, err := c.Subscribe(ctx, "logs.*", postbox.Buffer(8192))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ok(t, p, numbered(1, 5000, 16)+"last", "pub", "logs.app", "--lines", "--type", "7")
	want := strings.Split(numbered(1, 5000, 16)+"last", "\n")
	for i, w := range want {
		ev, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if string(ev.Body) != w || ev.Type != 7 || ev.Subject != "logs.app" {
			t.Fatalf("event %d: %q type %d on %q, want %q", i, ev.Body, ev.Type, ev.Subject, w)
		}
	}
}

func TestCLIPubLinesOnAFullBlockSubscriberReportsThePublishedPrefix(t *testing.T) {
	p := startBroker(t)
	c := p.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	// 1500 does not fall on a frame boundary: the second batch is
	// published in part.
	s, err := c.Subscribe(ctx, "logs.app", postbox.Buffer(1500), postbox.WithPolicy(postbox.PolicyBlock))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := run(t, p, numbered(1, 4000, 8), "pub", "logs.app", "--lines", "--timeout", "200ms")
	if r.code != exitWouldBlock {
		t.Fatalf("pub --lines --timeout to a full block subscriber: exit %d, want %d; stderr %q", r.code, exitWouldBlock, r.stderr)
	}
	if n := admittedOf(t, r.stderr); n != 1500 {
		t.Fatalf("pub says %d lines admitted, want 1500: %q", n, r.stderr)
	}
	for i := range 1500 {
		ev, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if w := fmt.Sprintf("%08d", i+1); string(ev.Body) != w {
			t.Fatalf("event %d: %q, want %q", i, ev.Body, w)
		}
	}
	// Nothing after the prefix: a PING orders after every EVENT queued.
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	if ev, err := s.Next(short); err == nil {
		t.Fatalf("a line after the published prefix arrived: %q", ev.Body)
	}
}
