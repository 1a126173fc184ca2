package broker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/postbox-ipc/postbox/store"
)

// The data directory is opened on first need.
//
// A broker with a DataDir but no durable mailbox leaves the file system
// as it found it: Open creates neither the directory nor the store's
// files (its segments, its RESERVE). What Open does depends on what is
// there:
//
//   - a directory holding a store's log (store.HasStore): opened, locked
//     and recovered at once, as always, so a second broker on it is
//     refused at start (store.ErrLocked);
//   - an existing directory without a log (an empty StateDirectory= of
//     systemd, say): only locked (store.Lock, which creates the LOCK
//     file and nothing else), so a second broker on it is refused at
//     start too; the store is opened under that lock on first need;
//   - no directory: nothing. The first need creates it (0700), locks it
//     and opens the store. A second broker started meanwhile on the same
//     path is not refused at start; whichever needs the store second is
//     refused then (its durable create fails, naming the lock holder).
//
// The first need is a durable CREATE, or a topic claim or binding to
// record (pubsub.save). needStore opens the store under lazy.mu and
// publishes b.st under b.mu, before the box that needed it is added to
// b.boxes; code that reads b.st without a lock does so only for a
// durable box it found in b.boxes (or for a step that wrote records,
// which only durable boxes do), so it reads the value needStore wrote;
// Shutdown and Close read it once the broker is marked closed (stop),
// after which needStore no longer writes it.

// ErrStoreAppeared is returned (wrapped, naming the directory) when the
// store is opened on first need and turns out to hold durable mailboxes:
// another broker used the directory after this one started. They are not
// adopted by a running broker (their names could clash with its
// mailboxes); restart it to recover them.
var ErrStoreAppeared = errors.New("broker: durable mailboxes appeared in the data directory after start")

// lazyStore is the state of a data directory not opened at start.
type lazyStore struct {
	mu   sync.Mutex     // serializes opening; guards lock
	lock *store.DirLock // held from Open until the store takes it over; nil if the directory was missing
}

// openDataDir is Open's part: open, lock or leave the data directory.
func (b *Broker) openDataDir() error {
	dir := b.cfg.DataDir
	has, err := store.HasStore(dir)
	if err != nil || has {
		// A log to recover, or a directory that cannot be read: open it
		// now, which recovers or reports why not.
		if err := b.openStore(); err != nil {
			return err
		}
		b.wg.Add(1)
		go b.syncLoop()
		return nil
	}
	lock, err := store.Lock(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Created on first need; say now if that cannot work.
		if err := creatable(dir); err != nil {
			b.log.Warn("the data directory cannot be created: durable mailboxes will be refused",
				"dir", dir, "err", err)
		}
	case err != nil:
		return fmt.Errorf("broker: data directory %s: %w", dir, err)
	default:
		b.lazy.lock = lock
	}
	// Nothing to recover; said in the words of a recovery, which is what
	// a reader of the log (or a script) waits for.
	b.log.Info("durable mailboxes recovered", "dir", dir, "mailboxes", 0, "messages", 0,
		"store", "none yet: made by the first durable mailbox", "locked", lock != nil)
	return nil
}

// needStore returns the store, opening the data directory if this is its
// first need. b.cfg.DataDir is set. It must not be called holding b.mu
// or a mailbox lock.
func (b *Broker) needStore() (*store.Store, error) {
	if st := b.openedStore(); st != nil {
		return st, nil // the common case, without the opening lock
	}
	b.lazy.mu.Lock()
	defer b.lazy.mu.Unlock()
	b.mu.RLock()
	st, closed := b.st, b.closed
	b.mu.RUnlock()
	if st != nil {
		return st, nil
	}
	if closed {
		return nil, ErrServerClosed
	}
	dir := b.cfg.DataDir
	opts := b.storeOptions()
	var err error
	if b.lazy.lock != nil {
		st, err = store.OpenLocked(opts, b.lazy.lock) // the lock is spent either way
		b.lazy.lock = nil
	} else {
		st, err = store.Open(opts)
	}
	if err != nil {
		return nil, fmt.Errorf("broker: data directory %s: %w", dir, err)
	}
	if n := len(st.Recovered().Mailboxes); n > 0 {
		st.Close()
		return nil, fmt.Errorf("%w: %s holds %d; restart the broker to recover them", ErrStoreAppeared, dir, n)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		st.Close()
		return nil, ErrServerClosed
	}
	b.st = st
	b.wg.Add(1) // before Close's Wait: b.closed is false under b.mu
	b.mu.Unlock()
	go b.syncLoop()
	b.log.Info("data directory opened for the first durable mailbox", "dir", dir)
	return st, nil
}

// openedStore returns the store if it is open, else nil. Any goroutine may
// call it.
func (b *Broker) openedStore() *store.Store {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.st
}

// releaseDirLock gives up a lock taken at Open for a store never opened.
func (b *Broker) releaseDirLock() {
	b.lazy.mu.Lock()
	defer b.lazy.mu.Unlock()
	if b.lazy.lock != nil {
		b.lazy.lock.Release()
		b.lazy.lock = nil
	}
}

// DataDirOpen reports whether the data directory's store is open: false
// without a DataDir, and until the first durable mailbox needs it (see
// above).
func (b *Broker) DataDirOpen() bool { return b.openedStore() != nil }

// storeOptions are the options the store is opened with.
func (b *Broker) storeOptions() store.Options {
	opts := store.DefaultOptions(b.cfg.DataDir)
	opts.Logger = b.log
	opts.NoSync = b.cfg.NoSync
	opts.ObserveSync = b.stats.fsync.Observe // stats.go
	return opts
}

// creatable reports why dir, which does not exist, could not be created
// by this process: its nearest existing ancestor is not a directory, or
// is not writable and searchable. nil if it looks creatable.
func creatable(dir string) error {
	for p := filepath.Dir(filepath.Clean(dir)); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		switch {
		case err == nil && !fi.IsDir():
			return fmt.Errorf("%s is not a directory", p)
		case err == nil:
			if err := unix.Access(p, unix.W_OK|unix.X_OK); err != nil {
				return &os.PathError{Op: "access", Path: p, Err: err}
			}
			return nil
		case !errors.Is(err, fs.ErrNotExist):
			return err
		case p == filepath.Dir(p):
			return nil
		}
	}
}
