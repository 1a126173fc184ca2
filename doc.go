// Package postbox is the Go client of postbox, an inter-process
// communication system for Linux: a broker (`postbox serve`) that keeps
// named mailboxes, and the vocabulary to use them.
//
// A mailbox is a named queue that outlives the processes using it. Senders
// put messages in; receivers take them out. Every message is stamped by the
// broker with the sender's kernel-verified identity (uid, gid, pid and
// endpoint id), which no client can forge. A mailbox is bounded (a send
// waits for space), unbounded (up to a broker-wide memory limit), or a
// rendezvous (capacity 0: a send completes only when a receiver has taken
// the message). Messages carry a type and a priority: queue order is
// highest priority first, FIFO within a priority, and a receiver may select
// by type with the rules of SysV msgrcv.
//
// A received message is a lease: Ack removes it for good, Nack puts it
// back, and if the receiving process dies first the broker puts it back by
// itself, with its redelivery count incremented, for the next receiver.
//
//	c, err := postbox.Dial(ctx)
//	jobs, err := c.Create(ctx, "jobs", postbox.Capacity(1000), postbox.Mode(0o660))
//	_, err = jobs.Send(ctx, []byte("build #42"), postbox.Priority(5))
//	msg, err := jobs.Receive(ctx)
//	fmt.Println(string(msg.Body), msg.Sender.PID)
//	err = msg.Ack(ctx)
//
// Options say where they apply: Create takes CreateOptions, Send
// SendOptions, Receive ReceiveOptions, Consume ConsumeOptions and
// Publisher PublisherOptions. An option meaningful for several calls is of
// all their types (Type, NoWait, AutoAck, Priority, the headers), and one
// that means nothing for a call does not compile there; the table is at
// CreateOption's declaration.
//
// Messages carry headers, set with SendOptions and read with methods of
// Message: ReplyTo, CorrelationID, ContentType, MessageDeadline and user
// key/values (WithHeader; Message.Header returns a Header, like
// net/http.Header but with case-sensitive keys). The broker forwards them
// byte for byte and checks their limits; the client checks them first
// (ErrInvalid). The sender's identity and the sent time are stamped by the
// broker, never headers.
//
//	_, err = jobs.Send(ctx, req, postbox.ReplyTo(c.Inbox().Name()), postbox.CorrelationID(id))
//	m, err := jobs.Receive(ctx)
//	_, err = c.Mailbox(m.ReplyTo()).Send(ctx, answer, postbox.CorrelationID(m.CorrelationID()))
//
// Request and reply take one round trip: Mailbox.Call sends a request and
// returns the reply (the CALL frame: ReplyTo and CorrelationID are set for
// the caller, the context's deadline travels as MessageDeadline). The
// server answers with Message.Reply, which reaches the caller if its call
// still waits and is dropped otherwise (never queued), and watches
// Message.Interrupted, closed when the caller cancelled or timed out. A
// call that ends without a reply says what became of its request
// (*CallError: withdrawn before anyone saw it, in progress at a receiver,
// or settled without a reply). Package rpc builds typed services,
// invocation semantics and retries on these.
//
//	svc, err := c.Create(ctx, "hello", postbox.Service())
//	reply, err := c.Mailbox("hello").Call(ctx, []byte("world"))
//	// on the server:
//	req, err := svc.Receive(ctx)
//	_, err = req.Reply(ctx, []byte("hi"), postbox.AckRequest())
//
// Batching: Mailbox.SendBatch sends many messages per frame and returns
// their ids (a partial failure is a *BatchError saying how many were
// queued); a Publisher gathers the sends queued while the connection is
// busy writing into shared SEND frames; AckNoWait acks leave as lease
// ranges. A pipelined producer or consumer so spends a fraction of a frame
// per message.
//
// The handshake gives each Client a session (random, or resumed with
// WithSession), the broker's epoch, and the client's Identity, whose Kind
// says how the broker knows it (KindUnix: from the kernel).
//
// A Client is safe for concurrent use and pipelines: many requests are in
// flight on its one connection at once, and frames written meanwhile leave
// in one write. Package internal/mux owns the connection (framing, the call
// table, the writer, the routing of pushed frames); this package holds
// the vocabulary and thin methods over it. Every call that may block takes a context; its deadline is
// passed to the broker as the request's timeout, and cancelling it cancels
// the request at the broker.
//
// Every call returns when its context ends, even if the broker never
// answers. At a deadline the broker normally answers first ("timed out":
// an error matching ErrTimeout, and nothing happened); on a cancel it
// answers CANCELED, or with the result if the request completed first.
// The client waits for that answer up to a grace after the context ended
// (DefaultReplyGrace, see WithReplyGrace); if none comes, the call
// returns an error matching ErrUnknownOutcome as well as ErrTimeout or
// context.Canceled: the request may or may not have taken effect, and its
// reply, should it come later, is discarded safely.
//
// Errors are values to test with errors.Is: ErrFull, ErrEmpty, ErrNotFound,
// ErrExists, ErrPermission, ErrTooLarge, ErrClosed, ErrDestroyed,
// ErrTimeout, ErrStaleLease, ErrLimit and the others in errors.go; each
// maps one-to-one to a status code of the wire protocol (docs/PROTOCOL.md),
// except ErrUnknownOutcome, which the client reports on its own.
package postbox
