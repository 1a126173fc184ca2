package store

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Running out of disk must not lock a broker out of freeing space: acks
// are how space comes back, and an ack is a record too. So the store keeps
// a reserve file (DIR/RESERVE, Options.ReserveBytes, 1 MiB by default) that
// it deletes the first time a write fails with ENOSPC, then retries the
// write. From then on the store is "low on space": new messages and new
// mailbox definitions (Append, PutMailbox) are refused at once with
// ErrDiskFull, while everything that frees space or only changes state
// (Ack, Lease, Return, DeadLetter, DeleteMailbox) is still written, into
// the reserve's room. When a segment is reclaimed the store tries to
// recreate the reserve; once that succeeds it accepts new messages again.
//
// The reserve file is the writer goroutine's (and Open's, before the
// writer starts): only it deletes, writes, fdatasyncs and re-creates the
// file. A write method (Append, PutMailbox) is called under its caller's
// locks (a broker mailbox's, for one) and must not wait for the disk, so
// while low on space it only looks at the free space (statfs, which reads
// the file system's counters) and, if there is room again, accepts the
// record: the writer restores the reserve before it writes that record's
// batch (flush).

const reserveName = "RESERVE"

// lowSpace is set while the reserve is spent. Only the writer goroutine
// changes it (and Open, before starting the writer); any goroutine reads
// it.
type lowSpace struct {
	on atomic.Bool
}

// refused reports whether a new message must be refused for lack of
// space. It is called on the submitting goroutine, so it does no I/O
// beyond one statfs: space can also come back from outside (another file
// deleted), and once there is room for three reserves the record is
// accepted and the writer goroutine restores the reserve before writing
// it (see flush).
func (s *Store) refused() bool {
	return s.low.on.Load() && !s.roomForReserve()
}

// roomForReserve reports whether the file system has room to restore the
// reserve and leave the low-space state: room for three reserves, so that
// accepting messages again does not fill the disk at once.
func (s *Store) roomForReserve() bool {
	return s.free() >= 3*s.reserveSize()
}

// free is the bytes available to the store's file system (0 if unknown).
func (s *Store) free() int64 {
	var fs unix.Statfs_t
	if unix.Statfs(s.opts.Dir, &fs) != nil {
		return 0
	}
	return int64(fs.Bavail) * int64(fs.Bsize)
}

func (s *Store) reservePath() string { return filepath.Join(s.opts.Dir, reserveName) }

// makeReserve creates the reserve file if it is missing. It reports
// whether the reserve is in place.
func (s *Store) makeReserve() bool {
	size := s.reserveSize()
	if size <= 0 {
		return true
	}
	path := s.reservePath()
	if fi, err := os.Stat(path); err == nil && fi.Size() >= size {
		return true
	}
	if h := s.reserveHook.Load(); h != nil {
		(*h)()
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return false
	}
	// Write real blocks (not a sparse hole), so that deleting the file
	// really frees them.
	buf := make([]byte, 64<<10)
	var werr error
	for off := int64(0); off < size && werr == nil; off += int64(len(buf)) {
		n := min(int64(len(buf)), size-off)
		_, werr = f.WriteAt(buf[:n], off)
	}
	if werr == nil && !s.opts.NoSync {
		werr = fdatasync(f)
	}
	f.Close()
	if werr != nil {
		os.Remove(path)
		return false
	}
	return true
}

// reserveSize is Options.ReserveBytes, but at most 1/16 of the file
// system, so a small one is not mostly reserve.
func (s *Store) reserveSize() int64 {
	size := s.opts.ReserveBytes
	var fs unix.Statfs_t
	if size > 0 && unix.Statfs(s.opts.Dir, &fs) == nil {
		size = min(size, int64(fs.Blocks)*int64(fs.Bsize)/16)
	}
	return size
}

// spendReserve deletes the reserve after a write failed for lack of
// space, and enters the low-space state. It reports whether there was a
// reserve to free.
// Writer goroutine (or Open) only.
func (s *Store) spendReserve() bool {
	s.low.on.Store(true)
	if err := os.Remove(s.reservePath()); err != nil {
		return false
	}
	s.syncDir()
	s.log.Warn("store: disk full: released the reserve; new messages are refused until space is freed, acks still work",
		"dir", s.opts.Dir)
	return true
}

// refill tries to restore the reserve after space was freed, and leaves
// the low-space state if it can. It writes and fdatasyncs the reserve
// file, so it runs on the writer goroutine only, never on a goroutine
// submitting a record.
func (s *Store) refill() {
	if !s.low.on.Load() || !s.roomForReserve() {
		return
	}
	if s.makeReserve() {
		s.low.on.Store(false)
		s.log.Info("store: space freed; new messages are accepted again", "dir", s.opts.Dir)
	}
}

// errLowSpace is the error of a write refused while low on space.
var errLowSpace = fmt.Errorf("%w: only acks are recorded until space is freed (%w)", ErrDiskFull, syscall.ENOSPC)
