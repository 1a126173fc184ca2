package mailbox

// Kind says what an Effect asks the owner to do.
type Kind uint8

const (
	// EffDeliver: hand Msg to the receiver Ref, under Lease (0 when
	// auto-acked: the message is gone from the mailbox).
	EffDeliver Kind = iota + 1
	// EffSendDone: the send Ref completed; Msg.Seq is its id. Taken says
	// a receiver already took it, and Receipt who.
	EffSendDone
	// EffFail: the waiter Ref (a Sender or Receiver) ended with Err.
	EffFail
	// EffDeadLetter: Msg exceeded MaxDeliveries (or expired) and left the
	// mailbox. It is also the journal entry of that removal (there is no
	// EffRemoved for it): a durable owner records the move to the
	// dead-letter mailbox, or the drop, as one change. The owner moves it
	// to the dead-letter mailbox, if any. Reason says why.
	EffDeadLetter

	// Journal effects, emitted only by durable mailboxes.

	// EffEnqueued: Msg was accepted (Seq assigned).
	EffEnqueued
	// EffLeased: Msg was handed out under a lease.
	EffLeased
	// EffReturned: Msg came back (nack or disconnect); Msg.Redeliveries is
	// its new count.
	EffReturned
	// EffRemoved: Msg left the mailbox for good (acked, auto-acked or
	// withdrawn; dead letters leave with EffDeadLetter instead).
	EffRemoved

	// EffRelease: Msg left the mailbox holding something (Message.Hold):
	// the owner calls Ref.(Releaser).Release() once it released its lock
	// (release.go). Emitted by every mailbox, durable or not.
	EffRelease
)

// Effect is one decision of the mailbox for its owner to carry out.
type Effect struct {
	Kind    Kind
	Ref     any
	Msg     *Message
	Lease   uint64
	Taken   bool
	Receipt Identity
	Err     error
	Reason  string
}
