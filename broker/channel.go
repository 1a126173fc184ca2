package broker

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/shm"
	"github.com/postbox-ipc/postbox/wire"
)

// Shared-memory channels through the broker.
//
// CHANNEL asks for a channel to a mailbox's receiver or to an endpoint:
// the broker checks that the caller may send there, creates the segment
// (a memfd and a control socket pair: nothing in /dev/shm), and sends an
// offer message whose body is a random 16-byte token. The reply to
// CHANNEL carries side A's descriptors (SCM_RIGHTS). Whoever receives the
// offer, so whoever the mailbox's permissions let read it, presents the
// token with ATTACH and gets side B's descriptors. The token is the
// capability; it works once. The broker keeps no descriptor of a side it
// has handed over, so either client's death is seen by the other through
// the control socket; an offer not taken within ChannelOfferTTL is
// dropped, which its creator sees the same way.

// ChannelOfferTTL is how long an offered channel waits for ATTACH.
const ChannelOfferTTL = time.Minute

// An offer pins two descriptors until it is attached or dropped, so the
// offers not yet attached are bounded per connection
// (Config.MaxOffersPerConn) and per uid (Config.MaxOffersPerUID); CHANNEL
// past either, or when the process is out of descriptors, fails with
// CodeLimit. The counts are taken before the segment is created and given
// back when the offer leaves Broker.offers (unlistOffer), all under
// Broker.omu.

type offer struct {
	token [wire.TokenSize]byte
	timer *time.Timer
	// by and uid are who made it (its counts); listed: it holds them.
	// Guarded by Broker.omu.
	by     *conn
	uid    uint32
	listed bool

	mu sync.Mutex // guards a and b
	// a and b are each side's descriptors (memfd, control socket), each
	// side with its own copy of the memfd. A side's pair is set to nil
	// when it is handed to a connection's writer, which sends and closes
	// it; dropOffer closes whatever is still here.
	a, b []*os.File
}

// take removes and returns one side's descriptors (nil if gone).
func (off *offer) take(side shm.Side) []*os.File {
	off.mu.Lock()
	defer off.mu.Unlock()
	p := &off.a
	if side == shm.SideB {
		p = &off.b
	}
	fs := *p
	*p = nil
	return fs
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

func (h *handler) doChannel(hd wire.Header, p []byte) {
	c, b := h.c, h.c.b
	var m wire.Channel
	if !h.decode(hd, p, &m) {
		return
	}
	if c.caps&wire.CapDescriptors == 0 {
		c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("channel to %q: %s", m.Target, c.noDescriptors()))
		return
	}
	if m.Type < 1 {
		c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("channel to %q: message type must be at least 1, not %d", m.Target, m.Type))
		return
	}
	uid := c.who.UID
	b.omu.Lock()
	switch {
	case c.noffers >= b.cfg.MaxOffersPerConn:
		b.omu.Unlock()
		c.replyErr(hd, wire.CodeLimit, fmt.Sprintf("channel to %q: this connection has %d offers not yet attached, its limit", m.Target, c.noffers))
		return
	case b.uidOffers[uid] >= b.cfg.MaxOffersPerUID:
		n := b.uidOffers[uid]
		b.omu.Unlock()
		c.replyErr(hd, wire.CodeLimit, fmt.Sprintf("channel to %q: uid %d has %d offers not yet attached, its limit", m.Target, uid, n))
		return
	}
	c.noffers++ // reserved while the segment is made
	b.uidOffers[uid]++
	b.omu.Unlock()
	off, err := newOffer(shm.Config{RingSize: int(m.RingSize)})
	if err != nil {
		b.omu.Lock()
		b.uncount(c, uid)
		b.omu.Unlock()
		code := wire.CodeInternal
		switch {
		case isFDLimit(err):
			code = wire.CodeLimit
			if b.warnFD.ok() {
				b.log.Warn("channel: out of file descriptors; raise the descriptor limit or lower the offer bounds", "err", err)
			}
			err = fmt.Errorf("the broker is out of file descriptors: %w", err)
		case m.RingSize != 0:
			code = wire.CodeInvalid
		}
		c.replyErr(hd, code, fmt.Sprintf("channel to %q: %v", m.Target, err))
		return
	}
	off.by, off.uid, off.listed = c, uid, true
	b.omu.Lock()
	b.offers[off.token] = off
	off.timer = time.AfterFunc(ChannelOfferTTL, func() { b.dropOffer(off) })
	b.omu.Unlock()
	msg := &mailbox.Message{Type: m.Type, Priority: m.Priority, Flags: wire.DeliveryChannelOffer,
		Body: append([]byte(nil), off.token[:]...)}
	msgs := append(h.msgs[:0], msg)
	h.put(hd, m.Target, msgs, int64(len(msg.Body)), m.Timeout, off)
	clear(msgs)
	h.msgs = msgs[:0]
}

