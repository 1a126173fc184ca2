package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// Cluster mailboxes: the broker's seam for a target that lives outside
// it (docs/CLUSTER.md).
//
// A RemoteBackend (package cluster implements one on NATS JetStream)
// holds mailboxes that several brokers serve at once. The broker keeps
// what is per connection: it stamps the sender, turns each delivery into
// a lease of the connection that received it, settles leases with the
// backend's Ack/Nack, keeps held leases alive (InProgress) and nacks
// them all when their connection ends. The broker imports nothing of the
// backend's: this file is the whole vocabulary between them.

// RemoteBackend is a store of mailboxes shared by several brokers. Its
// methods are safe for concurrent use; those taking a ctx may block for
// a network round trip (the broker calls them off the connection's
// reader where it matters). Errors it returns should match the
// ErrRemote sentinels below where they apply; others are INTERNAL.
type RemoteBackend interface {
	// Create makes a mailbox (ErrRemoteExists if the name is taken).
	Create(ctx context.Context, spec RemoteSpec) error
	// Lookup reports a mailbox's definition (ErrRemoteNotFound).
	Lookup(ctx context.Context, name string) (RemoteSpec, error)
	// Info reports a mailbox's state.
	Info(ctx context.Context, name string) (RemoteInfo, error)
	// List reports every mailbox the backend holds, in any order.
	List(ctx context.Context) ([]RemoteInfo, error)
	// Destroy removes a mailbox and the messages in it.
	Destroy(ctx context.Context, name string) error
	// Send stores msgs in the mailbox, in order, and calls done once
	// (from any goroutine) when each is stored and replicated, or with
	// the first error and how many before it were stored. Send itself
	// does not block on the network.
	Send(name string, msgs []RemoteMessage, done func(ids []uint64, err error))
	// Receiver returns a receiver of the mailbox's messages that typ
	// selects (0 any type, > 0 exactly that type).
	Receiver(ctx context.Context, name string, typ int64) (RemoteReceiver, error)
}

// RemoteSpec is a cluster mailbox's definition.
type RemoteSpec struct {
	Name     string
	Capacity int64 // -1 unbounded, N > 0 at most N messages
	MaxBytes int64 // 0: no byte bound
	TTL      time.Duration
	Mode     uint32
	Replicas int // 0: the backend's default
	// The creator, as the Authorizer sees owners.
	OwnerKind PrincipalKind
	OwnerUID  uint32
	OwnerGID  uint32
	OwnerName string
	Created   time.Time
}

// RemoteInfo is a cluster mailbox's definition and state.
type RemoteInfo struct {
	RemoteSpec
	Depth       uint64
	Bytes       uint64
	InFlight    uint64 // delivered, not yet acked (all brokers)
	Consumers   uint32
	Redelivered uint64
	Cluster     string
	Replicas    int
	StreamState string
	Stream      string
	OldestUnix  int64
}

// RemoteMessage is a message on its way to, or out of, a cluster
// mailbox, with what the sending broker stamped on it.
type RemoteMessage struct {
	// ID identifies the send for duplicate removal: a message with the
	// ID of one stored recently is not stored again.
	ID           string
	Type         int64
	Priority     uint8
	Sender       mailbox.Identity
	Host         string // the sending broker's host id
	SentUnixNano int64
	Headers      []byte
	Body         []byte
}

// RemoteDelivery is a message a receiver took, leased to it until it is
// settled with Ack or Nack (kept alive meanwhile with InProgress).
type RemoteDelivery struct {
	RemoteMessage
	Seq          uint64
	Redeliveries uint32
	Lease        RemoteLease
}

// RemoteLease settles one delivery. Ack removes the message (with
// confirm, it returns once the backend confirmed the removal), Nack
// returns it for redelivery at once, InProgress keeps the lease alive.
// Nack and InProgress do not wait for the backend.
type RemoteLease interface {
	Ack(confirm bool) error
	Nack() error
	InProgress() error
}

// RemoteReceiver takes messages from a cluster mailbox.
type RemoteReceiver interface {
	// Fetch returns 1..n messages, waiting until ctx ends for the first;
	// it returns ErrRemoteEmpty when none came before then (or at once
	// with wait false).
	Fetch(ctx context.Context, n int, wait bool) ([]RemoteDelivery, error)
}

