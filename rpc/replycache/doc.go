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
//	      reply was dropped for room,
//	      or of an evicted record)
//	Begin(seq below the session's ack)  -> Acknowledged: the caller has its reply; do not run
//	Begin with no room                  -> Busy: every entry is running (ResourceExhausted)
//	Finish(running id, reply)           -> done; returns the joined waiters
//	Abort(running id)                   -> forgotten; returns the joined waiters
//
// The state of one entry:
//
//	          Begin            Finish             ack / retention
//	(none) ---------> running ---------> done(reply) ---------------------> (none)
//	                     |                   | room (bytes)          room
//	                     | Abort             v                -----------> evicted(id, checksum)
//	                     +--> (none)     done(tombstone) ---> (none)           | MaxEvicted / retention
//	                                                          ack / retention  v
//	                                                                         (none)
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
// forgets the oldest idle session, then evicts the oldest done entry
// (for an entry, the oldest done entry goes at once). Begin answers Busy
// when room cannot be made: every entry is running. "Oldest" skips, while
// there is another, a done entry its caller is known to wait for: its
// sequence is its session's watermark and a later request of the session
// carried that watermark (a call whose reply was lost, retrying while its
// session's other calls go on), whose reply or record would otherwise be
// the first to go.
//
// An evicted entry leaves an evicted record: its id and checksum, no
// reply, about EvictedSize bytes, outside MaxBytes and bounded on its own
// by MaxEvicted (default EvictedPerEntry × MaxEntries), the oldest record
// going first, and released Retention after its call finished as the
// entry would have been. A duplicate of a recorded id is Evicted (the
// server answers Aborted: it ran, its reply is gone), never run. Only a
// duplicate of an id beyond both bounds, or past the retention, runs
// again.
//
// Why records rather than refusing new calls: an entry is released when
// its caller acknowledges it, but a caller that makes one call and stops
// never does, so done entries nobody will ask for again are the common
// case at the bound. Refusing new calls (ResourceExhausted) while the
// cache holds only such entries would let ordinary one-shot traffic shut
// the server for a retention time. Evicting keeps the server serving,
// and the record keeps exactly-once for the caller that still retries,
// at a fraction of an entry's cost; the bounds stay hard.
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
