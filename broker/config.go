package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// Limits are the broker-wide limits. They may be changed while the broker
// runs (SetLimits), e.g. on SIGHUP.
type Limits struct {
	// MaxConnections: further clients are refused with CodeLimit. A
	// connection counts from accept (accept.go).
	MaxConnections int `json:"max_connections"`
	// MaxMailboxes: CREATE beyond it fails with CodeLimit.
	MaxMailboxes int `json:"max_mailboxes"`
	// MaxMessage: a larger body fails with CodeTooLarge.
	MaxMessage int `json:"max_message_bytes"`
	// MaxQueuedBytes bounds the body bytes held in all mailboxes together
	// (queued, leased, waiting to enter), together with every
	// connection's unwritten output (backlog.go). A send past it fails
	// with CodeLimit instead of the broker running out of memory.
	MaxQueuedBytes int64 `json:"max_queued_bytes"`
	// InboxCapacity is the capacity of every endpoint's private inbox.
	InboxCapacity int64 `json:"inbox_capacity"`

	// MaxFilesPerConn and MaxFilesPerUID bound the descriptors the broker
	// holds for messages in mailboxes (files.go), per sending connection
	// and per sender uid; a SEND past either fails with CodeLimit.
	MaxFilesPerConn int `json:"max_files_per_conn"`
	MaxFilesPerUID  int `json:"max_files_per_uid"`
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
	// Remote holds the cluster mailboxes (package cluster); nil: none,
	// and CREATE with CLUSTER is refused (ErrNoCluster).
	Remote RemoteBackend `json:"-"`
	// HostID names this broker in what it stamps on cluster messages;
	// empty: the host name.
	HostID string `json:"-"`
	// RemoteKeepAlive is how often the leases this broker's clients hold
	// on cluster mailboxes are kept alive (RemoteLease.InProgress); 0:
	// 10 s. The backend's redelivery time must be well above it.
	RemoteKeepAlive time.Duration `json:"-"`
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
	// BroadcastOwner is the uid that may, besides root, send to every
	// connected endpoint ("@*", groups.go). 0: root only.
	BroadcastOwner uint32 `json:"broadcast_owner"`

	ConnBounds
}

// Quotas configures the per-uid quotas: the defaults for every uid
// (0: the built-in default, -1: unlimited) and overrides per uid, keyed
// by the uid in decimal or "anonymous" (principals without a uid).
// Root (uid 0) is unlimited unless it has an override. TLS principals
// have a bucket each, with the same defaults and overrides keyed by
// principal name (Principal). The zero value is the built-in defaults.
type Quotas struct {
	QuotaLimits
	UID       map[string]QuotaLimits `json:"uid,omitempty"`
	Principal map[string]QuotaLimits `json:"principal,omitempty"`
}

// ConnBounds are the per-connection bounds, fixed for the broker's
// lifetime (see "Limits and worst cases" in README and conn.go). A zero
// field takes its DefaultConfig value, except SlowConsumerTimeout and
// DeadPeer, where 0 means never.
type ConnBounds struct {
	// MaxConnBacklog bounds a connection's unwritten output: its reader
	// stops taking requests, and its consumers stop getting deliveries,
	// while this many bytes wait for the peer to read.
	MaxConnBacklog int `json:"max_conn_backlog"`
	// SlowConsumerTimeout: a connection whose consumers have been stalled
	// by a full backlog this long is told so (LIMIT) and disconnected; its
	// leases return to their mailboxes. 0: never.
	SlowConsumerTimeout time.Duration `json:"slow_consumer_timeout"`
	// MaxHandshaking bounds the connections accepted but not yet past
	// HELLO, in total and per peer uid (MaxHandshakingPerUID); one past
	// either is closed at accept, before any goroutine starts.
	MaxHandshaking       int `json:"max_handshaking"`
	MaxHandshakingPerUID int `json:"max_handshaking_per_uid"`
	// HandshakeTimeout bounds the wait for HELLO.
	HandshakeTimeout time.Duration `json:"handshake_timeout"`
	// DeadPeer: a connection that is not a Unix socket (TCP, TLS, any
	// other net.Listener's) from which the broker has read nothing for
	// this long is closed as a dead peer, and its leases return to their
	// mailboxes (keepalive.go). The handshake tells the client to send
	// something every DeadPeer/3 (KEEPALIVE), so a live client is never
	// silent that long. Unix connections are exempt: the kernel tells
	// the broker when their process dies (EOF, pidfd). 0: never.
	DeadPeer time.Duration `json:"dead_peer"`
	// MaxOffersPerConn and MaxOffersPerUID bound shared-memory channel
	// offers not yet attached (two descriptors each); CHANNEL past either
	// fails with CodeLimit.
	MaxOffersPerConn int `json:"max_offers_per_conn"`
	MaxOffersPerUID  int `json:"max_offers_per_uid"`
}

