package broker

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// Pipes: a mailbox created with CREATE's PIPE option carries byte chunks
// (one SEND message each, at most wire.PipeAtomic bytes) under fifo(7)
// rules, kept by pipeState beside the mailbox core, under the box's lock:
//
//   - ends: PIPE_OPEN makes a connection the pipe's reader or one of its
//     writers; PIPE_CLOSE, or the connection's end, closes that end. Only
//     a writer may SEND to the pipe; only the active reader may CONSUME
//     or RECV from it.
//   - one active reader: a reader's PIPE_OPEN while another is active
//     waits (standby, in order) and is answered when it becomes the
//     active reader. The chunks the last reader had leased and not acked
//     went back to their place in the core when it left, so the next
//     reader starts at the first chunk not acknowledged.
//   - end of file: when the last writer closes, the core is closed for
//     sending (mailbox/eof.go), so the reader drains the buffer and then
//     gets END_OF_STREAM; a writer opening reopens it. A reader that
//     becomes active on a closed, empty pipe reopens it: it waits for the
//     next writer, as a fifo's open does.
//   - flow control is the core's byte bound (the buffer): a write waits
//     while the buffer is full.
//   - no reader: a writer that has seen a reader since it opened gets
//     NO_READER for writes while the pipe has no reader, and its waiting
//     writes fail so; with WAIT_READER it never does (its PIPE_OPEN
//     waits for a reader, and its writes then just fill the buffer).

// errNoReader fails a pipe write with NO_READER.
var errNoReader = errors.New("broker: no reader")

// pipeState is a pipe's ends. It is guarded by its box's mu.
type pipeState struct {
	writers map[*conn]*pipeWriter // open writer ends
	reader  *conn                 // the active reader, nil if none
	standby []pipeWait            // readers' PIPE_OPENs waiting for their turn, in order
	waiters []pipeWait            // WAIT_READER writers' PIPE_OPENs waiting for a reader

	// Handoff (pipe_direct.go): readerDirect says the active reader
	// opened with DIRECT and can take descriptors; direct is the writer
	// holding a kernel pipe's write end; handoff is that pipe's read end,
	// kept until a reader takes it.
	readerDirect bool
	direct       *conn
	handoff      *os.File
}

type pipeWriter struct {
	waitReader bool // WAIT_READER: never NO_READER
	sawReader  bool // the pipe had a reader since this end opened
}

// pipeWait is a PIPE_OPEN waiting to be answered.
type pipeWait struct {
	c  *conn
	hd wire.Header
}

func newPipe() *pipeState { return &pipeState{writers: make(map[*conn]*pipeWriter)} }

// pipeCreateRule returns why a CREATE with PIPE is refused, or "".
func pipeCreateRule(m *wire.Create) string {
	switch {
	case !m.Pipe:
		return ""
	case m.Durable, m.Service, m.TTL != 0, m.MaxDeliveries != 0, m.DeadLetter != nil, m.MaxBytes != 0:
		return "a pipe takes no DURABLE, SERVICE, TTL, MAX_DELIVERIES, DEAD_LETTER or MAX_BYTES (its buffer is PIPE's value)"
	case m.Capacity != -1:
		return "a pipe's capacity is its buffer in bytes (PIPE); leave capacity -1"
	}
	return ""
}

// pipeBuffer is the byte bound of a pipe created by m.
func pipeBuffer(m *wire.Create) int64 {
	if m.PipeBuffer == 0 {
		return wire.DefaultPipeBuffer
	}
	return int64(m.PipeBuffer)
}

