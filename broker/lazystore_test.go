package broker_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/store"
)

// These tests check that the data directory is opened on first need
// (lazystore.go): real brokers on real sockets, real directories.

func lazyConfig(dir string) *broker.Config {
	cfg := broker.DefaultConfig()
	cfg.DataDir, cfg.NoSync = dir, true
	return &cfg
}

func lazyCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}

// dirNames lists dir, or returns nil if it does not exist.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestDataDirectoryIsNotCreatedUntilADurableMailboxNeedsIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	b := testbroker.Start(t, lazyConfig(dir))
	c := b.Dial(t)
	ctx := lazyCtx(t)
	mb, err := c.Create(ctx, "plain")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Send(ctx, []byte("in memory")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("data directory %s exists before any durable mailbox (%v): %v", dir, err, dirNames(t, dir))
	}
	if b.DataDirOpen() {
		t.Fatal("DataDirOpen before any durable mailbox")
	}
	if _, ok := b.DiskStats(); ok {
		t.Fatal("DiskStats ok before the store is open")
	}

	if _, err := c.Create(ctx, "disk", postbox.Durable()); err != nil {
		t.Fatal(err)
	}
	names := dirNames(t, dir)
	if !slices.Contains(names, "RESERVE") || !slices.Contains(names, "LOCK") ||
		!slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(n, ".wal") }) {
		t.Fatalf("after the first durable create, %s holds %v; want LOCK, RESERVE and a segment", dir, names)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	if !b.DataDirOpen() {
		t.Fatal("DataDirOpen false after a durable create")
	}
}

func TestEmptyDataDirectoryIsLockedAtStartAndFilledOnFirstNeed(t *testing.T) {
	dir := t.TempDir() // exists, empty: systemd's StateDirectory=
	b := testbroker.Start(t, lazyConfig(dir))
	if got := dirNames(t, dir); !slices.Equal(got, []string{"LOCK"}) {
		t.Fatalf("an empty data directory holds %v after start; want only LOCK", got)
	}
	second, err := broker.Open(*lazyConfig(dir))
	if !errors.Is(err, store.ErrLocked) {
		if second != nil {
			second.Close()
		}
		t.Fatalf("second broker.Open on %s before any durable mailbox: %v, want store.ErrLocked", dir, err)
	}
	if _, err := b.Dial(t).Create(lazyCtx(t), "disk", postbox.Durable()); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(dirNames(t, dir), "RESERVE") {
		t.Fatalf("no RESERVE after the first durable create: %v", dirNames(t, dir))
	}
}

func TestStoreCreatedOnFirstNeedIsRecoveredOnRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := lazyConfig(dir)
	b := testbroker.Start(t, cfg)
	ctx := lazyCtx(t)
	mb, err := b.Dial(t).Create(ctx, "keep", postbox.Durable())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Send(ctx, []byte("survives")); err != nil {
		t.Fatal(err)
	}
	b.Stop(t)

	nb := testbroker.Start(t, cfg)
	if !nb.DataDirOpen() {
		t.Fatal("a directory holding a store is not opened at start")
	}
	msg, err := nb.Dial(t).Mailbox("keep").Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(msg.Body) != "survives" {
		t.Fatalf("recovered %q", msg.Body)
	}
	// Opened at start, the directory is locked at start.
	second, err := broker.Open(*cfg)
	if !errors.Is(err, store.ErrLocked) {
		if second != nil {
			second.Close()
		}
		t.Fatalf("second broker.Open on a directory with a store: %v, want store.ErrLocked", err)
	}
}

// Two brokers started on a path that does not exist yet cannot lock it
// at start: the second to need the store is refused then.
func TestSecondBrokerOnAMissingDataDirectoryIsRefusedAtItsFirstDurableMailbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first := testbroker.Start(t, lazyConfig(dir))
	second := testbroker.Start(t, lazyConfig(dir))
	ctx := lazyCtx(t)
	if _, err := first.Dial(t).Create(ctx, "mine", postbox.Durable()); err != nil {
		t.Fatal(err)
	}
	c := second.Dial(t)
	_, err := c.Create(ctx, "theirs", postbox.Durable())
	if !errors.Is(err, postbox.ErrStorage) || !strings.Contains(err.Error(), "locked") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second broker's durable create: %v; want a storage failure saying %s is locked", err, dir)
	}
	if _, err := c.Mailbox("theirs").Stat(ctx); !errors.Is(err, postbox.ErrNotFound) {
		t.Fatalf("refused durable mailbox exists anyway: %v", err)
	}
	if _, err := c.Create(ctx, "theirs"); err != nil { // it still serves in memory
		t.Fatal(err)
	}
}

// A directory that gained durable mailboxes after start (another broker
// used it and left) is not adopted by a running broker.
func TestStoreThatAppearedAfterStartIsNotAdopted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	waiting := testbroker.Start(t, lazyConfig(dir))
	other := testbroker.Start(t, lazyConfig(dir))
	ctx := lazyCtx(t)
	if _, err := other.Dial(t).Create(ctx, "left", postbox.Durable()); err != nil {
		t.Fatal(err)
	}
	other.Stop(t)
	_, err := waiting.Dial(t).Create(ctx, "late", postbox.Durable())
	if !errors.Is(err, postbox.ErrStorage) || !strings.Contains(err.Error(), "appeared") {
		t.Fatalf("durable create after another broker filled the directory: %v; want a storage failure saying mailboxes appeared", err)
	}
	if waiting.DataDirOpen() {
		t.Fatal("the store that appeared was kept open")
	}
}

// Many first needs at once open the store once; every mailbox is
// recorded in it.
func TestConcurrentFirstDurableCreatesShareOneStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := lazyConfig(dir)
	b := testbroker.Start(t, cfg)
	ctx := lazyCtx(t)
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		c := b.Dial(t)
		go func() {
			_, err := c.Create(ctx, "box"+strconv.Itoa(i), postbox.Durable())
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	b.Stop(t)
	nb := testbroker.Start(t, cfg)
	c := nb.Dial(t)
	for i := range n {
		if info, err := c.Mailbox("box" + strconv.Itoa(i)).Stat(ctx); err != nil || !info.Durable {
			t.Fatalf("box%d after restart: %+v, %v", i, info, err)
		}
	}
}
