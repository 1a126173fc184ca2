package wire

// Cluster mailboxes (docs/CLUSTER.md): CREATE's CLUSTER option, the
// MailboxInfo entries a cluster mailbox's STAT and LIST carry, and the
// UNAVAILABLE status.

// TagCluster (CREATE, critical, u8): make the mailbox on the broker's
// cluster, with that many replicas (0: the cluster's default).
const TagCluster uint16 = 0x8008

// MailboxInfo ext entries of a cluster mailbox (non-critical; a local
// mailbox has none of them).
const (
	// TagInfoCluster (string): the name of the cluster holding the
	// mailbox. Its presence marks a cluster mailbox.
	TagInfoCluster uint16 = 0x0011
	// TagInfoReplicas (u8): the mailbox's replica count.
	TagInfoReplicas uint16 = 0x0012
	// TagInfoStreamState (string): the replicated stream's state as the
	// cluster reports it, e.g. "leader n1, 2/2 followers current".
	TagInfoStreamState uint16 = 0x0013
	// TagInfoStream (string): the name of the stream holding the mailbox.
	TagInfoStream uint16 = 0x0014
)

// CodeUnavailable: the cluster is unreachable (the broker's connection
// to it is down); local mailboxes are unaffected. The broker reconnects
// by itself: retry later.
const CodeUnavailable Code = 23

// ClusterInfo is what a MailboxInfo's ext tail says about a cluster
// mailbox.
type ClusterInfo struct {
	Cluster     string
	Replicas    uint8
	StreamState string
	Stream      string
}

// AppendClusterInfo appends ci's entries to an ext tail.
func AppendClusterInfo(b []byte, ci ClusterInfo) []byte {
	b = AppendExt(b, TagInfoCluster, []byte(ci.Cluster))
	b = AppendExt(b, TagInfoReplicas, []byte{ci.Replicas})
	b = AppendExt(b, TagInfoStreamState, []byte(ci.StreamState))
	return AppendExt(b, TagInfoStream, []byte(ci.Stream))
}

// ClusterInfoOf reads the cluster entries of a MailboxInfo's Ext; ok is
// false for a local mailbox (no CLUSTER entry) or a malformed tail.
func ClusterInfoOf(ext []byte) (ci ClusterInfo, ok bool) {
	it := NewExtIter(ext)
	for f, more := it.Next(); more; f, more = it.Next() {
		switch f.Tag {
		case TagInfoCluster:
			ci.Cluster, ok = string(f.Value), true
		case TagInfoReplicas:
			if len(f.Value) == 1 {
				ci.Replicas = f.Value[0]
			}
		case TagInfoStreamState:
			ci.StreamState = string(f.Value)
		case TagInfoStream:
			ci.Stream = string(f.Value)
		}
	}
	return ci, ok && it.Err() == nil
}
