package postbox

import (
	"os"
	"time"
)

// Option adjusts one call. Each option says which calls it applies to;
// others ignore it.
type Option func(*options)

type options struct {
	capacity      int64
	mode          uint32
	durable       bool
	maxBytes      int64
	ttl           int64
	maxDeliveries uint32
	deadLetter    string

	typ      int64
	priority uint8
	receipt  bool
	nowait   bool
	autoAck  bool
	prefetch uint32
}

func collect(opts []Option) options {
	o := options{capacity: -1, mode: 0o600, typ: 0, prefetch: 256}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Capacity (Create): -1 unbounded (the default), 0 rendezvous, n > 0 at
// most n queued messages.
func Capacity(n int64) Option { return func(o *options) { o.capacity = n } }

// Unbounded (Create) is Capacity(-1).
func Unbounded() Option { return Capacity(-1) }

// Rendezvous (Create) is Capacity(0): a send completes only when a
// receiver takes the message.
func Rendezvous() Option { return Capacity(0) }

// Mode (Create) sets the permission bits: like a file's, w = may send,
// r = may receive. The default is 0600.
func Mode(m os.FileMode) Option { return func(o *options) { o.mode = uint32(m.Perm()) } }

// Durable (Create) asks for a mailbox kept on disk (the broker needs a
// data directory).
func Durable() Option { return func(o *options) { o.durable = true } }

// MaxDeliveries (Create): after n deliveries without an ack a message
// leaves the mailbox: to its DeadLetter mailbox if it has one, else it is
// dropped. 0 means unlimited.
func MaxDeliveries(n uint32) Option { return func(o *options) { o.maxDeliveries = n } }

// MaxBytes (Create) also bounds the queued body bytes; a send past it
// waits or fails with ErrFull as for a full mailbox. 0 means no bound.
func MaxBytes(n int64) Option { return func(o *options) { o.maxBytes = n } }

// TTL (Create): queued messages older than d are removed (moved to the
// dead-letter mailbox, if there is one, with reason "expired").
func TTL(d time.Duration) Option { return func(o *options) { o.ttl = int64(d) } }

// DeadLetter (Create) names an existing mailbox, which the creator may
// send to, that receives this mailbox's dead letters: messages past
// MaxDeliveries or their TTL, with their original sender identity and a
// Reason.
func DeadLetter(name string) Option { return func(o *options) { o.deadLetter = name } }

// Type (Send) sets the message type (>= 1, default 1). (Receive, Consume)
// selects by type with msgrcv rules: 0 any, > 0 exactly, < 0 the lowest
// type <= |t|.
func Type(t int64) Option { return func(o *options) { o.typ = t } }

// Priority (Send): 0-255, higher first. The default is 0.
func Priority(p uint8) Option { return func(o *options) { o.priority = p } }

// WithReceipt (Send): complete only when a receiver has taken the message,
// and say who. If the context ends first the message is withdrawn.
func WithReceipt() Option { return func(o *options) { o.receipt = true } }

// NoWait (Send, Receive): fail at once with ErrFull or ErrEmpty instead of
// waiting.
func NoWait() Option { return func(o *options) { o.nowait = true } }

// AutoAck (Receive, Consume): the broker removes the message as it
// delivers it; there is no lease and no redelivery.
func AutoAck() Option { return func(o *options) { o.autoAck = true } }

// Prefetch (Consume): how many messages the broker may send ahead of the
// application (default 256).
func Prefetch(n uint32) Option { return func(o *options) { o.prefetch = max(n, 1) } }