// DefaultConnBounds are the connection bounds DefaultConfig has.
func DefaultConnBounds() ConnBounds {
	return ConnBounds{
		MaxConnBacklog:       4 << 20,
		SlowConsumerTimeout:  30 * time.Second,
		MaxHandshaking:       64,
		MaxHandshakingPerUID: 16,
		HandshakeTimeout:     2 * time.Second,
		DeadPeer:             30 * time.Second,
		MaxOffersPerConn:     16,
		MaxOffersPerUID:      64,
	}
}

// withDefaults fills zero fields from DefaultConnBounds.
func (cb ConnBounds) withDefaults() ConnBounds {
	d := DefaultConnBounds()
	set := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	set(&cb.MaxConnBacklog, d.MaxConnBacklog)
	set(&cb.MaxHandshaking, d.MaxHandshaking)
	set(&cb.MaxHandshakingPerUID, d.MaxHandshakingPerUID)
	set(&cb.MaxOffersPerConn, d.MaxOffersPerConn)
	set(&cb.MaxOffersPerUID, d.MaxOffersPerUID)
	if cb.HandshakeTimeout == 0 {
		cb.HandshakeTimeout = d.HandshakeTimeout
	}
	return cb
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

			MaxFilesPerConn: 256,
			MaxFilesPerUID:  1024,
		},
		MaxFrame:   wire.DefaultMaxFrame,
		Name:       "postbox",
		ConnBounds: DefaultConnBounds(),
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
	case c.MaxFilesPerConn < 0 || c.MaxFilesPerUID < 0:
		return bad("MaxFilesPerConn/MaxFilesPerUID", [2]int{c.MaxFilesPerConn, c.MaxFilesPerUID}, "must not be negative (0: no descriptors on messages)")
	case c.MaxFrame < c.MaxMessage+1024:
		return bad("MaxFrame", c.MaxFrame, "must exceed MaxMessage by at least 1 KiB")
	case c.MaxConnBacklog < 0 || c.MaxHandshaking < 0 || c.MaxHandshakingPerUID < 0 ||
		c.MaxOffersPerConn < 0 || c.MaxOffersPerUID < 0:
		return bad("ConnBounds", c.ConnBounds, "no bound may be negative")
	case c.MaxConnBacklog > 0 && c.MaxConnBacklog < 64<<10:
		return bad("MaxConnBacklog", c.MaxConnBacklog, "must be at least 64 KiB")
	case c.SlowConsumerTimeout < 0 || c.HandshakeTimeout < 0 || c.DeadPeer < 0:
		return bad("ConnBounds", c.ConnBounds, "timeouts must not be negative")
	case c.DeadPeer > 0 && c.DeadPeer < minDeadPeer:
		return bad("DeadPeer", c.DeadPeer, "must be 0 (never) or at least "+minDeadPeer.String())
	}
	return c.Quotas.validate()
}

func (c *Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}
