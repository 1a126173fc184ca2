// Package cluster keeps postbox mailboxes on a NATS JetStream cluster, so
// that several brokers on different machines serve the same mailbox: a
// message sent through one broker is received through another.
//
// A Backend is the broker's RemoteBackend (broker/remote.go): `postbox
// serve --cluster URLS` opens one and passes it in broker.Config.Remote.
// Each cluster mailbox is one JetStream stream with work-queue retention,
// file storage and R replicas (1..5; by default 3, or 1 on a cluster of
// fewer than three servers). What a cluster mailbox promises, and what it
// does not, is in docs/CLUSTER.md; in short:
//
//   - A send is acknowledged only after JetStream's publish
//     acknowledgement: the message is stored on a majority of the
//     stream's replicas.
//   - Each message carries a Nats-Msg-Id derived from the client's
//     request (session, request id, index): a retried request is stored
//     once (within the stream's two-minute duplicate window).
//   - Receivers share one durable pull consumer per type selector with
//     explicit acks; a lease is an unacked delivery, kept alive with
//     in-progress acks and nacked when its connection ends.
//   - The sending broker writes the sender's identity and its host id in
//     Postbox-* headers. Receivers can trust them only if clients cannot
//     publish on the mailbox subjects: give each broker its own NATS user
//     and deny clients postbox.mb.> (docs/CLUSTER.md has a config).
//
// Subjects: mailbox NAME is stream PB_<h> with subjects postbox.mb.<h>.<type>,
// h being the first 32 hex digits of SHA-256(NAME); the stream's metadata
// holds the name, owner, mode and creation time.
package cluster
