package broker

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/postbox-ipc/postbox/internal/rights"
	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// Descriptors on messages (PROTOCOL.md 8.24).
//
// On a Unix socket the reader reads with recvmsg (package rights) and
// hands each frame the descriptors that came with its first byte
// (handler.files). A SEND takes them if it is well-formed for them:
// CapDescriptors granted, a FILES tag whose counts add up to what
// arrived, a mailbox that is not durable, no REPLY or BEST_EFFORT, and
// room under MaxFilesPerConn and MaxFilesPerUID. Otherwise it is refused
// with NO_DESCRIPTORS (or LIMIT) and every descriptor that came with it is
// closed; so are descriptors that came with any other frame.
//
// A message's descriptors are a fileset in its Message.Hold: the
// broker's copies, counted against its sender's connection and uid until
// the mailbox core releases them (mailbox/release.go) when the message
// leaves by any path. Each delivery sends duplicates (which the
// connection's writer closes once written), so a nacked message is
// redelivered with its descriptors. A receiver without CapDescriptors
// gets the message with DeliveryFiles set and no descriptors: they are
// withheld, not closed, and stay with the message until it leaves.

// fileset is the descriptors one message holds (Message.Hold).
type fileset struct {
	files []*os.File
	b     *Broker
	c     *conn // the sender's connection, whose count it is in
	once  sync.Once
}

// Release closes the broker's copies and gives back their count. The
// mailbox asks once; the once guards the broker's own error paths too.
func (s *fileset) Release() {
	s.once.Do(func() {
		closeFiles(s.files)
		s.b.fileCounts.give(s.c, len(s.files))
	})
}

// fileCounts counts the descriptors the broker holds for messages, per
// sending connection and per sender uid.
type fileCounts struct {
	mu    sync.Mutex // guards conns, uids
	conns map[*conn]int
	uids  map[uint32]int
	total int // all held (HeldFiles)
}

// take reserves n for c, or says which limit it would pass.
func (fc *fileCounts) take(c *conn, n int, lim *Limits) string {
	uid := c.ident.UID
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.conns == nil {
		fc.conns, fc.uids = make(map[*conn]int), make(map[uint32]int)
	}
	switch {
	case fc.conns[c]+n > lim.MaxFilesPerConn:
		return fmt.Sprintf("this connection's messages hold %d descriptors; %d more would pass its limit of %d", fc.conns[c], n, lim.MaxFilesPerConn)
	case fc.uids[uid]+n > lim.MaxFilesPerUID:
		return fmt.Sprintf("messages of uid %d hold %d descriptors; %d more would pass the per-uid limit of %d", uid, fc.uids[uid], n, lim.MaxFilesPerUID)
	}
	fc.conns[c] += n
	fc.uids[uid] += n
	fc.total += n
	return ""
}

func (fc *fileCounts) give(c *conn, n int) {
	uid := c.ident.UID
	fc.mu.Lock()
	if fc.conns[c] -= n; fc.conns[c] <= 0 {
		delete(fc.conns, c)
	}
	if fc.uids[uid] -= n; fc.uids[uid] <= 0 {
		delete(fc.uids, uid)
	}
	fc.total -= n
	fc.mu.Unlock()
}

// HeldFiles reports how many descriptors the broker holds for messages.
func (b *Broker) HeldFiles() int {
	b.fileCounts.mu.Lock()
	defer b.fileCounts.mu.Unlock()
	return b.fileCounts.total
}

// frameSource returns what the connection's frame reader reads: on a Unix
// socket a rights.Reader (recvmsg), so that descriptors are seen and
// either taken by their SEND or closed; else the connection itself.
func (c *conn) frameSource() (io.Reader, *rights.Reader) {
	if c.uc == nil {
		return c.nc, nil
	}
	fr := rights.NewReader(c.uc, wire.MaxFrameFiles)
	return fr, fr
}

// framePos is the stream position of the next byte the frame reader r
// will hand out.
func framePos(fr *rights.Reader, r *wire.Reader) int64 {
	if fr == nil {
		return 0
	}
	return fr.Pos() - int64(r.Buffered())
}

// takeFrameFiles sets h.files to the descriptors of the frame just read,
// which began at stream position start.
func (h *handler) takeFrameFiles(fr *rights.Reader, r *wire.Reader, start int64) {
	if fr == nil {
		return
	}
	h.files, h.filesCut = fr.Take(start, framePos(fr, r))
}