// newOffer creates a channel segment and splits its descriptors between
// the two sides, each with its own copy of the memfd, so that handing one
// side over can never close or race with the other's.
func newOffer(cfg shm.Config) (*offer, error) {
	seg, err := shm.Create(cfg)
	if err != nil {
		return nil, err
	}
	mem, ctlA := seg.Files(shm.SideA)
	_, ctlB := seg.Files(shm.SideB)
	memB, err := dupFile(mem)
	if err != nil {
		seg.Close()
		return nil, err
	}
	off := &offer{a: []*os.File{mem, ctlA}, b: []*os.File{memB, ctlB}}
	rand.Read(off.token[:])
	return off, nil
}

// dropOffer forgets an offer that will not be attached, closing the
// descriptors not yet handed over.
func (b *Broker) dropOffer(off *offer) {
	b.omu.Lock()
	b.unlistOffer(off)
	b.omu.Unlock()
	if off.timer != nil {
		off.timer.Stop()
	}
	closeFiles(off.take(shm.SideA))
	closeFiles(off.take(shm.SideB))
}

// channelReply answers CHANNEL with side A's descriptors.
func (c *conn) channelReply(hd wire.Header, seq uint64, off *offer) {
	files := off.take(shm.SideA)
	if files == nil {
		c.replyErr(hd, wire.CodeNotFound, "channel: the offer was dropped")
		return
	}
	m := wire.SendReply{IDs: []uint64{seq}}
	h := replyHeader(hd, wire.OK)
	// The writer closes the files after sending: the broker keeps no copy
	// of side A.
	if !c.w.AppendWithFiles(h.Urgent(), files, func(b []byte) []byte {
		b, start := wire.StartFrame(b, h)
		return wire.FinishFrame(m.Append(b), start)
	}) {
		c.b.dropOffer(off) // nobody will use side A: B must see it gone
	}
}

func dupFile(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

func (h *handler) doAttach(hd wire.Header, p []byte) {
	c, b := h.c, h.c.b
	var m wire.Attach
	if !h.decode(hd, p, &m) {
		return
	}
	if c.caps&wire.CapDescriptors == 0 {
		c.replyErr(hd, wire.CodeInvalid, "attach: "+c.noDescriptors())
		return
	}
	b.omu.Lock()
	off := b.offers[m.Token]
	if off != nil {
		b.unlistOffer(off)
	}
	b.omu.Unlock()
	var files []*os.File
	if off != nil {
		off.timer.Stop()
		files = off.take(shm.SideB)
	}
	if files == nil {
		c.replyErr(hd, wire.CodeNotFound, "attach: no such channel offer (already taken, expired, or its broker restarted)")
		return
	}
	rh := replyHeader(hd, wire.OK)
	c.w.AppendWithFiles(rh.Urgent(), files, func(b []byte) []byte { return wire.AppendHeader(b, rh, 0) })
}

// unlistOffer removes off from b.offers and gives back its counts, once.
// b.omu must be held.
func (b *Broker) unlistOffer(off *offer) {
	delete(b.offers, off.token)
	if off.listed {
		off.listed = false
		b.uncount(off.by, off.uid)
	}
}

// uncount gives back one offer of c's and uid's. b.omu must be held.
func (b *Broker) uncount(c *conn, uid uint32) {
	c.noffers--
	if b.uidOffers[uid]--; b.uidOffers[uid] <= 0 {
		delete(b.uidOffers, uid)
	}
}

// closeOffers drops every offer (shutdown).
func (b *Broker) closeOffers() {
	b.omu.Lock()
	offs := make([]*offer, 0, len(b.offers))
	for _, off := range b.offers {
		offs = append(offs, off)
	}
	b.omu.Unlock()
	for _, off := range offs {
		b.dropOffer(off)
	}
}

// noDescriptors says why a connection without DESCRIPTORS cannot take a
// channel: shared memory and descriptors do not cross a network.
func (c *conn) noDescriptors() string {
	if c.uc == nil {
		return "shared-memory channels and descriptor passing need a local Unix socket; this connection is " +
			c.transport() + " (send messages instead)"
	}
	return "needs the DESCRIPTORS capability (asked for at HELLO)"
}

// transport names the connection's transport in messages.
func (c *conn) transport() string {
	switch c.nc.(type) {
	case *tls.Conn:
		return "TLS over TCP"
	case *net.TCPConn:
		return "plain TCP"
	}
	return "not a Unix socket"
}
