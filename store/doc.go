// Package store is the durable half of a postbox mailbox: a segmented
// write-ahead log of mailbox state that the broker writes on every change
// that must survive a crash, and reads back once, on start, to rebuild its
// mailboxes.
//
// The broker's mailbox core stays an in-memory state machine. For a
// durable mailbox the broker shell calls PutMailbox, Append, Lease,
// Return, Ack, DeadLetter and DeleteMailbox as the core decides; each call
// enqueues one record and returns a Ticket at once. Open replays the log
// and hands back Recovered: definitions, live messages in queue order, and
// the next sequence number of every mailbox.
//
//	s, err := store.Open(store.DefaultOptions("/var/lib/postbox"))
//	rec := s.Recovered()                 // rebuild mailboxes from this
//	t := s.Append(&msg)                  // never blocks on the disk
//	if err := t.Wait(ctx); err != nil {} // durable, or why not
//
// # Group commit
//
// Writers encode their record into one shared buffer under a mutex and
// hold a pointer to the current batch. A single writer goroutine takes the
// whole buffer, writes it with one pwrite, makes it durable with one
// fdatasync, applies it to the in-memory index, and closes the batch's done
// channel, which completes every Ticket of the batch at once. While it
// syncs, the next batch gathers. One batch object (a channel and an error)
// is allocated per fsync, nothing per record. Before taking a batch the
// writer yields the processor once, so writers woken by the previous
// batch get their next record into this one; on this machine that raised
// records per fsync with 64 writers from 32 to 47 and doubled throughput.
// Records passed to the store by one goroutine, one call after another,
// are logged in that order.
//
// # Files
//
// Dir holds LOCK and the segments. LOCK is held with flock(LOCK_EX) for as
// long as a Store is open and contains the holder's pid in decimal. A
// segment is named by its id, a 20-digit zero-padded decimal number and
// ".wal" (00000000000000000001.wal); ids start at 1 and only grow. Other
// files are ignored. Every Open starts a new segment; a segment is sealed
// once it has reached SegmentSize (the batch that crosses the line still
// goes into it; batches are never split).
//
// All integers are little-endian; signed ones are two's complement. CRCs
// are CRC-32C (Castagnoli, hash/crc32). A "str" is a u16 length and that
// many bytes.
//
// Segment header, 24 bytes:
//
//	0   8  magic "PBOXWAL1"
//	8   8  u64 segment id (equals the file name's)
//	16  4  zero
//	20  4  u32 CRC of bytes 0..20
//
// Then records, back to back, to the end of the file:
//
//	0   4  u32 CRC of bytes 4..9+n (length, type and payload)
//	4   4  u32 n, payload length (at most 1 GiB)
//	8   1  type
//	9   n  payload
//
// Payloads by type:
//
//	1 Snapshot      u32 count, then count × (Def, u64 next seq)
//	2 PutMailbox    Def
//	3 DeleteMailbox str name
//	4 Append        str mailbox, u64 seq, u8 flags (bit 0: leased,
//	                bit 1: headers follow the body, bit 2: a kind byte
//	                follows), u8 priority, i64 type, u32 sender uid,
//	                u32 sender gid, i32 sender pid, u64 sender endpoint,
//	                i64 sent unix ns, u32 redeliveries, str dead reason,
//	                u32 body length, body, [u32 headers length, headers],
//	                [u8 sender principal kind], [str sender name]
//	                (bit 3: the sender's principal name follows;
//	                bit 4: the message is urgent, no field follows)
//	5 Ack           str mailbox, u64 seq
//	6 Lease         str mailbox, u64 seq
//	7 Return        str mailbox, u64 seq, u32 redeliveries
//	8 DeadLetter    str from, u64 seq, str to, u64 new seq, str reason
//
//	Def = str name, u32 owner uid, u32 owner gid, u32 mode, i64 capacity,
//	      i64 max bytes, i64 ttl ns, u32 max deliveries, str dead letter,
//	      i64 created unix ns, [u8 owner kind, str owner name,
//	      u16 n, n × (str pattern, u8 perms)]
//
// The mode word's low 9 bits are the permission bits; the broker keeps
// its own flags above them: bit 31 a service mailbox, bit 29 closed for
// sending (SHUT). The store itself reads only bit 30.
//
// The bracketed tail of a Def is there when mode bit 30 is set: the
// owner is not a Unix uid (a remote principal created the mailbox), or
// the mailbox has access entries (ACL). A Def without it is laid out as
// before it existed.
//
// The first record of every segment is a Snapshot of every defined
// mailbox (in name order) with its next seq: a segment plus the ones after
// it never need an older segment for definitions or sequence numbers.
// Append flag bit 0 is only set by compaction, when it copies a leased
// message forward. Bits 1 and 2 are set by the writer when the message has
// a headers block (Message.Headers, stored and returned byte for byte) or
// a sender whose principal kind is not Unix (Message.SenderKind); a
// record without them is laid out as before they existed and decodes as a
// Unix sender without headers, so data directories written by earlier
// brokers open unchanged. Compaction and dead-letter moves keep both.
// Bit 4 marks an urgent message (Message.Urgent), so it is back in its
// mailbox's urgent lane after a restart; it adds no field, and a record
// without it is an ordinary message, as every one was before it existed. A
// record names a message by (mailbox, seq); records
// about a message or mailbox that does not exist when replayed are no-ops.
//
// # Durability
//
// When Ticket.Wait returns nil, the record, and every record logged before
// it except those of batches that failed (their Tickets got the error),
// has been written and fdatasync'ed, and the directory entry of its
// segment was fsync'ed when the segment was created, before any record in
// it was acknowledged. A crash at any moment (process kill or power loss)
// therefore cannot lose an acknowledged record, and it cannot make a later
// acknowledged record survive without an earlier one. It can lose records
// whose Wait had not returned nil: those enqueued but not yet written, and
// a batch written but not yet synced, wholly or in part. A Lease is
// usually not waited for; losing one only means the message comes back
// with one redelivery fewer. Wait returning ctx's error says nothing: the
// record may still become durable.
//
// With Options.NoSync nothing is synced. Data written before a process
// crash is still in the page cache and survives it; nothing survives a
// power loss or kernel crash.
//
// The in-memory index (Stats, DiskStats, what compaction copies) is
// updated only after a batch is durable, so it is always exactly what a
// replay of the log would give.
//
// # Recovery
//
// Open takes the lock (ErrLocked names the directory and the holder's
// pid), then replays the segments in id order into the index:
//
//   - A record that is incomplete, has an impossible length or type, or a
//     CRC mismatch is damage. The scanner then looks for the next valid
//     record after it (trying each later offset).
//   - In the newest segment, damage with no valid record after it is a
//     torn tail: the file is truncated there and synced, the byte count is
//     logged (slog Warn, "dropped_bytes") and added to
//     Recovered.DroppedBytes. This is never an error. A newest segment
//     whose header is incomplete or invalid and holds no valid record was
//     being created at the crash and is removed. Note that a bit flip in
//     the very last record of the log cannot be told from a torn write
//     and is treated as one.
//   - Damage followed by a valid record, or damage at the end of a sealed
//     segment (sealed segments were fully synced before the next one was
//     made, so they cannot be torn), is corruption: the damaged range is
//     skipped, logged (slog Error) and listed in Recovered.Corrupt;
//     nothing in it is delivered as data, and every other record of that
//     and every other segment is still replayed. With
//     Options.FailOnCorruption, Open fails with ErrCorrupt instead. What a
//     skipped record costs depends on its type: an Append loses that
//     message; an Ack makes its message come back (delivered again); a
//     Lease or Return leaves the redelivery count off by one; a
//     PutMailbox is restored by the next segment's Snapshot; a lost
//     DeleteMailbox is made good by the next Snapshot, which omits the
//     mailbox. A corrupt segment header is reported but the segment's
//     records are still read. If pages of an unsynced last batch reach
//     the disk out of order, a hole followed by valid records is reported
//     as corruption, although no acknowledged record is involved.
//   - Messages of mailboxes that end up with no definition are dropped
//     and counted in Recovered.Orphaned (logged).
//   - Messages leased at the crash are returned with Redeliveries+1.
//
// Open then starts a new segment (header and Snapshot, fdatasync,
// directory fsync) and logs a Return record with the new count for each
// message that was leased, so a second crash does not count again; only
// then does it return.
//
// # Reclamation and compaction
//
// A segment is deleted (then the directory is fsync'ed) once no live
// message (appended, not acknowledged, not deleted) has its Append record
// in it, and only oldest first: an Ack in a later segment may be what
// keeps a message in an earlier one dead, so a later segment never goes
// before an earlier one.
//
// One long-lived message would so pin every later segment. Compaction
// therefore copies the oldest segment's live messages to the head of the
// log, as Append records carrying their current state (redeliveries,
// lease, dead-letter move), after which the segment is reclaimed. The
// writer goroutine does this in CompactChunkBytes steps between user
// batches, while the oldest sealed segment is at most CompactLivePercent
// live, or while the log holds more than CompactGarbageBytes (default:
// four segments) that are not live messages. So once compaction has
// caught up, the log, and the work of replaying it, is at most the live
// messages plus CompactGarbageBytes plus the active segment: recovery time
// is bounded by live data, not by history. Compact runs it to completion
// on demand. Replay stays correct at every point of a copy: a copy is a
// second Append of the same (mailbox, seq) that replaces the first.
//
// # Bad disks
//
// A failed write (pwrite) fails every Ticket of its batch with
// ErrDiskFull (ENOSPC, EDQUOT), ErrReadOnly (EROFS, EACCES, EPERM) or
// ErrIO (anything else), wrapping the errno (errors.Is works for both).
// The segment is truncated back to where the batch began, so no garbage
// sits before the next batch's records, and the store keeps going: the
// next batch is tried as normal and succeeds once the condition clears
// (the disk-full test frees space and carries on). If a new segment cannot
// be created the store logs it and keeps appending to the current one. A
// compaction write that fails pauses compaction until a user batch
// succeeds.
//
// A full disk must not lock a broker out of freeing space, since acks are
// records too. The store keeps a reserve file, DIR/RESERVE
// (Options.ReserveBytes, 1 MiB, at most 1/16 of the file system). The
// first write that fails with ENOSPC deletes it and puts the store in a
// low-space state: Append and PutMailbox are refused at once with
// ErrDiskFull, compaction stops (it needs room to copy), and every other
// record (Ack, Lease, Return, DeadLetter, DeleteMailbox) is still written,
// into the reserve's room; a batch of only such records that hit ENOSPC is
// retried there. Opening on a full disk works too: Open goes on in the
// newest segment if it cannot start a new one. As acks empty segments they
// are reclaimed; once there is room for three reserves the reserve is
// recreated and new messages are accepted again (Append and PutMailbox
// check the free space, so space freed by someone else counts too). Only
// the writer goroutine writes the reserve: a write method does no disk
// I/O, so it may be called under its caller's locks.
//
// A failed fdatasync is different: the kernel may already have dropped
// the dirty pages and marked them clean, so the store cannot know what
// reached the disk. It then fails for good: that batch and every later
// write get ErrFailed wrapping the cause (DiskStats.Failed says so too).
// The same happens if truncating back after a failed write fails. Close,
// then Open to recover from what is on disk. Nothing acknowledged before
// the failure is affected. Open on a read-only directory fails with
// ErrReadOnly.
//
// # Why written by hand
//
// The module depends on the standard library and x/sys only. Measured on
// this machine with 256-byte durable records, a small group commit beat
// pebble (7–40 k/s with 16 writers, 86 k/s with 64) and bbolt (2–5 k/s),
// and an LSM brings a memtable, levels and its own compaction that this
// log does not need: the broker keeps the state in memory, and the store
// only needs an ordered log whose reclamation follows message
// acknowledgement. Owning the format lets reclamation work on exactly that
// (live messages per segment) and keeps recovery a single pass.
//
// # Performance
//
// go test -run '^$' -bench . -benchmem ./store/ on this machine (2 cores,
// ext4 on a shared virtual disk), one run; rec/s is durable records per
// second, every record waited for:
//
//	                            rec/s   rec/fsync  fsync/s  p50     p99
//	raw write+fdatasync  256 B  3.5 k   1          3,495    205 µs  1.7 ms
//	durable, 1 writer    256 B  4.3 k   1.0        4,337    228 µs  364 µs
//	durable, 16 writers  256 B  52.6 k  14.3       3,668    277 µs  621 µs
//	durable, 64 writers  256 B  138 k   47.6       2,899    374 µs  941 µs
//	NoSync, 64 writers   256 B  425 k   -          -        50 µs   2.0 ms
//	raw write+fdatasync  4 KiB  2.5 k   1          2,507    210 µs  4.6 ms
//	durable, 1 writer    4 KiB  3.3 k   1.0        3,255    290 µs  457 µs
//	durable, 16 writers  4 KiB  27.7 k  14.6       1,897    394 µs  3.8 ms
//	durable, 64 writers  4 KiB  33.7 k  43.6       773      929 µs  9.7 ms
//	NoSync, 64 writers   4 KiB  202 k   -          -        141 µs  4.2 ms
//
// With 64 writers each has one record in flight, so a batch holds at most
// 64 and throughput is about 64 / (time of one to two fsyncs): the store
// is at the disk's limit, not its own (NoSync is 3x faster). The disk is
// shared and noisy: in a busy minute the same 64-writer run gave 22 k/s at
// 32 records per fsync, and raw fdatasync fell to 320/s. The hot path
// allocates nothing per record (0 allocs/op with 16 or 64 writers; one
// batch per fsync). storebench.Run produces the same figures as rows for
// `postbox bench durable`.
//
// # Concurrency
//
// Every method of Store is safe for concurrent use. Open starts one
// goroutine, the writer; Close stops it and waits for it, after writing
// and syncing everything enqueued before Close. The writer alone touches
// the files; the index it maintains is read by Stats and DiskStats under
// a mutex.
package store
