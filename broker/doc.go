// Package broker is the postbox broker: it listens on a Unix stream socket,
// identifies each client from the kernel's peer credentials, speaks the
// wire protocol (package wire, specified in docs/PROTOCOL.md) and keeps the
// named mailboxes, whose delivery rules live in package mailbox.
//
// # Shape
//
// The broker is a thin concurrent shell around deterministic mailbox cores:
//
//   - one reader goroutine per connection decodes frames and carries out
//     each request at once, so a request never waits behind another
//     connection's work;
//   - one writer goroutine per connection drains that connection's output
//     buffer; replies and deliveries from any goroutine are appended to the
//     buffer, so many frames leave in one write (write coalescing);
//   - each mailbox is a mailbox.Mailbox under its own mutex. A request
//     locks only the mailbox it names, calls the core, and carries out the
//     effects the core returns (deliver, complete a send, fail a waiter)
//     by appending frames to the connections concerned.
//
// A blocked send or receive is not a blocked goroutine: it is a waiter
// inside the core plus a pending entry on its connection, completed later
// by whichever goroutine makes the decision (another client's request, a
// timer, a CANCEL, a disconnect). One stuck receiver or flooding sender
// therefore never delays another mailbox or connection.
//
// # Locks
//
// Lock order is box.mu, then Broker.mu (only destroy takes it under a box
// lock), then conn.pmu, then conn.wmu; Broker.mu is never held while
// taking a box lock. See each mutex for what it guards.
//
// Ready, then act: under a box lock the broker only decides. It changes
// the core, submits the core's records to the store (which never touches
// the disk on the caller's goroutine), records pending requests and
// leases, and appends frames to connections' output buffers; every other
// consequence of the step (a completion that withdraws a refused message,
// which takes that same box lock; dropping a channel offer; a log line)
// is collected in a completions list and run once the lock is released,
// or by the syncer goroutine, which holds no lock. No callback ever runs
// under a box lock (ready.go).
//
// # Lifecycle
//
// Open (or New) returns a broker, recovering durable mailboxes when it has
// a data directory; Serve accepts on a listener until Shutdown or Close.
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
// commit completes (durable.go). A destroyed mailbox writes
// nothing more: its deletion is its last record.
//
// # Identity
//
// Each connection's peer credentials are read once, at HELLO, and stamped
// on everything it sends. Where the kernel gives a pidfd (SO_PEERPIDFD),
// the broker ends the connection when that process exits, even if a child
// inherited the socket (pidfd.go).
package broker
