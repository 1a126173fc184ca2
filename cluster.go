package postbox

import "errors"

// Cluster mailboxes (docs/CLUSTER.md): a mailbox kept on the NATS
// JetStream cluster the broker is attached to (postbox serve --cluster),
// served by every broker attached to it.

// ErrUnavailable: the broker cannot reach its cluster just now (its
// connection to it is down; it reconnects by itself). Local mailboxes
// are unaffected. A send that failed with it may have been stored:
// sending the same request again is stored once.
var ErrUnavailable = errors.New("postbox: the cluster is unreachable")

type clusterOption uint8

func (n clusterOption) applyCreate(o *createOptions) { o.cluster, o.replicas = true, uint8(n) }

// Cluster makes the mailbox on the broker's cluster with replicas
// copies of each message (1..5; 0: the cluster's default, 3 on a
// cluster of three servers or more, else 1). The broker refuses
// options a cluster mailbox cannot keep (Rendezvous, Durable,
// DeadLetter, MaxDeliveries, Service) with ErrInvalid saying why.
func Cluster(replicas int) CreateOption { return clusterOption(min(max(replicas, 0), 255)) }
