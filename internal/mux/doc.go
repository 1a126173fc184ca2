// Package mux owns one client connection to a postbox broker: framing,
// the handshake, the table of calls waiting for replies, the coalescing
// writer (internal/framewriter) and the routing of every incoming frame.
// The Go client (package postbox) is built on it; mux imports nothing
// from that package, so the vocabulary (messages, options, errors) stays
// at the root and the mechanism here.
//
// Features do not reach into a Conn: they register for the frames they
// care about.
//
//   - A Call is one request with one reply: NewCall, Start, Await, Release.
//   - A Stream (OpenStream) receives the pushed frames whose request field
//     is its id (DELIVER for a CONSUME) and the final reply that ends it.
//   - A Group (NewGroup) receives the replies to many requests made
//     without a Call each (a Publisher's pipelined SENDs), and may append
//     frames of its own just before each write (Flusher), which is how a
//     Publisher batches the sends queued meanwhile into one SEND frame.
//   - RegisterPush handles pushed ops that belong to no stream.
//   - AckNoWait queues leases that are folded into ACK ranges right before
//     each write.
//
// Routing: the reader looks at FlagPush first (a pushed frame is never a
// reply), then at the request id: group bit, then the call table and the
// streams.
//
// A call's life, and who may touch it:
//
//	state        how it gets there                 next
//	started      Start put it in the table          replied, closed, abandoned
//	replied      the reader took it out, filled it   Await returns nil
//	closed       the connection stopped              Await returns the stop error
//	abandoned    Await gave up after the grace       a late reply is discarded:
//	             (it took the call out itself)       its lease nacked, files closed
//
// Whoever takes a call out of the table completes it; Await pools it only
// after that, so a late reply never writes into a reused call.
package mux
