package store

import (
	"errors"
	"fmt"
)

// Errors returned by the store. Write errors wrap the errno that caused
// them, so errors.Is(err, syscall.ENOSPC) works as well as
// errors.Is(err, ErrDiskFull).
var (
	// ErrLocked: another Store (in this or another process) has the
	// directory open.
	ErrLocked = errors.New("store: directory is locked by another store")
	// ErrClosed: the Store was closed before the record was written.
	ErrClosed = errors.New("store: closed")
	// ErrDiskFull: the file system is out of space (ENOSPC, EDQUOT). The
	// batch was cut back off the log; later writes succeed once space
	// frees.
	ErrDiskFull = errors.New("store: disk full")
	// ErrReadOnly: the directory or file system is not writable (EROFS,
	// EACCES, EPERM). Later writes succeed if that changes.
	ErrReadOnly = errors.New("store: directory is not writable")
	// ErrIO: any other I/O error.
	ErrIO = errors.New("store: i/o error")
	// ErrFailed: the store can no longer trust its own log (fdatasync
	// failed, or a failed write could not be cut back off the log) and
	// refuses every further write. It wraps the cause. Close and Open
	// again to recover from what is on disk.
	ErrFailed = errors.New("store: failed, reopen to recover")
	// ErrCorrupt: Open found records whose checksum does not match and
	// Options.FailOnCorruption is set.
	ErrCorrupt = errors.New("store: corrupt log")
	// ErrTooLarge: a name, reason or body does not fit the record format.
	ErrTooLarge = errors.New("store: field too large")
	// ErrInvalidOptions: Options failed validation.
	ErrInvalidOptions = errors.New("store: invalid options")
)

func invalid(field, why string) error {
	return fmt.Errorf("%w: %s %s", ErrInvalidOptions, field, why)
}
