package topic

import (
	"errors"
	"fmt"
)

// Policy says what happens to a publication for a subscription whose
// buffer is full.
type Policy uint8

const (
	// Block: the publication waits for room (the publisher waits), until
	// AddCredit makes room or the publisher gives up (Withdraw).
	Block Policy = iota
	// DropOldest: the oldest event still held in the engine is dropped to
	// make room (when none is held, because all are handed to the shell,
	// the arriving one is dropped).
	DropOldest
	// DropNewest: the arriving publication is dropped.
	DropNewest
	// Disconnect: the subscription is removed (EffDisconnect).
	Disconnect
)

func (p Policy) String() string {
	switch p {
	case Block:
		return "block"
	case DropOldest:
		return "drop-oldest"
	case DropNewest:
		return "drop-newest"
	case Disconnect:
		return "disconnect"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// Buffer limits.
const (
	// DefaultBuffer is a subscription's buffer when Sub.Buffer is 0.
	DefaultBuffer = 256
	// MaxBuffer is the largest Sub.Buffer.
	MaxBuffer = 1 << 20
)

// Engine errors.
var (
	ErrInvalidSub   = errors.New("topic: invalid subscription")
	ErrDuplicateSub = errors.New("topic: subscription id in use")
)

// SubID names a subscription; the shell chooses it, unique per Engine.
type SubID uint64

// Sub is a subscription.
type Sub struct {
	ID      SubID
	Pattern string
	// Queue, when not empty, makes the subscription a member of the queue
	// group (Pattern, Queue): the group's members share its publications.
	Queue string
	// Buffer bounds the events outstanding for the subscription: accepted
	// for it and not yet credited back by AddCredit, whether still held
	// in the engine or handed to the shell. 0 means DefaultBuffer.
	Buffer int
	Policy Policy
	Filter Filter
	// Owner is the shell's, carried into every Effect for the
	// subscription.
	Owner any
	// Window bounds how many of the outstanding events are handed to the
	// shell (EffDeliver) at once; the rest wait in the engine, where
	// DropOldest can still drop them. 0 means Buffer, except under
	// DropOldest, where it means half of Buffer (rounded up).
	Window int
}

// Pub is a publication. The engine keeps a pointer to its own copy and
// hands it out in every EffDeliver; Payload and Size are the shell's.
type Pub struct {
	Subject string
	Type    int64
	Headers func(string) (string, bool)
	Payload any
	Size    int
}

// EffKind says what an Effect asks the shell to do.
type EffKind uint8

const (
	// EffDeliver: write Pub to subscription Sub, telling it first that it
	// missed Missed events since the previous delivery. Pub nil is a gap
	// notice alone (Missed > 0). Each EffDeliver with a Pub is credited
	// back with AddCredit once written; a gap notice alone is not (extra
	// credit is ignored, so crediting it too is harmless).
	EffDeliver EffKind = iota + 1
	// EffPublished: the waiting publication Token is now placed in every
	// buffer it was bound for (or in those that remain: a subscription
	// it waited for went away); its publisher may go on.
	EffPublished
	// EffDisconnect: subscription Sub overflowed under Disconnect and is
	// removed; end its stream.
	EffDisconnect
)

func (k EffKind) String() string {
	switch k {
	case EffDeliver:
		return "deliver"
	case EffPublished:
		return "published"
	case EffDisconnect:
		return "disconnect"
	}
	return fmt.Sprintf("EffKind(%d)", uint8(k))
}

// Effect is one decision of the engine for its shell to carry out.
type Effect struct {
	Kind   EffKind
	Sub    SubID
	Owner  any // the subscription's Owner (EffDeliver, EffDisconnect)
	Pub    *Pub
	Missed uint64
	Token  uint64
}
