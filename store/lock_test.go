package store_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/postbox-ipc/postbox/store"
)

func TestLockNeedsAnExistingDirectoryAndCreatesOnlyTheLockFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := store.Lock(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Lock of a missing directory: %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Lstat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Lock created %s", missing)
	}
	dir := t.TempDir()
	l, err := store.Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "LOCK" {
		t.Fatalf("after Lock the directory holds %v; want only LOCK", ents)
	}
	if has, err := store.HasStore(dir); has || err != nil {
		t.Fatalf("HasStore of a directory with only a lock: %v, %v", has, err)
	}
}

func TestLockRefusesASecondLockOrOpenUntilReleased(t *testing.T) {
	dir := t.TempDir()
	l, err := store.Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Lock(dir); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second Lock: %v, want ErrLocked", err)
	}
	if s, err := store.Open(testOptions(dir, nil)); !errors.Is(err, store.ErrLocked) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a locked directory: %v, want ErrLocked", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l.Release() // idempotent
	s := mustOpen(t, testOptions(dir, nil))
	s.Close()
}

func TestOpenLockedKeepsTheLockAndCloseReleasesIt(t *testing.T) {
	dir := t.TempDir()
	l, err := store.Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenLocked(testOptions(dir, nil), l)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Lock(dir); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("Lock while OpenLocked's store is open: %v, want ErrLocked", err)
	}
	if has, err := store.HasStore(dir); !has || err != nil {
		t.Fatalf("HasStore of an opened store's directory: %v, %v", has, err)
	}
	if _, err := store.OpenLocked(testOptions(dir, nil), l); err == nil {
		t.Fatal("a spent lock opened a store again")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := store.Lock(dir)
	if err != nil {
		t.Fatalf("Lock after Close: %v", err)
	}
	l2.Release()
}

func TestHasStoreOfAMissingDirectoryIsFalse(t *testing.T) {
	if has, err := store.HasStore(filepath.Join(t.TempDir(), "nope")); has || err != nil {
		t.Fatalf("HasStore of a missing directory: %v, %v", has, err)
	}
}
