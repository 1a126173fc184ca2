// Package broker is the postbox broker: it serves connections from any
// stream listener (a Unix socket normally), learns who each peer is from
// the listener's credential function (the kernel's peer credentials on a
// Unix socket), speaks the wire protocol, version 2 (package wire,
// specified in docs/PROTOCOL.md) and keeps the named mailboxes, whose
// delivery rules live in package mailbox.
//
// # Shape
//
// The broker is a thin concurrent shell around deterministic mailbox cores:
//
//   - one reader goroutine per connection decodes frames and carries out
//     each request at once, so a request never waits behind another
//     connection's work;
//   - one writer per connection (internal/framewriter, run by the
//     connection's writer goroutine) owns its output: replies and
//     deliveries from any goroutine are appended to it as whole frames
//     and leave many per write (write coalescing). It has two lanes:
//     the reply to an URGENT request and the final reply of a request
//     ended by CANCEL go in the urgent lane, written ahead of queued data
//     (deliveries, other replies), except a CONSUME's final reply, which
//     follows its queued deliveries so that it stays the last frame with
//     its id; a frame is never split;
//   - each mailbox is a mailbox.Mailbox under its own mutex. A request
//     locks only the mailbox it names, calls the core, and carries out the
//     effects the core returns (deliver, complete a send, fail a waiter)
//     by appending frames to the connections concerned.
//
// A blocked send or receive is not a blocked goroutine: it is a waiter
// inside the core plus a pending entry on its connection, completed later
// by whichever goroutine makes the decision (another client's request, a
// timer, a CANCEL, a disconnect). One stuck receiver or flooding sender
// therefore never delays another mailbox or connection. A SEND carries a
// batch of up to 1024 messages: all are checked first, then admitted in
// order; a batch that must wait keeps its remaining messages in its
// pending entry and goes on as room appears (send.go). A SEND with
// BEST_EFFORT gets no reply and never waits: what does not fit at once is
// dropped and counted in its mailbox (besteffort.go).
//
// # Bounds
//
// What a peer that does not read can make the broker hold is bounded
// (backlog.go): a connection's unread output is at most
// Config.MaxConnBacklog, for replies (its reader stops) and deliveries
// (its consumers are stalled in their mailbox cores and resumed when the
// writer has drained to half); a consumer stalled for
// SlowConsumerTimeout is disconnected with a LIMIT reply it can read.
// All connections' unread output counts with the mailboxes' bytes against
// MaxQueuedBytes. Connections count from accept; those before HELLO are
// bounded in total and per uid and closed at accept past the bound
// (accept.go). Channel offers not yet attached are bounded per connection
// and per uid (channel.go). A descriptor limit hit is answered LIMIT.
//
// # Calls
//
// A CALL (call.go) is a one-message SEND whose request waits in its
// connection's call table for the reply: a one-message SEND to the
// caller's inbox with the call's CORRELATION_ID is claimed from there
// before it would be queued, and answers the CALL. A call ended without a
// reply asks the request's mailbox where the request is (withdrawn, leased
// and interrupted, or settled) and says so; whoever takes a call out of
// the table answers it, once.
//
// # Names, targets and permissions
//
// A request's name resolves to a target (target.go): the local queue,
// *box, today; topics and remote mailboxes are meant to be other targets
// behind the same interface. Before a handler calls the target it asks
// the Authorizer (Config.Authorizer, ModeAuthorizer by default: file-like
// mode bits) whether the connection's Principal may do the action on the
// target's Object (auth.go). A principal says how it was established
// (Unix peer credentials, TLS, or nothing); the kind travels with every
// message as its sender's identity.
//
// # Groups and watches
//
// A SEND to "#group" or "@*" is a fan-out (groups.go): a copy of its
// messages for each member (an endpoint's inbox or a named mailbox), each
// admitted as a best-effort send would be, never waiting; the reply counts
// the members that got them (RECIPIENTS). Membership is a deterministic
// table (groups_core.go); a member leaves its groups when its inbox or
// mailbox is destroyed, so an endpoint that dies leaves by itself. A WATCH
// (watch.go) is a streaming request fed from three places: a connection's
// cleanup (notice_exit.go: once per endpoint, with its pidfd saying
// whether the process exited and its exit status), apply (the depth edges
// of a watched mailbox, under its lock: notice_box.go), and CREATE and
// destroy. groups.mu and notices.mu are leaves taken under box.mu; they
// take conn.pmu and writers' locks, never a box lock.
//
// # Locks
//
// Lock order is box.mu, then Broker.mu (only destroy takes it under a box
// lock), then conn.pmu, then the connection writer's lock; Broker.mu is
// never held while taking a box lock. conn.cmu (the call table) is a leaf
// taken under any of them (destroy takes it under box.mu and Broker.mu);
// nothing is locked while it is held. See each mutex for what it guards.
// The Authorizer is called holding no lock.
//
// Ready, then act: under a box lock the broker only decides. It changes
// the core, submits the core's records to the store (which never touches
// the disk on the caller's goroutine), records pending requests and
// leases, and appends frames to connections' writers; every other
// consequence of the step (a completion that withdraws a refused message,
// which takes that same box lock; the next message of a waiting SEND
// batch; dropping a channel offer; a log line) is collected in a
// completions list and run once the lock is released, or by the syncer
// goroutine, which holds no lock. No callback ever runs under a box lock
// (ready.go).
//
// # Quotas
//
// Every uid and every TLS principal (by name; one "anonymous" bucket for
// principals with neither) has
// quotas on its connections, the mailboxes it created, the bytes of the
// messages it sent that mailboxes still hold, and the leases it holds
// (quota.go; Config.Quotas, reported by USAGE, usage.go). They are
// checked before the broker-wide Limits, so the one who floods or hoards
// is refused with LIMIT, naming its quota, before anyone else is. Bytes
// are charged by the mailbox core itself as it holds and releases each
// message (mailbox.Config.Charge, a leaf taken under the box lock: O(1)
// per message, exact across ack, expiry, dead letters and destroy); a
// dead letter stays charged to its original sender. A send over its
// sender's byte quota fails at once (it does not wait). A receiver whose
// uid holds its quota of leases is passed over by the mailbox core
// (mailbox.Config.TryLease) and served again (Retry) once the uid settles
// some; only a receive that cannot wait fails, with LIMIT.
//
// # Lifecycle
//
// Open (or New) returns a broker, recovering durable mailboxes when it has
// a data directory, and picks the run's epoch: a random non-zero 32-bit
// value, the high half of every endpoint id, so that an inbox address
// from a previous run names nothing in this one. Serve (or ServeWith, with
// a credential function) accepts on a listener until Shutdown or Close.
// Shutdown stops accepting, fails waiting requests with CodeClosed,
// answers durable requests whose records are being written, flushes what
// is already written and waits for every goroutine the broker started;
// Close does the same without waiting for flushes to finish. Both make
// Serve return ErrServerClosed.
//
// # Durability
//
// For a durable mailbox the core's journal effects go to the store
// (package store) under the mailbox's lock, so the log holds the core's
// decisions in order, and nothing about the mailbox leaves the broker (a
// reply, a delivery, an ack confirmation) before those records are on
// disk: the syncer goroutine releases each held-back frame when its group
// commit completes (durable.go). Messages are stored with their headers
// and their sender's principal kind. A destroyed mailbox writes nothing
// more: its deletion is its last record.
//
// # Identity
//
// Each connection's principal is established once, at HELLO, and stamped
// on everything it sends. Where the kernel gives a pidfd (SO_PEERPIDFD),
// the broker ends the connection when that process exits, even if a child
// inherited the socket (pidfd.go). A connection on a TLS listener
// (ListenTLS: client certificates required and verified) is a KindTLS
// principal named by its certificate (tls.go), stamped on its messages
// (wire.TagPrincipalName) and owning what it creates; access entries
// (acl.go) say what it may do with other mailboxes. A plain TCP
// connection (ListenTCP, loopback only) has principal kind none. Neither
// has the DESCRIPTORS capability, so no shared-memory channels; nor can
// the kernel say when such a peer died, so the broker closes a connection
// that is not a Unix socket after Config.DeadPeer without a frame from
// it, returning its leases (keepalive.go; the HelloReply tells the client
// to ping).
package broker
