package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/store"
)

// logBuffer collects a store's log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// testOptions: real files, fsync off unless a test needs it, logs captured.
func testOptions(dir string, logs *logBuffer) store.Options {
	o := store.DefaultOptions(dir)
	o.NoSync = true
	o.SegmentSize = 64 << 10
	if logs == nil {
		logs = new(logBuffer)
	}
	o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return o
}

func mustOpen(t testing.TB, o store.Options) *store.Store {
	t.Helper()
	s, err := store.Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func wait(t testing.TB, tk store.Ticket) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tk.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func msg(mb string, seq uint64, prio uint8, body string) *store.Message {
	return &store.Message{Mailbox: mb, Seq: seq, Priority: prio, Type: int64(seq % 7),
		SenderUID: 1000, SenderGID: 100, SenderPID: 42, SenderEndpoint: 9,
		SentUnixNano: int64(1_000_000 + seq), Body: []byte(body)}
}

func def(name string) store.MailboxDef {
	return store.MailboxDef{Name: name, OwnerUID: 1000, OwnerGID: 100, Mode: 0o660, Capacity: -1, CreatedUnixNano: 7}
}

// seqs lists the seqs of mailbox mb in Recovered order.
func seqs(r *store.Recovered, mb string) []uint64 {
	var out []uint64
	for _, m := range r.Messages[mb] {
		out = append(out, m.Seq)
	}
	return out
}

func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func copyDir(t testing.TB, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func body(seq uint64, n int) string {
	s := fmt.Sprintf("body-%d-", seq)
	for len(s) < n {
		s += "x"
	}
	return s[:max(n, len(fmt.Sprintf("body-%d-", seq)))]
}

func storeOpen(dir string) (*store.Store, error) { return store.Open(testOptions(dir, nil)) }

func isLocked(err error) bool { return errors.Is(err, store.ErrLocked) }
