package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// This file holds the store's direct dealings with the file system:
// segment names, directory fsync, fdatasync, the directory lock and the
// mapping of errno values to the package's sentinel errors.

const (
	segSuffix = ".wal"
	lockName  = "LOCK"
)

func segName(id uint64) string { return fmt.Sprintf("%020d%s", id, segSuffix) }

// listSegments returns the ids of the segment files in dir, ascending.
// Files that do not look like segments are ignored.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ids []uint64
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, segSuffix) || len(name) != 20+len(segSuffix) {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// syncDir makes the creation or removal of a file in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

// lockDir takes an exclusive flock on dir/LOCK and writes our pid into it.
// The lock belongs to the open file description, so a second Open in the
// same process is refused just like one from another process, and the
// kernel drops it if the process dies.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, classify("open lock file", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid := strings.TrimSpace(string(b)); pid != "" {
				holder = " by pid " + pid
			}
		}
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is held%s", ErrLocked, dir, holder)
		}
		return nil, classify("lock "+path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

func unlockDir(f *os.File) error {
	// Leave the pid in place: it is only read while the lock is held, and
	// truncating could race a new holder writing its own pid.
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return f.Close()
}

// classify wraps a file-system error with the sentinel that says what kind
// of trouble it is, keeping the errno reachable with errors.Is/As.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var kind error
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		kind = ErrDiskFull
	case errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		kind = ErrReadOnly
	default:
		kind = ErrIO
	}
	return fmt.Errorf("%w: %s: %w", kind, op, err)
}

// datasync is fdatasync of a segment, timed for Options.ObserveSync.
func (s *Store) datasync(f *os.File) error {
	if s.opts.ObserveSync == nil {
		return fdatasync(f)
	}
	start := time.Now()
	err := fdatasync(f)
	s.opts.ObserveSync(time.Since(start))
	return err
}