// The backend's errors, and the refusals of what a cluster mailbox
// cannot do (each answered INVALID with its text, unless said).
var (
	// ErrRemoteUnavailable: the cluster cannot be reached (UNAVAILABLE).
	ErrRemoteUnavailable = errors.New("broker: the cluster is unreachable")
	ErrRemoteNotFound    = errors.New("broker: no such cluster mailbox") // NOT_FOUND
	ErrRemoteExists      = errors.New("broker: a cluster mailbox with that name exists")
	ErrRemoteFull        = errors.New("broker: the cluster mailbox is full")  // FULL
	ErrRemoteEmpty       = errors.New("broker: the cluster mailbox is empty") // EMPTY

	// ErrNoCluster: CREATE --cluster on a broker started without one.
	ErrNoCluster = errors.New("broker: this broker is not attached to a cluster (postbox serve --cluster URLS)")
	// ErrClusterRendezvous: capacity 0 needs a receiver waiting at the
	// sender's broker, which a shared mailbox cannot know.
	ErrClusterRendezvous = errors.New("broker: a cluster mailbox cannot be a rendezvous (capacity 0): a sender cannot know a receiver waits on another broker")
	// ErrClusterLocalOption: an option that only a local mailbox has.
	ErrClusterLocalOption = errors.New("broker: option not available on a cluster mailbox")
	// ErrClusterTypeRange: typed receive with a negative type (lowest
	// type at most |T|): the cluster filters by exact type only.
	ErrClusterTypeRange = errors.New("broker: a cluster mailbox cannot receive by type range (negative type): only type 0 (any) or an exact type")
	// ErrClusterPriority: message priority needs one ordered queue; the
	// cluster delivers in the order messages were stored.
	ErrClusterPriority = errors.New("broker: a cluster mailbox has no priority order: send with priority 0")
	// ErrClusterReceipt: receipts and CALLs need the taker known at the
	// sending broker.
	ErrClusterReceipt = errors.New("broker: a cluster mailbox gives no receipts (RECEIPT, CALL)")
	// ErrClusterDescriptors: descriptors and channels cannot leave the
	// machine.
	ErrClusterDescriptors = errors.New("broker: descriptors and channels cannot go to a cluster mailbox")
	// ErrClusterUrgent: urgent messages overtake within one queue.
	ErrClusterUrgent = errors.New("broker: a cluster mailbox has no urgent lane")
	// ErrClusterChange: CHMOD and ACL of a cluster mailbox.
	ErrClusterChange = errors.New("broker: a cluster mailbox's mode and access entries are fixed at CREATE")
)

// remoteCode is the status for a backend or refusal error.
func remoteCode(err error) wire.Code {
	switch {
	case errors.Is(err, ErrRemoteUnavailable), errors.Is(err, context.DeadlineExceeded):
		return wire.CodeUnavailable
	case errors.Is(err, ErrRemoteNotFound):
		return wire.CodeNotFound
	case errors.Is(err, ErrRemoteExists):
		return wire.CodeExists
	case errors.Is(err, ErrRemoteFull):
		return wire.CodeFull
	case errors.Is(err, ErrRemoteEmpty):
		return wire.CodeEmpty
	case errors.Is(err, ErrNoCluster), errors.Is(err, ErrClusterRendezvous), errors.Is(err, ErrClusterLocalOption),
		errors.Is(err, ErrClusterTypeRange), errors.Is(err, ErrClusterPriority), errors.Is(err, ErrClusterReceipt),
		errors.Is(err, ErrClusterDescriptors), errors.Is(err, ErrClusterUrgent), errors.Is(err, ErrClusterChange),
		errors.Is(err, ErrClusterTypeMix):
		return wire.CodeInvalid
	}
	return wire.CodeInternal
}

// remoteTimeout bounds the backend calls the broker waits for (CREATE,
// STAT, LIST, DESTROY, a name's lookup).
const remoteTimeout = 5 * time.Second

// clusterCreateRule returns why a CREATE --cluster cannot be, or nil.
func clusterCreateRule(m *wire.Create) error {
	switch {
	case m.Capacity == 0:
		return ErrClusterRendezvous
	case m.Durable:
		return fmt.Errorf("%w: DURABLE: a cluster mailbox is replicated, not kept in this broker's data directory", ErrClusterLocalOption)
	case m.Pipe:
		return fmt.Errorf("%w: PIPE", ErrClusterLocalOption)
	case m.DeadLetter != nil:
		return fmt.Errorf("%w: DEAD_LETTER", ErrClusterLocalOption)
	case m.MaxDeliveries != 0:
		return fmt.Errorf("%w: MAX_DELIVERIES", ErrClusterLocalOption)
	case m.Service:
		return fmt.Errorf("%w: SERVICE (an RPC service's mailbox needs receipts)", ErrClusterLocalOption)
	case m.Replicas > 5:
		return fmt.Errorf("%w: replicas must be 1..5", ErrClusterLocalOption)
	}
	return nil
}

// ErrClusterTypeMix: receivers by any type and by exact type at once;
// JetStream's work-queue consumers of one stream must not overlap.
var ErrClusterTypeMix = errors.New("broker: a cluster mailbox is received from either by any type or by exact types, not both at once")
