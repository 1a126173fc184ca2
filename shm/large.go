package shm

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The memfd tier. A message larger than the pool gets its own memfd: the
// sender creates it, writes the message through a private mapping, unmaps
// it and seals the memfd (no write, grow or shrink, no further seals), so
// the receiver maps an immutable message. The descriptor is handed over
// once on the control socket (SCM_RIGHTS, frameMemfd with a fresh id)
// before the ring record naming that id is published, so by the time the
// receiver reads the record the descriptor is already queued on its
// socket; the watcher goroutine moves it into Chan.fds.
//
// This tier costs syscalls and a mapping per message and allocates; it is
// for messages big enough that those do not matter.

const messageSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL

// reserveMemfd backs c.res with a fresh memfd of c.res.n bytes.
func (c *Chan) reserveMemfd() error {
	fd, err := unix.MemfdCreate("postbox-shm-msg", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		c.res = pending{}
		return fmt.Errorf("shm: memfd_create: %w", err)
	}
	c.res.mf = os.NewFile(uintptr(fd), "postbox-shm-msg")
	if err := unix.Ftruncate(fd, int64(c.res.n)); err != nil {
		c.dropMemfd()
		return fmt.Errorf("shm: ftruncate message: %w", err)
	}
	m, err := unix.Mmap(fd, 0, int(c.res.n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		c.dropMemfd()
		return fmt.Errorf("shm: mmap message: %w", err)
	}
	c.res.mmap, c.res.buf = m, m
	return nil
}

func (c *Chan) dropMemfd() {
	if c.res.mmap != nil {
		unix.Munmap(c.res.mmap)
	}
	if c.res.mf != nil {
		c.res.mf.Close()
	}
	c.res = pending{}
}

// commitMemfd seals the message, hands its descriptor to the peer and
// writes the ring record. The record is published by the caller.
func (c *Chan) commitMemfd() error {
	r := &c.res
	unix.Munmap(r.mmap)
	r.mmap = nil
	if _, err := unix.FcntlInt(r.mf.Fd(), unix.F_ADD_SEALS, messageSeals); err != nil {
		return fmt.Errorf("shm: seal message: %w", err)
	}
	c.nextID++
	var frame [frameSize]byte
	putFrame(frame[:], frameMemfd, c.nextID)
	if _, _, err := c.ctl.WriteMsgUnix(frame[:], unix.UnixRights(int(r.mf.Fd())), nil); err != nil {
		return fmt.Errorf("%w: hand over memfd: %v", ErrPeerGone, err)
	}
	r.mf.Close()
	r.mf = nil
	body := c.prod.data[r.pos+recHeader:]
	binary.LittleEndian.PutUint64(body, r.n)
	binary.LittleEndian.PutUint64(body[8:], c.nextID)
	c.prod.commit(r.pos, memfdDescSize, recMemfd)
	return nil
}

// openMemfd maps the message named by a memfd descriptor (receiver side,
// under recvMu). It waits, per dl, for the watcher to queue the memfd.
func (c *Chan) openMemfd(dl *deadline, length, id uint64) ([]byte, error) {
	if length == 0 || length > c.geo.maxMessage || length > 1<<40 {
		return nil, c.setCorrupt()
	}
	fd, err := c.takeFD(dl, id)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	var st unix.Stat_t
	if err != nil || seals&messageSeals != messageSeals || unix.Fstat(fd, &st) != nil || uint64(st.Size) < length {
		return nil, c.setCorrupt()
	}
	m, err := unix.Mmap(fd, 0, int(length), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: mmap message: %w", err)
	}
	return m, nil
}

// takeFD removes the memfd with the given id from the queue, waiting for
// the watcher to deliver it. The peer sent it before publishing the
// record, so only a broken peer makes this wait long.
func (c *Chan) takeFD(dl *deadline, id uint64) (int, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		c.fdMu.Lock()
		fd, ok := c.fds[id]
		delete(c.fds, id)
		c.fdMu.Unlock()
		if ok {
			return fd, nil
		}
		if err := c.stateErr(); err != nil && err != ErrPeerGone {
			return -1, err
		}
		select {
		case <-c.watchDone:
			// The socket is drained: the memfd never came.
			c.fdMu.Lock()
			_, ok := c.fds[id]
			c.fdMu.Unlock()
			if !ok {
				return -1, c.setCorrupt()
			}
			continue
		default:
		}
		if dl.try {
			return -1, ErrEmpty
		}
		var expire <-chan time.Time
		if !dl.at.IsZero() {
			if timer == nil {
				timer = time.NewTimer(time.Until(dl.at))
			}
			expire = timer.C
		}
		select {
		case <-c.fdReady:
		case <-c.watchDone:
		case <-c.closing:
			return -1, ErrClosed
		case <-dl.done:
			return -1, dl.ctx.Err()
		case <-expire:
			return -1, dl.expired()
		}
	}
}
