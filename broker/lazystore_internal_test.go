package broker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postbox-ipc/postbox/store"
)

func lazyBroker(t *testing.T, dir string) *Broker {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.DataDir, cfg.NoSync = dir, true
	b, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNeedStoreRefusesAStoreThatAppearedAfterStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	b := lazyBroker(t, dir)
	defer b.Close()
	// Another broker's store, left in the directory.
	opts := store.DefaultOptions(dir)
	opts.NoSync = true
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutMailbox(store.MailboxDef{Name: "theirs", Mode: 0o600}).Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.Close()

	if _, err := b.needStore(); !errors.Is(err, ErrStoreAppeared) {
		t.Fatalf("needStore: %v, want ErrStoreAppeared", err)
	}
	if b.DataDirOpen() {
		t.Fatal("the store that appeared was kept open")
	}
	// It is not held either: another broker may open it.
	l, err := store.Lock(dir)
	if err != nil {
		t.Fatalf("the refused store's directory is still locked: %v", err)
	}
	l.Release()
}

func TestNeedStoreAfterCloseIsServerClosed(t *testing.T) {
	dir := t.TempDir()
	b := lazyBroker(t, dir)
	b.Close()
	if _, err := b.needStore(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("needStore after Close: %v, want ErrServerClosed", err)
	}
	// Close gave up the lock it took at Open.
	l, err := store.Lock(dir)
	if err != nil {
		t.Fatalf("Lock after Close: %v", err)
	}
	l.Release()
}

func TestCreatableSaysWhyADataDirectoryCannotBeMade(t *testing.T) {
	dir := t.TempDir()
	if err := creatable(filepath.Join(dir, "a", "b", "data")); err != nil {
		t.Fatalf("a path under a writable directory: %v", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := creatable(filepath.Join(file, "x", "data")); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("a path under a file: %v", err)
	}
}

// A data directory path through a file cannot be listed: Open refuses it
// at start, as before, rather than at the first durable mailbox.
func TestOpenRefusesADataDirectoryUnderAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.DataDir = filepath.Join(file, "data")
	b, err := Open(cfg)
	if err == nil {
		b.Close()
		t.Fatal("Open accepted a data directory under a file")
	}
	if !strings.Contains(err.Error(), cfg.DataDir) {
		t.Fatalf("error %q does not name %s", err, cfg.DataDir)
	}
}