func (h *handler) doPipeOpen(hd wire.Header, p []byte) {
	c := h.c
	var m wire.PipeOpen
	if !h.decode(hd, p, &m) {
		return
	}
	bx := h.pipeTarget(hd, "open", m.Name, m.Role)
	if bx == nil {
		return
	}
	var r completions
	bx.mu.Lock()
	defer func() { bx.mu.Unlock(); r.run() }()
	pp := bx.pipe
	if bx.core.Destroyed() {
		c.replyErr(hd, wire.CodeNotFound, fmt.Sprintf("open pipe %q: no such pipe", m.Name))
		return
	}
	c.pmu.Lock()
	c.touched[bx] = struct{}{}
	c.pmu.Unlock()
	if m.Role == wire.PipeReader {
		if pp.reader == c && hd.Flags&wire.FlagDirect != 0 {
			bx.takeHandoff(c, hd) // the active reader asks for a kernel pipe announced in the stream
			return
		}
		if pp.reader == c || slices.ContainsFunc(pp.standby, func(w pipeWait) bool { return w.c == c }) {
			c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("open pipe %q: this connection already has it open for reading", m.Name))
			return
		}
		if pp.reader != nil {
			pp.standby = append(pp.standby, pipeWait{c, hd}) // answered when its turn comes
			return
		}
		bx.becomeReader(c, hd, &r)
		c.reply(replyHeader(hd, wire.OK), &wire.PipeOpenReply{})
		return
	}
	if pp.writers[c] != nil || slices.ContainsFunc(pp.waiters, func(w pipeWait) bool { return w.c == c }) {
		c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("open pipe %q: this connection already has it open for writing", m.Name))
		return
	}
	wait := hd.Flags&wire.FlagWaitReader != 0
	if wait && pp.reader == nil {
		pp.waiters = append(pp.waiters, pipeWait{c, hd})
		return
	}
	if hd.Flags&wire.FlagDirect != 0 && bx.handOff(c, hd, h.now, &r) {
		return // answered with the write end of a kernel pipe
	}
	bx.openWriter(c, wait, &r)
	c.reply(replyHeader(hd, wire.OK), &wire.PipeOpenReply{})
}

func (h *handler) doPipeClose(hd wire.Header, p []byte) {
	c := h.c
	var m wire.PipeOpen
	if !h.decode(hd, p, &m) {
		return
	}
	bx := h.pipeTarget(hd, "close", m.Name, m.Role)
	if bx == nil {
		return
	}
	var r completions
	bx.mu.Lock()
	pp := bx.pipe
	found := true
	switch {
	case m.Role == wire.PipeReader && pp.reader == c:
		bx.readerLeft(c, true, &r)
	case m.Role == wire.PipeReader:
		found = pp.dropWait(&pp.standby, c)
	case pp.writers[c] != nil:
		bx.writerLeft(c, &r)
	default:
		found = pp.dropWait(&pp.waiters, c)
	}
	bx.mu.Unlock()
	r.run()
	if !found {
		c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("close pipe %q: this connection does not have it open that way", m.Name))
		return
	}
	c.replyEmpty(hd)
}

// pipeTarget resolves a PIPE_OPEN's or PIPE_CLOSE's name to a pipe the
// caller may open in that role (r to read, w to write), or replies and
// returns nil.
func (h *handler) pipeTarget(hd wire.Header, verb string, name []byte, role uint8) *box {
	act := ActReceive
	if role == wire.PipeWriter {
		act = ActSend
	}
	t := h.authorized(hd, verb+" pipe", name, act)
	if t == nil {
		return nil
	}
	bx, ok := t.(*box)
	if !ok || bx.pipe == nil {
		h.c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("%s pipe %q: not a pipe (create it with postbox pipe create)", verb, name))
		return nil
	}
	return bx
}

// dropWait removes c's waiting PIPE_OPEN from list, answering it
// CANCELED; it reports whether there was one. bx.mu is held.
func (pp *pipeState) dropWait(list *[]pipeWait, c *conn) bool {
	i := slices.IndexFunc(*list, func(w pipeWait) bool { return w.c == c })
	if i < 0 {
		return false
	}
	w := (*list)[i]
	*list = slices.Delete(*list, i, i+1)
	if !c.gone.Load() {
		w.c.replyErr(w.hd, wire.CodeCanceled, "open pipe: closed before it opened")
	}
	return true
}

// becomeReader makes c, whose PIPE_OPEN was hd, the active reader.
// bx.mu is held.
func (bx *box) becomeReader(c *conn, hd wire.Header, r *completions) {
	pp := bx.pipe
	pp.reader = c
	pp.readerDirect = hd.Flags&wire.FlagDirect != 0 && c.caps&wire.CapDescriptors != 0
	if bx.core.Closed() && bx.core.AtEnd(0) {
		bx.core.ReopenSend() // the last stream is over: wait for the next writer
	}
	for _, w := range pp.writers {
		w.sawReader = true
	}
	for _, w := range pp.waiters {
		bx.openWriter(w.c, true, r)
		w.c.reply(replyHeader(w.hd, wire.OK), &wire.PipeOpenReply{})
	}
	pp.waiters = pp.waiters[:0]
}

