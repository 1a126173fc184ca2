// Package framewriter is the one coalescing frame writer of a postbox
// connection, used by the broker for each client and by the Go client for
// its connection.
//
// Producers append whole frames to the writer's buffers under its lock,
// encoding in place (Append's callback appends to the buffer it is given,
// so nothing is copied or allocated). One goroutine, Run, takes everything
// queued and writes it with as few writes as it can: many frames per
// write. While a write is in progress new frames queue up and go out
// together in the next one, so the number of writes adapts to the load.
//
// There are two lanes. Frames appended with urgent set (the URGENT frame
// class of protocol v2: CANCEL, replies to urgent requests) are written
// before every data frame queued at that moment. Frames are never split:
// the writer only ever writes whole frames, and a frame is appended to a
// buffer in one call. Within a lane order is FIFO. A long data backlog is
// written in pieces of at most Config.MaxWrite bytes cut at frame
// boundaries, and urgent frames queued meanwhile go out between pieces,
// so an urgent frame waits behind at most that much data, not behind the
// whole backlog.
//
// Backpressure: Wait blocks while the unwritten backlog (queued plus being
// written) exceeds Config.HighWater, so a reader that produces replies for
// a peer that does not read stops taking requests instead of growing
// memory without bound.
//
// Descriptors: AppendWithFiles attaches files to the frame it appends.
// They are sent with SCM_RIGHTS together with the first bytes of that
// frame (Config.WriteFDs, or the built-in sender for a *net.UnixConn) and
// closed by the writer once written or dropped.
//
// Lifecycle:
//
//	w := framewriter.New(conn, cfg)
//	go w.Run()          // the caller of Run owns it...
//	...
//	w.Close(true)       // ...and stops it: flush what is queued, wait for Run
//
// Close(true) writes what is queued and then stops; Close(false) drops it.
// A write in progress is never interrupted by the writer, which does not
// own the connection: to abort a stuck write, call Shutdown(false), close
// the connection (or set a write deadline), then Close. The first write
// error stops the writer: queued frames are dropped, Done is closed and
// Err returns the error. After Shutdown or an error, Append returns false.
//
// All methods are safe for concurrent use. Config.BeforeWrite runs under
// the writer's lock, just before buffers are taken for a write: it may
// take locks of its own (the writer's lock is always taken first) but must
// not call the Writer.
package framewriter
