// Package rpc is remote procedure call over postbox: typed methods over
// a pluggable codec, a raw-bytes layer beneath them (the gRPC adapter and
// the CLI use it), and invocation semantics chosen per call.
//
// A service is a mailbox. A server registers handlers for methods of
// services and takes requests from their mailboxes; several servers, in
// one process or many, share a service, and a request goes to whichever
// is free. A call is one postbox CALL (Mailbox.Call): the request goes to
// the service's mailbox and the reply comes back to the caller's inbox in
// one round trip. The headers a request and its reply carry are package
// envelope's convention.
//
//	var Echo = rpc.Method[EchoRequest, EchoReply]{Service: "demo.Echo", Name: "Echo"}
//
//	srv := rpc.NewServer(pc)                  // server side
//	rpc.Register(srv, Echo, func(ctx context.Context, req *EchoRequest) (*EchoReply, error) { ... })
//	srv.Start(ctx)
//
//	reply, err := Echo.Call(ctx, rpc.NewClient(pc), &EchoRequest{...})  // caller side
//
// Values whose pointer is a proto.Message travel as protobuf (Proto), others
// as JSON (JSON); a server answers in the codec a request came in, and
// also accepts JSON for protobuf types. Errors are *Error values with a
// status code (gRPC's code set, envelope.Code); CodeOf reads the code of
// any error.
//
// # A call, on each side
//
// The caller (Client.Invoke):
//
//	state    event                                   result
//	queued   a server takes the request              running
//	queued   ctx canceled / deadline                 Canceled / DeadlineExceeded; OutcomeOf: withdrawn,
//	                                                 the broker removed the request: no handler ever runs it
//	running  the server replies                      the reply (or its error status)
//	running  ctx canceled / deadline                 Canceled / DeadlineExceeded; OutcomeOf: in progress,
//	                                                 the handler's context is canceled
//	running  the server acks without replying        OutcomeOf: settled (it ran, the reply is lost)
//	any      an attempt times out or finds no        at-least-once, exactly-once: the next attempt, same
//	         service mailbox, or the broker refuses  request id, after a pause, until the deadline (package retry)
//	         it as a late copy of an earlier attempt
//	         holds its id (postbox.ErrCallInFlight)
//
// The server, for each request it takes (its consumer's credit is its
// free handlers, so the broker delivers one only when a handler is free:
// requests wait in the mailbox, not in the server):
//
//	check                                            reply (the handler does not run)
//	no reply address or correlation id               none (not a request: acked and dropped)
//	no such method (and no fallback, HandleRaw "")   Unimplemented
//	retrying semantics without a request id          InvalidArgument
//	its deadline has passed                          DeadlineExceeded
//	maybe, and redelivered (its server went away)    Unavailable
//	its caller already gave up (interrupted)         Canceled (dropped: nobody waits)
//	maybe, a copy of a request taken before          AlreadyExists, once that run has replied
//	exactly-once, in the reply cache:
//	  done                                           the cached reply, with rpc-cached=1
//	  running                                        waits for that run, then its reply with rpc-cached=1
//	  same id, other method or arguments             AlreadyExists
//	  acknowledged, or ran and its reply evicted     FailedPrecondition, Aborted
//	  full of running calls                          ResourceExhausted
//	otherwise the handler runs, with a context whose deadline is the caller's and which is
//	canceled when the caller cancels or times out; its reply is sent (and, under exactly-once,
//	cached) when it returns or when it calls Request.Reply; the request is acked when it returns.
//
// At the caller's deadline the handler's context ends with
// context.DeadlineExceeded: the INTERRUPT for the call that ended then
// may arrive before the context's own timer fires, and does not cancel
// it. Its reason (postbox.Message.InterruptReason) is TIMEOUT when the
// broker's timer ended the CALL, CANCELED when the caller's client
// cancelled it as its context's deadline passed, so the server goes by
// the time it arrives. An interrupt before the deadline cancels the
// context, with a Canceled cause (or DeadlineExceeded for a TIMEOUT: a
// CALL whose timeout was shorter than its DEADLINE header).
//
// An attempt of a retried call that times out interrupts its request's
// holder just as a cancel does; the request says when its attempt ends
// (rpc-attempt-deadline), and an interrupt from then on does not cancel
// the handler: the retry, which has the same request id, is waiting for
// the reply the run will send. An attempt of a call whose handler is
// still running is answered by that run (exactly-once joins it;
// at-least-once may run it again on another free handler). Cancelling a
// call after one of its attempts timed out cancels only the runs of
// attempts still within their time.
//
// # Semantics
//
// Maybe (the default): one attempt, never retried, and a redelivered
// request is not run. The handler runs at most once; perhaps not at all.
// That holds also when a faulty transport duplicates or replays a request
// frame: the broker refuses a copy while the call is pending, and the
// server keeps a bounded record of the maybe request ids it took (ids
// only, no replies; MaybeRecord) and does not run a copy of one: it
// refuses the copy with AlreadyExists once the first run has replied,
// holding it until then (a duplicated frame waits in the mailbox beside
// its original while the call waits: a refusal sent before the run's
// reply could answer the call). The record holds an id for a
// retention time (it should exceed the longest deadline) and a bounded
// number of ids, the oldest forgotten first: a copy arriving after its
// id was forgotten, or at another server, runs. A plain Mailbox.Call,
// whose correlation id is no request id, is not recorded.
//
// AtLeastOnce: attempts with the same request id and growing timeouts
// until a reply arrives or the deadline passes. A call that returned a
// reply ran at least once; the handler may run more than once (an attempt
// timed out while it ran, a server died after running it).
//
// ExactlyOnce: AtLeastOnce plus the server's reply cache (package
// replycache), keyed by request id with a checksum of the method and
// arguments. While the server process lives, the handler runs once per
// call: a duplicate of a finished call gets the cached reply, a duplicate
// of a running call waits for that run, a reused id with other arguments
// is rejected. Each request tells the server, in rpc-acked, which earlier
// replies its caller has, and those are released; the rest go after a
// retention time (ReplyCache; it should exceed the longest deadline), and
// the cache is bounded in entries and bytes (the oldest finished entries
// go first, never a running one). An entry evicted for room leaves a
// small record (id and checksum, bounded on its own: replycache.Config's
// MaxEvicted), so a retry of a call whose reply its caller never got is
// answered Aborted rather than run again: while the server lives, a call
// runs once unless its retry comes after the retention time or after
// both bounds have gone around.
//
// # What survives a server crash
//
// Shutdown lets the running handlers finish and leaves queued requests to
// other servers: nothing is lost. Close cancels the running handlers; a
// retried request whose handler then fails goes back to the mailbox for
// another server, a maybe request is answered with the handler's error.
//
// The reply cache is in the server's memory. A request the dead server
// had taken but not acked goes back to the mailbox and another server
// takes it: under maybe it is refused (Unavailable), under at-least-once
// and exactly-once it runs again, since the new server has no record of
// it. A reply the dead server had cached is gone, so a retry of a call it
// had finished runs again too. Likewise the cache belongs to one server:
// when several servers share a service, a retry that another server
// takes runs there again (a retry is rare: it needs an attempt to time
// out). So across a crash, or across servers, exactly-once is
// at-least-once: a handler whose effects must happen once makes them
// idempotent with RequestID(ctx), which is the same for every attempt of a
// call, on every server.
package rpc
