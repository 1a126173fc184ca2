// Package mailbox is the delivery core of a postbox mailbox: the queue, the
// waiting senders and receivers, and the leases of delivered messages.
//
// A Mailbox is a deterministic state machine. It has no goroutines, does no
// I/O and never reads a clock: the broker calls it under its own lock with
// an input (a send, a receive, an ack, a nack, a disconnect, a cancellation,
// the current time for expiry) and reads back the decisions it made as
// Effects (deliver this message to that receiver, complete that send, fail
// that waiter, persist this change). That is what makes every rule below
// testable exhaustively and quickly, and what lets the same core run behind
// an in-memory broker and a durable one.
//
// # Queue order and typed receive
//
// Messages are kept in queue order: highest Priority first, and within a
// priority in the order they were accepted (by Seq, the mailbox's own
// increasing sequence number). A message that comes back (its receiver
// nacked it or died) returns to its original position, ahead of everything
// accepted after it.
//
// A receiver selects with a type, following SysV msgrcv(2):
//
//	type == 0   the first message in queue order
//	type  > 0   the first message whose Type equals type
//	type  < 0   the first message with the lowest Type <= |type|
//
// # The urgent lane and withdrawal
//
// An urgent message (Message.Urgent) is delivered ahead of every message
// that is not urgent, whatever their priorities, FIFO among urgent ones;
// selectors still apply. It may enter a full bounded mailbox while fewer
// than UrgentReserve urgent messages are queued. A sender takes back its
// own messages by id or by a match (WithdrawIDs, WithdrawMatching), and
// learns for each whether it was withdrawn, is in progress (leased: who
// holds it), is gone or was never known. See urgent.go.
//
// # Browsing
//
// Browse lists queued messages in the order a succession of receivers
// with the same selector would take them (for a negative selector: lowest
// type first, queue order within a type), a page at a time after a
// Position. It is a query, not a delivery: no lease, no Redeliveries or
// MaxDeliveries count, no effects. Leased messages (in flight) and offered
// messages (a rendezvous or receipted send still waiting) are not listed.
//
// # Waiting
//
// Receivers that find nothing wait in one FIFO list; a new message goes to
// the first waiter whose selector matches it. A consumer (a receiver with
// credit for several messages) moves to the back of the list after each
// delivery, so competing consumers share a mailbox round-robin. Senders
// that find a bounded mailbox full wait in their own FIFO list and are
// admitted in order as space opens.
//
// Capacity 0 is a rendezvous: a sender's message is offered in the queue
// and the send completes only when a receiver takes it (the completion
// carries a Receipt naming the receiver). A send on any mailbox may ask for
// the same behaviour (Receipt). Withdrawing an offer (timeout, cancel) takes
// the message back out: an offered send is all or nothing. A message
// already queued can be withdrawn too (Withdraw: an RPC request whose
// caller gave up); one a receiver took stays taken, and Taker says who.
//
// # Leases
//
//	queued --deliver--> leased --ack--> gone
//	   ^                  |
//	   +--nack/disconnect-+   (Redeliveries+1; past MaxDeliveries: dead letter)
//
// Delivering a message without AutoAck creates a lease with an id from the
// mailbox's LeaseSource. Only the endpoint holding a lease may ack or nack
// it; an ack for a lease that is no longer held (already acked, or returned
// and perhaps leased to someone else under a new id) is rejected with
// ErrStaleLease and changes nothing.
//
// # End of stream
//
// CloseSend closes a mailbox for sending (eof.go): sends fail with
// ErrEndOfStream, and a receiver ends with ErrEndOfStream once no queued
// or leased message matches its selector. ReopenSend undoes it.
//
// # Persistence
//
// A mailbox created with Durable set also emits journal effects
// (EffEnqueued, EffLeased, EffAcked, EffReturned, EffRemoved): exactly the
// changes a store must record to rebuild the mailbox after a crash.
//
// # Concurrency
//
// A Mailbox is not safe for concurrent use; its owner serialises calls.
package mailbox
