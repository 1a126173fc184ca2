// Package replycache is the exactly-once reply cache of an RPC server: the
// record of which requests have run, which are running, and the replies
// to hand a duplicate instead of running the handler again.
//
// A Cache is a deterministic state machine, like package mailbox: no
// goroutines, no I/O, no clock. The server calls it under its own lock
// with a request (Begin), a finished run (Finish, Abort) or the time
// (Expire), and reads back a Verdict; the current time is passed in as
// nanoseconds and never read. Waiters (whatever the server needs to
// answer a duplicate later, such as the duplicate message) are opaque
// values of type W that the Cache holds and hands back.
//
// # Rules
//
// An entry is keyed by request id (envelope.ID: session + sequence) and
// holds a Checksum of the method and the arguments (Sum).
//
//	Begin(new id)                       -> Run: an entry is running
//	Begin(id of a running entry)        -> Join: the waiter is held until Finish
//	Begin(id of a done entry)           -> Replay: the cached reply, handler not run
//	Begin(id, different checksum)       -> Mismatch: reject (AlreadyExists)
//	Begin(id of a done entry whose      -> Evicted: the call ran, its reply is gone
//	      reply was dropped for room)
//	Begin(seq below the session's ack)  -> Acknowledged: the caller has its reply; do not run
//	Begin with no room                  -> Busy: every entry is running (ResourceExhausted)
//	Finish(running id, reply)           -> done; returns the joined waiters
//	Abort(running id)                   -> forgotten; returns the joined waiters
//
// The state of one entry:
//
//	          Begin            Finish             ack / retention / room
//	(none) ---------> running ---------> done(reply) ---------------------> (none)
//	                     |                   | room (bytes)
//	                     | Abort             v
//	                     +--> (none)     done(tombstone) ---> (none)
//
// # Release
//
// Each request of a session carries rpc-acked: every reply of the session
// with a sequence below it has reached its caller. Begin raises the
// session's watermark to it and releases the session's done entries
// below; a running entry below the watermark is released when it
// finishes. The watermark also fences late duplicates: a request below it
// that is no longer cached is Acknowledged, not run. A done entry is also
// released Retention after it finished, and a session with no entries is
// forgotten Retention after it became idle (with its watermark).
//
// # Bounds
//
// The cache holds at most MaxEntries entries (running and done) and
// MaxBytes bytes: EntryOverhead per entry, SessionOverhead per session,
// plus the size of each kept reply. A running entry is never evicted.
// When room is needed the cache, in this order, drops the reply of the
// oldest done entry that still has one (the entry stays as a tombstone,
// so a duplicate learns the call ran instead of running it again), then
// forgets the oldest idle session, then evicts the oldest done entry. An
// evicted id is forgotten: a duplicate of it runs again. Begin answers
// Busy when room cannot be made.
//
// # Maybe
//
// Seen is the lighter record a server keeps of its maybe requests: ids
// only, bounded in entries and by a retention time, so that a copy of a
// request a faulty transport delivered again is not run a second time.
//
// Times passed in are taken as non-decreasing: a time earlier than one
// seen before counts as that one.
package replycache
