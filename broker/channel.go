package broker

import (
	"crypto/rand"
	"fmt"
	"os"
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

type offer struct {
	token [wire.TokenSize]byte
	seg   *shm.Segment
	timer *time.Timer
}

func (h *handler) doChannel(hd wire.Header, p []byte) {
	c, b := h.c, h.c.b
	var m wire.Channel
	if m.Decode(p) != nil {
		c.replyErr(hd, wire.CodeMalformed, "CHANNEL: malformed payload")
		return
	}
	seg, err := shm.Create(shm.Config{RingSize: int(m.RingSize)})
	if err != nil {
		code := wire.CodeInternal
		if m.RingSize != 0 {
			code = wire.CodeInvalid
		}
		c.replyErr(hd, code, fmt.Sprintf("channel to %q: %v", m.Target, err))
		return
	}
	off := &offer{seg: seg}
	rand.Read(off.token[:])
	b.omu.Lock()
	b.offers[off.token] = off
	off.timer = time.AfterFunc(ChannelOfferTTL, func() { b.dropOffer(off) })
	b.omu.Unlock()
	msg := &mailbox.Message{Type: m.Type, Priority: m.Priority, Flags: wire.DeliveryChannelOffer,
		Body: append([]byte(nil), off.token[:]...)}
	h.put(hd, m.Target, msg, m.Timeout, off)
}

// dropOffer forgets an offer that will not be attached.
func (b *Broker) dropOffer(off *offer) {
	b.omu.Lock()
	_, ok := b.offers[off.token]
	delete(b.offers, off.token)
	b.omu.Unlock()
	if ok {
		off.timer.Stop()
		off.seg.Close()
	}
}

// channelReply answers CHANNEL with side A's descriptors. Side B's stay
// with the offer.
func (c *conn) channelReply(req, seq uint64, off *offer) {
	mem, ctl := off.seg.Files(shm.SideA)
	memA, err := dupFile(mem)
	if err != nil {
		c.b.dropOffer(off)
		c.replyErr(wire.Header{Op: wire.OpChannel, Request: req}, wire.CodeInternal, "channel: "+err.Error())
		return
	}
	r := wire.SendReply{ID: seq}
	c.wmu.Lock()
	if c.closing {
		c.wmu.Unlock()
		memA.Close()
		return
	}
	b, start := wire.StartFrame(c.out, wire.Header{Op: wire.OpChannel | wire.OpReply, Request: req})
	c.out = wire.FinishFrame(r.Append(b), start)
	// The writer closes both after sending: the broker keeps no copy of
	// side A's control socket.
	c.fds = append(c.fds, fdFrame{off: start, files: []*os.File{memA, ctl}})
	c.wcond.Signal()
	c.wmu.Unlock()
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
	if m.Decode(p) != nil {
		c.replyErr(hd, wire.CodeMalformed, "ATTACH: malformed payload")
		return
	}
	b.omu.Lock()
	off := b.offers[m.Token]
	delete(b.offers, m.Token)
	b.omu.Unlock()
	if off == nil {
		c.replyErr(hd, wire.CodeNotFound, "attach: no such channel offer (already taken, expired, or its broker restarted)")
		return
	}
	off.timer.Stop()
	mem, ctl := off.seg.Files(shm.SideB)
	c.wmu.Lock()
	if c.closing {
		c.wmu.Unlock()
		off.seg.Close()
		return
	}
	c.out = wire.AppendHeader(c.out, wire.Header{Op: wire.OpAttach | wire.OpReply, Request: hd.Request}, 0)
	c.fds = append(c.fds, fdFrame{off: len(c.out) - wire.HeaderSize, files: []*os.File{mem, ctl}})
	c.wcond.Signal()
	c.wmu.Unlock()
}

// fdFrame is a frame in conn.out that must carry descriptors.
type fdFrame struct {
	off   int // offset of the frame in the buffer
	files []*os.File
}

// writeWithFDs writes buf, attaching each fdFrame's descriptors to the
// first byte of its frame, and closes them once sent (or on failure).
func (c *conn) writeWithFDs(buf []byte, fds []fdFrame) error {
	defer func() {
		for _, f := range fds {
			for _, file := range f.files {
				file.Close()
			}
		}
	}()
	pos := 0
	for _, f := range fds {
		if f.off > pos {
			if _, err := c.nc.Write(buf[pos:f.off]); err != nil {
				return err
			}
		}
		ints := make([]int, len(f.files))
		for i, file := range f.files {
			ints[i] = int(file.Fd())
		}
		n, _, err := c.nc.WriteMsgUnix(buf[f.off:f.off+wire.HeaderSize], unix.UnixRights(ints...), nil)
		if err != nil {
			return err
		}
		pos = f.off + n
	}
	if pos < len(buf) {
		_, err := c.nc.Write(buf[pos:])
		return err
	}
	return nil
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
