package shm

import "errors"

// Errors returned by this package. Match them with errors.Is: an error may
// be wrapped with context (for example the path being dialled).
var (
	// ErrClosed is returned by any operation on a Chan, Listener or
	// Segment after its own Close.
	ErrClosed = errors.New("shm: channel closed")
	// ErrPeerGone means the other side closed its end or its process died.
	// The kernel reports it (hang-up of the control socket); a paused peer
	// is never reported gone. Receives first drain every message the peer
	// published before it went.
	ErrPeerGone = errors.New("shm: peer gone")
	// ErrFull is returned by the non-blocking send calls when the ring has
	// no room for the message.
	ErrFull = errors.New("shm: ring full")
	// ErrEmpty is returned by the non-blocking receive calls when no
	// message is waiting.
	ErrEmpty = errors.New("shm: ring empty")
	// ErrPoolExhausted is returned by the non-blocking send calls when a
	// message belongs in the block pool and the pool has no free run of
	// blocks large enough. Blocking calls wait instead; nothing ever falls
	// back to a slower tier.
	ErrPoolExhausted = errors.New("shm: block pool exhausted")
	// ErrTooLarge means a message exceeds Config.MaxMessage.
	ErrTooLarge = errors.New("shm: message too large")
	// ErrShortBuffer is returned by Receive when the buffer cannot hold the
	// next message. The message stays queued; the returned count is its
	// length, so the caller can retry with a larger buffer.
	ErrShortBuffer = errors.New("shm: buffer too small for message")
	// ErrCorrupt means the shared memory holds something the peer could
	// not legitimately have written: a bad record length or kind, an index
	// out of range, a pool descriptor naming blocks it does not own. The
	// channel is unusable afterwards; no out-of-bounds access is made.
	ErrCorrupt = errors.New("shm: corrupt shared memory")
	// ErrBadSegment means a segment's header failed validation on attach
	// (wrong magic, layout version, sizes or layout hash).
	ErrBadSegment = errors.New("shm: segment header mismatch")
	// ErrSideTaken means another process already attached this side of
	// the segment.
	ErrSideTaken = errors.New("shm: side already attached")
	// ErrPeerNotAllowed means the peer's credentials (SO_PEERCRED) are not
	// in Config.AllowedUIDs.
	ErrPeerNotAllowed = errors.New("shm: peer credentials not allowed")
	// ErrLoanReleased is returned when a Loan is released twice, or a
	// Reservation committed twice or after another one replaced it.
	ErrLoanReleased = errors.New("shm: loan already released")
	// ErrTooManyLoans means MaxLoans receive loans are outstanding;
	// release one before taking another.
	ErrTooManyLoans = errors.New("shm: too many outstanding loans")
	// ErrTimeout is returned by the timed calls when the time runs out.
	// It satisfies net.Error with Timeout() == true.
	ErrTimeout error = timeoutError{}
)

type timeoutError struct{}

func (timeoutError) Error() string   { return "shm: timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