// openWriter opens a writer end for c. bx.mu is held.
func (bx *box) openWriter(c *conn, waitReader bool, r *completions) {
	pp := bx.pipe
	pp.writers[c] = &pipeWriter{waitReader: waitReader, sawReader: pp.reader != nil}
	bx.core.ReopenSend() // emits nothing
}

// writerLeft closes c's writer end; the last one closes the core for
// sending (end of file once the buffer is drained). bx.mu is held.
func (bx *box) writerLeft(c *conn, r *completions) {
	pp := bx.pipe
	delete(pp.writers, c)
	if pp.direct == c {
		pp.direct = nil
	}
	if len(pp.writers) > 0 {
		return
	}
	before := bx.core.HeldBytes()
	bx.core.CloseSend()
	c.b.apply(bx, bx.core.Effects(), r)
	c.b.account(bx, before)
}

// readerLeft ends c's turn as the active reader. On PIPE_CLOSE (closing)
// its receives end CANCELED and its leased chunks go back to their place;
// on a disconnect the core's Disconnect did both. The next standby reader
// takes over; with none, writers that saw a reader and do not wait for
// one have their waiting writes failed NO_READER. bx.mu is held.
func (bx *box) readerLeft(c *conn, closing bool, r *completions) {
	pp := bx.pipe
	b := c.b
	before := bx.core.HeldBytes()
	if closing {
		var recvs []*pending
		var leases []uint64
		c.pmu.Lock()
		for _, p := range c.pending {
			if p != nil && p.box == bx && p.recv != nil {
				recvs = append(recvs, p)
			}
		}
		leases = c.leases.removeBox(bx)
		c.pmu.Unlock()
		for _, p := range recvs {
			bx.core.CancelReceive(p.recv, mailbox.ErrCanceled)
			b.apply(bx, bx.core.Effects(), r)
		}
		slices.Sort(leases) // back in the order they were handed out
		for _, l := range leases {
			if bx.core.Nack(c.id, l) == nil {
				b.apply(bx, bx.core.Effects(), r)
			}
		}
	}
	pp.reader, pp.readerDirect = nil, false
	for len(pp.standby) > 0 {
		w := pp.standby[0]
		pp.standby = slices.Delete(pp.standby, 0, 1)
		if w.c.gone.Load() {
			continue
		}
		bx.becomeReader(w.c, w.hd, r)
		w.c.reply(replyHeader(w.hd, wire.OK), &wire.PipeOpenReply{})
		b.account(bx, before)
		return
	}
	for wc, w := range pp.writers {
		if w.sawReader && !w.waitReader {
			bx.failWrites(wc, r)
		}
	}
	b.account(bx, before)
}

// failWrites fails c's writes to bx that wait for room with NO_READER.
// bx.mu is held.
func (bx *box) failWrites(c *conn, r *completions) {
	var sends []*pending
	c.pmu.Lock()
	for _, p := range c.pending {
		if p != nil && p.box == bx && p.send != nil {
			sends = append(sends, p)
		}
	}
	c.pmu.Unlock()
	for _, p := range sends {
		if bt := p.batch; bt != nil && !p.send.Waiting() && bt.err == nil {
			bt.err = errNoReader // between two admissions: continueSend ends it
		}
		bx.core.CancelSend(p.send, errNoReader)
		c.b.apply(bx, bx.core.Effects(), r)
	}
}

// pipeLeft closes the ends c had on bx when c goes away, after the
// core's Disconnect returned its leases. bx.mu is held.
func (bx *box) pipeLeft(c *conn, r *completions) {
	pp := bx.pipe
	if pp == nil {
		return
	}
	pp.dropWait(&pp.standby, c)
	pp.dropWait(&pp.waiters, c)
	if pp.writers[c] != nil {
		bx.writerLeft(c, r)
	}
	if pp.reader == c {
		bx.readerLeft(c, false, r)
	}
}

