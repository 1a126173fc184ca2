// Package shm moves messages between two processes through memory both
// have mapped, with no kernel in the data path. A channel is a memfd
// segment holding one single-producer single-consumer ring per direction,
// a block pool per direction for large messages, and the control words
// both sides use to hand the rings back and forth. It works with or
// without the postbox broker.
//
// # Why by hand
//
// No well-kept Go library does memfd-backed SPSC rings with futex parking
// and kernel-signalled crash detection. The closest, shmipc-go, measured
// 3.7–5.7 µs round trip on the machine this was developed on, and parks
// on Unix sockets rather than in the segment. The whole mechanism is a
// few hundred lines per concern, kept here with its invariants.
//
// # Setups
//
// Parent and child: NewPair creates a segment and returns the parent's
// end plus two files (the memfd and the child's control socket) to put in
// exec.Cmd.ExtraFiles; the child calls FromInherited(3, 4, cfg).
//
// Unrelated processes: Listen(path, cfg) and Accept on one side,
// Dial(ctx, path, cfg) on the other. The listening socket is a Unix
// SOCK_SEQPACKET socket; Accept checks the dialer's uid (SO_PEERCRED)
// against Config.AllowedUIDs (default: the same uid), creates a segment
// and hands its memfd to the dialer with SCM_RIGHTS. The connection then
// serves as the channel's control socket.
//
// Broker: Create makes a segment and a control socket pair; the broker
// sends each client Files(side) with SendFDs, closes the Segment, and each
// client calls Attach(mem, ctl, side, cfg) with what ReceiveFDs gave it.
//
// Segments are memfds: nothing is ever created in /dev/shm or elsewhere
// in the file system, and the memory goes when the last mapping and
// descriptor do.
//
// # Layout
//
// All offsets are bytes from the start of the segment; nothing in it is a
// pointer. Each control word has its own 128-byte line, so words written
// by different sides never share a cache line (128 bytes also covers the
// adjacent-line prefetcher).
//
//	   0  magic "PBSHMS01" (u64)     8  layout version (u32)
//	  12  header size 4096 (u32)    16  ring size R, per direction (u64)
//	  24  block size B (u64)        32  blocks per pool N (u64)
//	  40  max message (u64)         48  total size (u64)
//	  56  layout hash: FNV-1a of the constants and derived offsets (u64)
//	 128  side A attached: pid (u32)       256  side B attached: pid (u32)
//	 384  ring 0 (A→B) control: tail @384, head @512,
//	      data-waiter futex @640, room-waiter futex @768
//	 896  ring 1 (B→A) control: tail @896, head @1024,
//	      data-waiter futex @1152, room-waiter futex @1280
//	2048  pool 0 block state words (u32 × N)
//	3072  pool 1 block state words (u32 × N)
//	4096  ring 0 data (R bytes), then ring 1 data (R bytes),
//	      then pool 0 (N×B bytes), then pool 1 (N×B bytes)
//
// The creator writes the header and seals the memfd's size; Attach checks
// magic, version, every size, the total against the file size and the
// layout hash before mapping, and claims its side's attach word with a
// compare-and-swap so a side cannot be attached twice.
//
// A ring holds 8-byte-aligned records: an 8-byte header (body length u32,
// kind u8, a 24-bit magic) and the body. Indices are free-running byte
// counts; a record that would cross the end of the data area is preceded
// by a padding record running to the end. Records are inline messages (at
// most R/2-8 bytes: such a record always fits once the ring drains), pool
// descriptors or memfd descriptors. A receiver takes an inline record of
// any size that fits; how large a message a sender puts inline is its own
// choice (see Large messages).
//
// # Memory ordering
//
// The producer writes a record with plain stores and publishes it with an
// atomic store of tail; the consumer atomically loads tail and reads only
// below it. The consumer releases space with an atomic store of head; the
// producer atomically loads head and reuses only below it. A pool run is
// marked in its first block's state word by the producer before the tail
// store that publishes its descriptor, and cleared by the consumer with an
// atomic store when released. Each side caches the other's index and
// re-reads it only when the ring looks full (producer) or empty
// (consumer). Go's atomics are sequentially consistent; the wait protocol
// relies on that. A half-written record is never seen: tail moves only
// after the record is complete, so a writer killed mid-write leaves
// nothing visible.
//
// Several records may be committed and published with one tail store:
// SendBatch, Reservation.Stage with Flush. ReceiveBatch releases several
// with one head store: one per run of records the producer published
// together, stored just before it loads tail again. Receive loans may be released in any order; head
// follows the oldest unreleased loan, pool runs are freed at once.
//
// # Waiting
//
// Three policies (Config.Wait): BusyPoll spins; Hybrid, the default,
// spins and then parks; Park parks at once. Hybrid's spin adapts per
// direction between 2 µs and Config.SpinTime (50 µs): a wait that ends
// while spinning doubles it, one that has to park halves it. A side whose
// peer answers quickly keeps spinning; a side whose peer is asleep parks
// almost at once instead of holding a core the peer needs to wake up on
// (on a small machine that spin was most of the cost of waking a peer).
// Parking uses a 32-bit futex word in the segment (shared, not
// FUTEX_PRIVATE_FLAG, so it works across processes): the sleeper stores 1
// in the word, re-checks the index, and calls FUTEX_WAIT(1); the other
// side stores the index, loads the word, and only if it is 1 swaps it to 0
// and calls FUTEX_WAKE. Either the sleeper sees the new index or the
// writer sees the flag, so no wake-up is lost, and the writer pays a
// syscall only when the reader really sleeps. Writers waiting for ring
// room or pool blocks use the room word the same way. A parked wait
// sleeps at most 25 ms at a time and re-checks its context, deadline and
// the channel state each time; an idle channel under the default policy
// costs well under 1% of a core. A cancellable context wakes the sleeper
// at once (context.AfterFunc), as peer death and Close do.
//
// Parking in Go's network poller on an eventfd exchanged over the control
// socket was tried and measured beside the futex: it woke a sleeping peer
// more slowly (p50 34–43 µs against 19–29 µs in the same runs, same
// adaptive spin), since the poller adds a scheduler hop where the futex
// sleeper's thread just resumes. The futex stays.
//
// # Crash detection
//
// Every channel has a control socket between the two sides (the Listen
// connection or the socket pair of NewPair and Create). A watcher
// goroutine per side blocks reading it. When the peer's process ends for
// any reason, kill -9 included, the kernel closes its descriptors and the
// read returns end-of-file: the watcher marks the peer gone and wakes this
// side's sleepers. Blocked calls return ErrPeerGone at once (within one
// park slice in the worst case); receives first drain whatever the peer
// published. A paused peer (SIGSTOP, a long GC) keeps its socket open and
// is never declared dead; there is no heartbeat to miss. Keep the control
// socket from being inherited by other processes (the descriptors are
// close-on-exec) or a death may go unnoticed.
//
// Everything read from shared memory is read once into a local and
// checked before use: record lengths and kinds, indices against the ring
// size, pool descriptors against the pool and their run's state word,
// memfd descriptors against the seals and size of the received memfd. A
// check that fails makes the channel fail with ErrCorrupt; nothing panics
// or reads out of bounds (FuzzRecordHeader).
//
// # Large messages
//
// Messages up to R/2-8 bytes, and below B/2 when there is a pool, go
// inline in the ring. Larger ones, up to N×B, take a run of contiguous
// pool blocks and only a 16-byte descriptor crosses the ring. The pool
// hands runs out next-fit, round the pool, so a block is rewritten as long
// as possible after the receiver read it; the ring's size (1 MiB by
// default) trades the same effect against latency (Config). Memory the producer rewrites while it is
// still in the consumer's cache costs a cross-core transfer per line:
// with a 256 KiB ring and first-fit blocks, 64 B batches and 64 KiB
// copies ran at a quarter to a fifth of what they do now. The cost is
// resident memory: both rings are faulted in at Attach (2 MiB by
// default), and a pool in use is touched all the way round. When the pool has no free run the sender waits (or
// TrySend returns ErrPoolExhausted); nothing falls back to another tier. A
// receiver that never releases a loan only holds its run: Stats reports
// blocks in use and outstanding loans. Messages above N×B (up to
// Config.MaxMessage) get a dedicated memfd, written by the sender, sealed
// against writes and resizing, and handed over once on the control socket
// with SCM_RIGHTS before the descriptor naming it is published.
//
// Send, Receive, Reserve/Commit, ReceiveLoan/Release and the batch calls
// do not allocate for inline and pool messages.
//
// # Figures
//
// `postbox bench shm` on the development machine (2 shared AMD EPYC
// vCPUs), peer in a separate process, everything in one run with the
// default Config (1 MiB rings); one-way latency = round trip / 2:
//
//	figure (64 B unless noted)                 p50       p99
//	busy-poll, copy                            190 ns    275 ns
//	busy-poll, loan                            245 ns    315 ns
//	default (hybrid), continuous, copy         195 ns    250 ns
//	default (hybrid), continuous, loan         240 ns    310 ns
//	loan 1 MiB, busy-poll / default            295 ns / 345 ns
//	copy 4 KiB, default                        571 ns    841 ns
//	copy 64 KiB, busy-poll / default           19.5 µs / 39.2 µs
//	Unix socket                                16.6 µs   77.4 µs
//	Unix socket, 64 KiB                        32.3 µs   80.1 µs
//	pipe                                       4.2 µs    67.7 µs
//
//	peer asleep (2 ms between 64 B pings)      p50       p99
//	default (adaptive spin, futex)             23.9 µs   130 µs
//	Unix socket, same gaps                     40.2 µs   125 µs
//
//	throughput                                 msgs/s    bytes/s
//	64 B copy, unbatched, default              14.6 M    0.94 GB/s
//	64 B copy, SendBatch of 64, default        49.1 M    3.1 GB/s   (84 M in another run)
//	64 B copy, SendBatch of 64, busy-poll      41.0 M    2.6 GB/s
//	4 KiB copy, unbatched, busy-poll           2.49 M    10.2 GB/s
//	64 KiB copy, unbatched, default            374 k     24.5 GB/s
//	64 KiB copy, unbatched, busy-poll          420 k     27.5 GB/s
//	1 MiB copy (pool), default                 13.3 k    14.0 GB/s
//	64 B Unix socket, one write per message    338 k     22 MB/s
//	64 B pipe                                  1.07 M    69 MB/s
//	64 KiB Unix socket                         46.6 k    3.1 GB/s
//
// Against the aims: busy-poll p50 ≤ 300 ns and p99 ≤ 1 µs, default
// continuous p50 ≤ 1 µs, peer asleep no worse than a socket, 1 MiB loans
// within 1.5× of 64 B, ≥ 10 M unbatched and ≥ 10 GB/s copies at 64 KiB
// are met; ≥ 50 M batched is met in some runs (49-84 M at the default
// 1 MiB ring; a 4 MiB ring gives 72-133 M but triples 64 B latency). The
// throughput work (next-fit pool, messages of half a block or more
// through the pool, batch loops) raised 64 KiB copies from 5-7 GB/s to
// 18-35 GB/s but made a single 64 KiB ping-pong slower (10 µs before,
// 19-39 µs now: each message touches fresh pool memory). The default
// policy's throughput varies more from run to run than busy-poll's:
// Hybrid's adaptive spin can settle into parking between messages. A
// sleeping peer answers faster than a Unix socket peer asleep for as long
// (the fair comparison: that socket's peer sleeps in the poller too), not
// as fast as a socket whose peer never sleeps. Parking on an eventfd
// watched by Go's poller was tried and measured no better than the futex
// (34–43 µs against 19–29 µs in alternating runs), so the futex stays.
//
// In-process (go test -bench, both ends in one process): 0 allocs/op on
// every path. Run-to-run variation on this machine is large (2× is
// common). To reproduce:
//
//	postbox bench shm            (or: POSTBOX_SHMBENCH_FULL=1 go test -run TestRunFull -v ./shm/shmbench)
//	go test -run '^$' -bench . -benchmem ./shm
package shm