// dropFiles closes the current frame's descriptors if nothing took them.
func (h *handler) dropFiles() {
	if h.files != nil {
		closeFiles(h.files)
		h.files = nil
	}
	h.filesCut = false
}

// carriesFiles reports whether a decoded SEND must go the descriptor
// path: descriptors came with it, or it has a FILES tag.
func (h *handler) carriesFiles(m *wire.Send) bool {
	return h.files != nil || h.filesCut || wire.FilesOf(m.Ext) != nil
}

// sendFiles is SEND for a frame that carries descriptors (or says it
// does): the checks of the package comment, then the ordinary path with
// each message holding its own. Descriptors not handed to the mailbox
// core are closed before it returns.
func (h *handler) sendFiles(hd wire.Header, m *wire.Send, size int64) {
	c := h.c
	files := h.files
	h.files = nil
	defer func() { closeFiles(files) }() // until they are handed out below (files = nil)
	refuse := func(why string, args ...any) {
		c.replyErrDone(hd, wire.CodeNoDescriptors, fmt.Sprintf("send to %q: ", m.Target)+fmt.Sprintf(why, args...), 0)
	}
	counts := wire.FilesOf(m.Ext)
	sum := 0
	for _, n := range counts {
		sum += int(n)
	}
	switch {
	case c.caps&wire.CapDescriptors == 0:
		refuse("%s", c.noDescriptors())
		return
	case h.filesCut:
		refuse("more descriptors came with the frame than the broker reads (%d at most): some were lost", wire.MaxFrameFiles)
		return
	case counts == nil:
		refuse("%d descriptors came with a SEND that has no FILES tag", len(files))
		return
	case sum != len(files):
		refuse("FILES counts add up to %d descriptors but %d came with the frame", sum, len(files))
		return
	case hd.Flags&wire.FlagReply != 0:
		refuse("a reply (REPLY flag) cannot carry descriptors")
		return
	}
	t, _, _ := c.b.resolve(m.Target)
	if t != nil {
		bx, ok := t.(*box)
		switch {
		case !ok:
			refuse("this kind of target cannot hold descriptors")
			return
		case bx.durable:
			refuse("a durable mailbox cannot hold descriptors (they would not survive a restart)")
			return
		}
	} // a name that resolves to nothing fails in put, as any SEND's
	if why := c.b.fileCounts.take(c, sum, c.b.limits.Load()); why != "" {
		c.replyErrDone(hd, wire.CodeLimit, fmt.Sprintf("send to %q: %s", m.Target, why), 0)
		return
	}
	msgs := h.messages(m)
	k := 0
	for i, msg := range msgs {
		n := int(counts[i])
		if n == 0 {
			continue
		}
		msg.Hold = &fileset{files: files[k : k+n : k+n], b: c.b, c: c}
		k += n
	}
	files = nil // the filesets own them now
	timeout := m.Timeout
	if len(msgs) > 1 {
		// A batch that would wait part way would hold messages outside
		// the mailbox core, whose descriptors nothing would release if
		// the connection went: a batch with descriptors does not wait.
		timeout = 0
	}
	h.put(hd, m.Target, msgs, size, timeout, nil)
	if !h.parked {
		// Messages the mailbox did not accept (no Seq) are still ours.
		// One that waits (parked: a batch of one) is the core's.
		for _, msg := range msgs {
			if msg.Seq == 0 && msg.Hold != nil {
				msg.Hold.Release()
				msg.Hold = nil
			}
		}
	}
	h.parked = false
	h.release(msgs)
}

// deliveryFiles returns a delivery's flags and the duplicates of its
// message's descriptors to send with it: none for a receiver without
// CapDescriptors (withheld), or if duplicating failed (out of
// descriptors: withheld too, and logged). The mailbox lock is held.
func (c *conn) deliveryFiles(msg *mailbox.Message) (uint8, []*os.File) {
	fs, ok := msg.Hold.(*fileset)
	if !ok {
		return msg.Flags, nil
	}
	flags := msg.Flags | wire.DeliveryFiles
	if c.caps&wire.CapDescriptors == 0 {
		return flags, nil
	}
	dups := make([]*os.File, 0, len(fs.files))
	for _, f := range fs.files {
		d, err := dupFile(f)
		if err != nil {
			closeFiles(dups)
			c.b.log.Warn("descriptors withheld from a delivery: cannot duplicate them", "endpoint", c.id, "id", msg.Seq, "err", err)
			return flags, nil
		}
		dups = append(dups, d)
	}
	return flags, dups
}