// pipeDestroyed answers the PIPE_OPENs still waiting on a destroyed pipe.
// bx.mu is held.
func (bx *box) pipeDestroyed() {
	pp := bx.pipe
	if pp == nil {
		return
	}
	for _, w := range append(pp.standby, pp.waiters...) {
		w.c.replyErr(w.hd, wire.CodeDestroyed, "open pipe: destroyed")
	}
	pp.standby, pp.waiters = nil, nil
	if pp.handoff != nil {
		pp.handoff.Close()
		pp.handoff = nil
	}
}

// pipeRefusesWrite checks a SEND to a pipe: it needs the sender's
// writer end, chunks of at most wire.PipeAtomic bytes without headers,
// and a reader unless the writer never saw one or waits for one. It
// returns OK or the status and text to refuse with. bx.mu is held.
func (bx *box) pipeRefusesWrite(c *conn, msgs []*mailbox.Message) (wire.Code, string) {
	w := bx.pipe.writers[c]
	if w == nil {
		return wire.CodeInvalid, "open the pipe for writing first (PIPE_OPEN)"
	}
	for i, msg := range msgs {
		if msg.Type != wire.PipeData {
			return wire.CodeInvalid, fmt.Sprintf("chunk %d: a pipe chunk has type %d, not %d", i, wire.PipeData, msg.Type)
		}
		if len(msg.Headers) > 0 || len(msg.Body) > wire.PipeAtomic {
			return wire.CodeTooLarge, fmt.Sprintf("chunk %d: a pipe chunk is at most %d bytes without headers", i, wire.PipeAtomic)
		}
	}
	if bx.pipe.reader == nil && w.sawReader && !w.waitReader {
		return wire.CodeNoReader, "no reader"
	}
	return wire.OK, ""
}

// pipeRefusesReceive reports (and answers) a RECV or CONSUME on a pipe
// from a connection that is not its active reader.
func (bx *box) pipeRefusesReceive(c *conn, hd wire.Header) bool {
	bx.mu.Lock()
	refused := !bx.core.Destroyed() && bx.pipe.reader != c
	bx.mu.Unlock()
	if refused {
		c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("receive from pipe %q: open it for reading first (PIPE_OPEN), and wait for your turn", bx.name))
	}
	return refused
}

// pipeMayWrite checks a SEND to a pipe (pipeRefusesWrite) and answers
// one refused (a best-effort one is dropped silently).
func (bx *box) pipeMayWrite(sr *sendRequest) bool {
	bx.mu.Lock()
	code, why := bx.pipeRefusesWrite(sr.c, sr.msgs)
	bx.mu.Unlock()
	if code == wire.OK {
		return true
	}
	if !sr.bestEffort {
		sr.c.sendErr(sr.hd, []byte(bx.name), sr.off, 0, code, why)
	}
	return false
}

// cancelPipeOpen ends c's PIPE_OPEN with request id req if it is waiting
// (a reader's for its turn, a WAIT_READER writer's for a reader): it is
// answered CANCELED, in the urgent lane as every request ended by CANCEL.
// It reports whether there was one.
func (c *conn) cancelPipeOpen(req uint64) bool {
	c.pmu.Lock()
	var pipes []*box
	for bx := range c.touched {
		if bx.pipe != nil {
			pipes = append(pipes, bx)
		}
	}
	c.pmu.Unlock()
	for _, bx := range pipes {
		bx.mu.Lock()
		pp := bx.pipe
		found := pp.cancelWait(&pp.standby, c, req) || pp.cancelWait(&pp.waiters, c, req)
		bx.mu.Unlock()
		if found {
			return true
		}
	}
	return false
}

// cancelWait removes c's waiting PIPE_OPEN req from list and answers it
// CANCELED. bx.mu is held.
func (pp *pipeState) cancelWait(list *[]pipeWait, c *conn, req uint64) bool {
	i := slices.IndexFunc(*list, func(w pipeWait) bool { return w.c == c && w.hd.Request == req })
	if i < 0 {
		return false
	}
	w := (*list)[i]
	*list = slices.Delete(*list, i, i+1)
	w.hd.Flags |= wire.FlagUrgent
	c.replyErr(w.hd, wire.CodeCanceled, "open pipe: canceled")
	return true
}
