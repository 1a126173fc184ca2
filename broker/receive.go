package broker

import (
	"fmt"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// Receiving: RECV (one message, its reply a Delivery), CONSUME (a stream
// of pushed DELIVER frames) and CREDIT.

func (h *handler) doRecv(hd wire.Header, p []byte) {
	m := &h.recv
	if !h.decode(hd, p, m) {
		return
	}
	h.receive(hd, m.Name, m.Type, m.Timeout, false, 0)
}

func (h *handler) doConsume(hd wire.Header, p []byte) {
	var m wire.Consume
	if !h.decode(hd, p, &m) {
		return
	}
	h.receive(hd, m.Name, m.Type, -1, true, m.Credit)
}

// receive starts a one-shot receive or a consumer on the target name
// names, once the Authorizer allows it.
func (h *handler) receive(hd wire.Header, name []byte, typ, timeout int64, consumer bool, credit uint32) {
	c := h.c
	t := h.authorized(hd, "receive from", name, ActReceive)
	if t == nil {
		return
	}
	h.rreq = receiveRequest{c: c, hd: hd, typ: typ, timeout: timeout, consumer: consumer, credit: credit}
	t.receive(&h.rreq)
}

// receive is target.receive for the local queue: it registers a
// one-shot receive or a consumer with the core.
func (bx *box) receive(rr *receiveRequest) {
	c, hd, timeout := rr.c, rr.hd, rr.timeout
	if bx.pipe != nil && bx.pipeRefusesReceive(c, hd) {
		return
	}
	wait := timeout != 0
	if !wait && hd.Flags&wire.FlagAutoAck == 0 && !c.b.quota.mayLease(c, hd, bx.name) {
		return
	}
	if wait && !c.register(hd.Request) {
		c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("request id %d is already in flight", hd.Request))
		return
	}
	pd := &pending{c: c, req: hd.Request, op: hd.Op, urgent: hd.Urgent(), box: bx}
	pd.recv = &mailbox.Receiver{Ref: pd, Ident: c.ident, Type: rr.typ, AutoAck: hd.Flags&wire.FlagAutoAck != 0,
		Consumer: rr.consumer, Credit: rr.credit}

	var r completions
	bx.mu.Lock()
	c.pmu.Lock()
	c.touched[bx] = struct{}{}
	c.pmu.Unlock()
	before := bx.core.HeldBytes()
	err := bx.core.Receive(pd.recv, wait)
	if err == nil && pd.recv.Waiting() {
		c.wait(pd, timeout)
	}
	c.b.apply(bx, bx.core.Effects(), &r) // holds back durable deliveries itself
	c.b.account(bx, before)
	if err != nil || !pd.recv.Waiting() {
		c.finish(pd)
	}
	bx.mu.Unlock()
	r.run()
	if err != nil {
		code := codeOf(err)
		c.replyErr(hd, code, fmt.Sprintf("receive from %q: %s", bx.name, code))
	}
}

func (h *handler) doCredit(hd wire.Header, p []byte) {
	c := h.c
	var m wire.Credit
	if m.Decode(p) != nil {
		return // CREDIT has no reply; a malformed one is ignored
	}
	c.pmu.Lock()
	pd := c.pending[hd.Request]
	c.pmu.Unlock()
	if pd == nil {
		c.b.rm.addCredit(c, hd.Request, m.N) // a cluster mailbox's consumer (remote_recv.go)
		return
	}
	if pd.recv == nil || !pd.recv.Consumer {
		return
	}
	bx := pd.box
	var r completions
	bx.mu.Lock()
	before := bx.core.HeldBytes()
	bx.core.AddCredit(pd.recv, m.N)
	c.b.apply(bx, bx.core.Effects(), &r)
	c.b.account(bx, before)
	bx.mu.Unlock()
	r.run()
}
