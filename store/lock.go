package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// A broker that has no durable mailbox yet should leave the file system
// alone: no data directory, no reserve file, until a durable mailbox
// needs them. It should still refuse to share a directory with another
// broker. So the lock can be taken on its own, before the store is opened:
// Lock takes the lock Open would take (creating only the lock file, in a
// directory that must exist), and OpenLocked opens the store under it
// later. HasStore tells a directory that already holds a log, which is
// opened at once as before, from one that holds none yet.

// DirLock is a data directory's lock, held from Lock until it is
// released or passed to OpenLocked. It is not safe for concurrent use.
type DirLock struct {
	dir string
	f   *os.File // nil once released or passed on
}

// Lock takes dir's lock as Open does (a second Lock or Open of dir, from
// this process or another, fails with ErrLocked), creating dir/LOCK but
// nothing else. dir must exist: a missing dir is an error matching
// fs.ErrNotExist.
func Lock(dir string) (*DirLock, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, classify("lock directory", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: lock directory: %s is not a directory", ErrIO, dir)
	}
	f, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	return &DirLock{dir: dir, f: f}, nil
}

// Dir is the locked directory.
func (l *DirLock) Dir() string { return l.dir }

// Release gives up the lock. It is idempotent; it does nothing after
// OpenLocked took the lock over.
func (l *DirLock) Release() error {
	if l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	return unlockDir(f)
}

// OpenLocked is Open on the directory l holds (opts.Dir must be l's
// directory). The lock passes to the Store, whose Close releases it; if
// OpenLocked fails, it releases the lock itself. Either way l is spent.
func OpenLocked(opts Options, l *DirLock) (*Store, error) {
	if l == nil || l.f == nil {
		return nil, errors.New("store: OpenLocked: the lock was released or already used")
	}
	f := l.f
	l.f = nil
	if opts.Dir != l.dir {
		unlockDir(f)
		return nil, fmt.Errorf("store: OpenLocked: options name %s, the lock %s", opts.Dir, l.dir)
	}
	return openWith(opts, f)
}

// HasStore reports whether dir holds a store's log (at least one segment
// file): Open there recovers what a broker left. A missing dir holds
// none (false, nil); a dir that cannot be read is an error.
func HasStore(dir string) (bool, error) {
	ids, err := listSegments(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, classify("list segments", err)
	}
	return len(ids) > 0, nil
}
