package broker

import (
	"errors"
	"fmt"
	"github.com/postbox-ipc/postbox/wire"
	"log/slog"
	"os"
)

// Limits are the broker-wide limits. They may be changed while the broker
// runs (SetLimits), e.g. on SIGHUP.
type Limits struct {
	// MaxConnections: further clients are refused with CodeLimit.
	MaxConnections int `json:"max_connections"`
	// MaxMailboxes: CREATE beyond it fails with CodeLimit.
	MaxMailboxes int `json:"max_mailboxes"`
	// MaxMessage: a larger body fails with CodeTooLarge.
	MaxMessage int `json:"max_message_bytes"`
	// MaxQueuedBytes bounds the body bytes held in all mailboxes together
	// (queued, leased, waiting to enter). A send past it fails with
	// CodeLimit instead of the broker running out of memory.
	MaxQueuedBytes int64 `json:"max_queued_bytes"`
	// InboxCapacity is the capacity of every endpoint's private inbox.
	InboxCapacity int64 `json:"inbox_capacity"`
}

// Config configures a Broker. The zero value is not valid; start from
// DefaultConfig.
type Config struct {
	Limits
	// MaxFrame bounds a frame's size field. It must leave room for
	// MaxMessage plus headers. Fixed for the broker's lifetime: it is not
	// in Limits, so SetLimits cannot change it (`postbox serve --config`
	// reads max_frame at start only).
	MaxFrame int `json:"max_frame"`
	// DataDir holds durable mailboxes (package store). Empty: the broker
	// keeps everything in memory and refuses durable mailboxes. A second
	// broker on the same directory is refused.
	DataDir string `json:"-"`
	// NoSync skips fdatasync in the store: for tests and benchmarks only,
	// as nothing is then durable against a machine crash.
	NoSync bool `json:"-"`
	// Name is reported to clients in the handshake.
	Name string `json:"-"`
	// Logger receives the broker's logs; nil means slog.Default().
	Logger *slog.Logger `json:"-"`
	// Authorizer decides who may do what to which mailbox; nil means
	// ModeAuthorizer (file-like mode bits).
	Authorizer Authorizer `json:"-"`
	// Quotas bound what each uid may hold (quota.go). Fixed for the
	// broker's lifetime.
	Quotas Quotas `json:"quotas"`
}

// Quotas configures the per-uid quotas: the defaults for every uid
// (0: the built-in default, -1: unlimited) and overrides per uid, keyed
// by the uid in decimal or "anonymous" (principals without a uid).
// Root (uid 0) is unlimited unless it has an override. The zero value
// is the built-in defaults.
type Quotas struct {
	QuotaLimits
	UID map[string]QuotaLimits `json:"uid,omitempty"`
}

// DefaultConfig returns the embedded defaults `postbox serve` runs with.
func DefaultConfig() Config {
	return Config{
		Limits: Limits{
			MaxConnections: 4096,
			MaxMailboxes:   65536,
			MaxMessage:     4 << 20,
			MaxQueuedBytes: 1 << 30,
			InboxCapacity:  4096,
		},
		MaxFrame: wire.DefaultMaxFrame,
		Name:     "postbox",
	}
}

// ErrConfig is wrapped by Validate's errors.
var ErrConfig = errors.New("broker: invalid configuration")

// Validate names the first invalid field.
func (c *Config) Validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: %s = %v: %s", ErrConfig, field, v, why)
	}
	switch {
	case c.MaxConnections < 1:
		return bad("MaxConnections", c.MaxConnections, "must be at least 1")
	case c.MaxMailboxes < 1:
		return bad("MaxMailboxes", c.MaxMailboxes, "must be at least 1")
	case c.MaxMessage < 1:
		return bad("MaxMessage", c.MaxMessage, "must be at least 1")
	case c.MaxQueuedBytes < int64(c.MaxMessage):
		return bad("MaxQueuedBytes", c.MaxQueuedBytes, "must be at least MaxMessage")
	case c.InboxCapacity < -1:
		return bad("InboxCapacity", c.InboxCapacity, "must be -1 (unbounded), 0 or more")
	case c.MaxFrame < c.MaxMessage+1024:
		return bad("MaxFrame", c.MaxFrame, "must exceed MaxMessage by at least 1 KiB")
	}
	return c.Quotas.validate()
}

func (c *Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}
