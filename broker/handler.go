package broker

import (
	"fmt"
	"os"
	"time"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// handler carries out requests for one connection. It is used only by the
// connection's reader goroutine, so its scratch space needs no lock.
type handler struct {
	c      *conn
	send   wire.Send
	recv   wire.Recv
	leases wire.Leases
	sreq   sendRequest         // scratch: the SEND being handed to its target
	rreq   receiveRequest      // scratch: the RECV or CONSUME being handed to its target
	msgs   []*mailbox.Message  // scratch: a SEND's messages
	ids    []uint64            // scratch: a SEND's ids
	boxes  []*box              // scratch: the mailbox of each lease in an ACK or NACK
	failed []wire.LeaseFailure // scratch: an ACK's failed leases
	now    int64               // when the current frame was read (unix nanoseconds)

	// Descriptors (files.go): those that came with the current frame,
	// until a SEND takes them (the read loop closes the rest); filesCut:
	// some were lost to the control buffer; parked: the last put left
	// its request waiting in the mailbox.
	files    []*os.File
	filesCut bool
	parked   bool
}

func (h *handler) handle(hd wire.Header, p []byte) {
	c := h.c
	if hd.Push() {
		// Malformed; dropped silently if the frame gets no reply (its id
		// belongs to another request).
		if !noReply(hd) {
			c.replyErr(hd, wire.CodeMalformed, "a client frame must not set the PUSH flag")
		}
		return
	}
	switch hd.Op {
	case wire.OpSend:
		h.doSend(hd, p)
	case wire.OpCall:
		h.doCall(hd, p)
	case wire.OpAck, wire.OpNack:
		h.doAck(hd, p)
	case wire.OpRecv:
		h.doRecv(hd, p)
	case wire.OpConsume:
		h.doConsume(hd, p)
	case wire.OpBrowse:
		h.doBrowse(hd, p)
	case wire.OpCredit:
		if !h.subCredit(hd, p) { // a subscription's (pubsub_sub.go), else a consumer's
			h.doCredit(hd, p)
		}
	case wire.OpCancel:
		// A CANCEL has no reply of its own; the request it ends gets its
		// final reply (CANCELED) in the urgent lane.
		c.pmu.Lock()
		pd := c.pending[hd.Request]
		c.pmu.Unlock()
		if pd != nil {
			c.b.cancel(pd, mailbox.ErrCanceled)
		}
		if pd == nil || pd.op == wire.OpCall {
			// A CALL whose request is in, or got in while this CANCEL
			// found it still waiting for room (cancel then did nothing).
			c.cancelCall(hd.Request)
		}
		c.b.ps.cancel(c, hd.Request) // a SUBSCRIBE or a waiting PUBLISH
		if pd == nil {
			c.b.rm.cancel(c, hd.Request)      // a receive from a cluster mailbox (remote_recv.go)
			c.b.notices.cancel(c, hd.Request) // a WATCH (watch.go)
			c.cancelPipeOpen(hd.Request)      // a waiting PIPE_OPEN (pipe.go)
		}
	case wire.OpCreate:
		h.doCreate(hd, p)
	case wire.OpChannel:
		h.doChannel(hd, p)
	case wire.OpShut:
		h.doShut(hd, p)
	case wire.OpPipeOpen:
		h.doPipeOpen(hd, p)
	case wire.OpPipeClose:
		h.doPipeClose(hd, p)
	case wire.OpAttach:
		h.doAttach(hd, p)
	case wire.OpDestroy:
		h.doDestroy(hd, p)
	case wire.OpChmod:
		h.doChmod(hd, p)
	case wire.OpACL:
		h.doACL(hd, p)
	case wire.OpStat:
		h.doStat(hd, p)
	case wire.OpList:
		h.doList(hd, p)
	case wire.OpUsage:
		h.doUsage(hd, p)
	case wire.OpInfo:
		h.doInfo(hd, p) // stats_info.go
	case wire.OpPublish:
		if hd.Flags&wire.FlagPublishBatch != 0 {
			h.doPublishBatch(hd, p)
			break
		}
		h.doPublish(hd, p)
	case wire.OpSubscribe:
		h.doSubscribe(hd, p)
	case wire.OpBind:
		h.doBind(hd, p)
	case wire.OpTopics:
		h.doTopics(hd, p)
	case wire.OpClaim:
		h.doClaim(hd, p)
	case wire.OpWithdraw:
		h.doWithdraw(hd, p)
	case wire.OpPing:
		var m wire.Empty
		if h.decode(hd, p, &m) {
			c.replyEmpty(hd)
		}
	case wire.OpJoin:
		h.doJoin(hd, p) // groups.go
	case wire.OpWatch:
		h.doWatch(hd, p) // watch.go
	case wire.OpHello:
		c.replyErr(hd, wire.CodeHandshake, "HELLO was already exchanged")
	default:
		c.replyErr(hd, wire.CodeUnknownOp, fmt.Sprintf("unknown operation 0x%02x", uint8(hd.Op)))
	}
}

// noReply reports whether the request in hd never gets a reply: CREDIT,
// CANCEL, ACK or NACK with NOREPLY, and SEND with BEST_EFFORT.
func noReply(hd wire.Header) bool {
	switch hd.Op {
	case wire.OpCredit, wire.OpCancel:
		return true
	case wire.OpAck, wire.OpNack:
		return hd.Flags&wire.FlagNoReply != 0
	case wire.OpSend:
		return hd.Flags&wire.FlagBestEffort != 0
	}
	return false
}

// decode decodes a request's payload into m. If it does not decode it
// answers with the status the error maps to (wire.CodeOf: MALFORMED, or
// INVALID for an unknown critical tag or an invalid field) and reports
// false.
func (h *handler) decode(hd wire.Header, p []byte, m interface{ Decode([]byte) error }) bool {
	err := m.Decode(p)
	if err == nil {
		return true
	}
	h.c.replyErr(hd, wire.CodeOf(err), hd.Op.String()+": "+err.Error())
	return false
}

// register reserves req as a pending request id; it reports false if the
// id is already in flight.
func (c *conn) register(req uint64) bool {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if _, dup := c.pending[req]; dup {
		return false
	}
	c.pending[req] = nil
	return true
}

// wait records pd as pending (its id reserved by register) and arms its
// timeout. The box's lock must be held, so that no effect for pd can run
// before it is recorded.
func (c *conn) wait(pd *pending, timeout int64) {
	c.pmu.Lock()
	c.pending[pd.req] = pd
	c.touched[pd.box] = struct{}{}
	c.pmu.Unlock()
	if timeout > 0 {
		pd.timer = time.AfterFunc(time.Duration(timeout), func() { c.b.cancel(pd, mailbox.ErrTimeout) })
	}
}

const badName = "a mailbox name is 1 to 200 characters of A-Z a-z 0-9 . _ : / - (or @<endpoint id> for an inbox)"
