package shm

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Chan is one side of a shared-memory channel: it sends on one ring and
// receives on the other.
//
// Concurrency: every method is safe to call from any goroutine. Sends are
// serialised among themselves and receives among themselves; a send and a
// receive run in parallel. A Reservation is the exception: only one may be
// pending, and starting another send (Send, Reserve, SendBatch) cancels
// it, so reserve-write-commit belongs to one goroutine at a time. Close
// may be called at any time, more than once.
//
// Close unmaps the segment: the bytes of Loans and Reservations still held
// become invalid, like any unmapped memory.
type Chan struct {
	side Side
	cfg  Config // local: Wait and SpinTime; sizes come from the segment
	// inlineMax is the largest message that goes inline in the send ring.
	inlineMax uint64
	mem       []byte
	geo       geometry
	ctl       *net.UnixConn

	// state publishes the stateXxx bits: set by Close, by the watcher when
	// the peer goes, and by whoever finds the segment corrupt. Every
	// operation loads it before touching the mapping.
	state   atomic.Uint32
	closing chan struct{} // closed by Close before it waits

	// sendMu guards prod, txPool, res, resGen and nextID, and the right to
	// write records, pool words (allocation) and control frames.
	sendMu sync.Mutex
	prod   producer
	txPool pool
	res    pending
	resGen uint64
	nextID uint64

	// recvMu guards cons, rxPool and the loan table. A receiver waiting for
	// data drops it (counted in rxWaiters, which Close waits for) so that
	// releases can run meanwhile.
	recvMu    sync.Mutex
	rxWaiters sync.WaitGroup
	cons      consumer
	rxPool    pool
	loans     [MaxLoans]loanSlot
	viewSeq   uint64 // sequence of the next loan
	relSeq    uint64 // oldest loan not yet released; head follows it

	// fdMu guards fds: message memfds received by the watcher, by id,
	// waiting for their descriptor to be read from the ring.
	fdMu      sync.Mutex
	fds       map[uint64]int
	fdReady   chan struct{} // signalled (cap 1) when fds gains an entry
	watchDone chan struct{} // closed when the watcher returns

	// spin is Hybrid's adaptive spin budget in ns, per direction
	// ([spinRecv], [spinSend]; see wait.go).
	spin [2]atomic.Int64

	closeOnce sync.Once
}

const (
	spinRecv = 0
	spinSend = 1
)

const (
	stateClosed   = 1 << iota // Close was called
	statePeerGone             // the control socket hung up
	stateCorrupt              // a check on shared memory failed
)

// maxQueuedFDs bounds the memfds a peer may have in flight.
const maxQueuedFDs = 1024

// Attach maps the channel segment in mem as the given side and starts
// watching ctl, the side's end of the control socket, for the peer's
// hang-up. It is what a broker's clients call with the two files received
// over SCM_RIGHTS (see Segment). Attach does not take ownership of mem or
// ctl: it duplicates what it keeps, and the caller should close both.
func Attach(mem, ctl *os.File, side Side, cfg Config) (*Chan, error) {
	fc, err := net.FileConn(ctl)
	if err != nil {
		return nil, fmt.Errorf("shm: control socket: %w", err)
	}
	uc, ok := fc.(*net.UnixConn)
	if !ok {
		fc.Close()
		return nil, fmt.Errorf("shm: control socket is a %T, not a Unix socket", fc)
	}
	c, err := attach(mem, uc, side, cfg)
	if err != nil {
		uc.Close()
	}
	return c, err
}

// attach takes ownership of ctl on success.
func attach(mem *os.File, ctl *net.UnixConn, side Side, cfg Config) (*Chan, error) {
	if side != SideA && side != SideB {
		return nil, fmt.Errorf("shm: bad side %d", side)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, g, err := mapSegment(mem)
	if err != nil {
		return nil, err
	}
	if !u32At(m, offAttach+uint64(side)*line).CompareAndSwap(0, uint32(os.Getpid())) {
		unix.Munmap(m)
		return nil, fmt.Errorf("%w: side %v", ErrSideTaken, side)
	}
	// Fault the rings in now, not one page at a time as the tail first
	// walks over them (a few µs per page, which showed as the p99 of
	// 64 B round trips with a large ring). Best effort: kernels before
	// 5.14 refuse the advice and fault lazily. The pools stay lazy.
	unix.Madvise(m[g.ringData(0):g.ringData(2)], unix.MADV_POPULATE_WRITE)
	tx, rx := int(side), 1-int(side)
	c := &Chan{
		side:      side,
		cfg:       cfg,
		mem:       m,
		geo:       g,
		ctl:       ctl,
		closing:   make(chan struct{}),
		prod:      producer{ring: ringAt(m, g, tx)},
		txPool:    poolAt(m, g, tx),
		cons:      consumer{ring: ringAt(m, g, rx)},
		rxPool:    poolAt(m, g, rx),
		viewSeq:   1,
		relSeq:    1,
		fds:       make(map[uint64]int),
		fdReady:   make(chan struct{}, 1),
		watchDone: make(chan struct{}),
	}
	// A fresh segment has zero indices; starting from the stored values
	// keeps the two sides consistent either way.
	c.prod.tail = c.prod.ring.tail.Load()
	c.prod.published, c.prod.headCache = c.prod.tail, c.prod.ring.head.Load()
	c.cons.read = c.cons.ring.head.Load()
	c.cons.head, c.cons.published, c.cons.tailCache = c.cons.read, c.cons.read, c.cons.read
	c.inlineMax = inlineLimit(g)
	c.spin[spinRecv].Store(int64(cfg.SpinTime))
	c.spin[spinSend].Store(int64(cfg.SpinTime))
	go c.watch()
	return c, nil
}

// Side reports which side of the segment this end is.
func (c *Chan) Side() Side { return c.side }

// stateErr maps the state bits to the error that ends an operation.
func (c *Chan) stateErr() error {
	s := c.state.Load()
	switch {
	case s == 0:
		return nil
	case s&stateClosed != 0:
		return ErrClosed
	case s&stateCorrupt != 0:
		return ErrCorrupt
	}
	return ErrPeerGone
}

func (c *Chan) setCorrupt() error {
	c.state.Or(stateCorrupt)
	c.wakeLocal()
	return ErrCorrupt
}

// wakeLocal wakes this side's sleepers: the reader on the receive ring and
// the writer on the send ring. Clearing the word first makes a sleeper
// that is about to call FUTEX_WAIT return at once.
func (c *Chan) wakeLocal() {
	c.cons.dataWait.Store(0)
	futexWake(c.cons.dataWait)
	c.prod.roomWait.Store(0)
	futexWake(c.prod.roomWait)
}

// Control frames on the control socket: 16 bytes, magic u32, type u32,
// argument u64. Only two exist: the hello that carries the segment memfd
// (Listen/Dial) and the hand-over of a large message's memfd, whose
// argument is the id its ring descriptor names.
const (
	ctlMagic   = 0x43534250 // "PBSC"
	frameHello = 1
	frameMemfd = 2
	frameSize  = 16
)

func putFrame(b []byte, typ uint32, arg uint64) {
	binary.LittleEndian.PutUint32(b, ctlMagic)
	binary.LittleEndian.PutUint32(b[4:], typ)
	binary.LittleEndian.PutUint64(b[8:], arg)
}

// watch owns reading the control socket. The kernel tells it when the
// peer is gone: the read returns end-of-file when the peer's last
// descriptor for the socket closes, which happens when its process exits
// for any reason, kill -9 included. A stopped peer keeps the socket open
// and is never reported. Memfds for large messages arrive here too.
func (c *Chan) watch() {
	defer close(c.watchDone)
	var buf [frameSize]byte
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, _, _, err := c.ctl.ReadMsgUnix(buf[:], oob)
		fds := parseRights(oob[:oobn])
		if err != nil || (n == 0 && oobn == 0) {
			closeAll(fds)
			c.state.Or(statePeerGone)
			c.wakeLocal()
			c.signalFD()
			return
		}
		if n != frameSize || binary.LittleEndian.Uint32(buf[:]) != ctlMagic ||
			binary.LittleEndian.Uint32(buf[4:]) != frameMemfd || len(fds) != 1 {
			closeAll(fds) // not a frame we expect now: ignore it
			continue
		}
		id := binary.LittleEndian.Uint64(buf[8:])
		c.fdMu.Lock()
		_, dup := c.fds[id]
		if dup || len(c.fds) >= maxQueuedFDs {
			c.fdMu.Unlock()
			closeAll(fds)
			c.setCorrupt()
			continue
		}
		c.fds[id] = fds[0]
		c.fdMu.Unlock()
		c.signalFD()
	}
}

func (c *Chan) signalFD() {
	select {
	case c.fdReady <- struct{}{}:
	default:
	}
}

func parseRights(oob []byte) []int {
	if len(oob) == 0 {
		return nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for i := range msgs {
		if f, err := unix.ParseUnixRights(&msgs[i]); err == nil {
			fds = append(fds, f...)
		}
	}
	return fds
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// Close ends this side: blocked calls return ErrClosed, messages already
// published (including staged ones, which Close publishes) stay readable
// by the peer, and the peer sees ErrPeerGone once it has drained them.
// Close waits for the watcher goroutine and for calls in progress, then
// unmaps the segment. It always returns nil.
func (c *Chan) Close() error {
	c.closeOnce.Do(func() {
		c.state.Or(stateClosed)
		close(c.closing)
		c.wakeLocal()
		c.sendMu.Lock()
		c.cancelLocked()
		c.prod.publish()
		c.recvMu.Lock()
		c.rxWaiters.Wait()
		c.ctl.Close()
		<-c.watchDone
		c.fdMu.Lock()
		for id, fd := range c.fds {
			unix.Close(fd)
			delete(c.fds, id)
		}
		c.fdMu.Unlock()
		for i := range c.loans {
			if m := c.loans[i].mapping; m != nil {
				unix.Munmap(m)
				c.loans[i].mapping = nil
			}
		}
		unix.Munmap(c.mem)
		c.recvMu.Unlock()
		c.sendMu.Unlock()
	})
	return nil
}

// Stats is a snapshot of a channel's resources.
type Stats struct {
	// SendBlocksInUse counts blocks of this side's send pool held by
	// messages in flight or by loans the peer has not released.
	SendBlocksInUse int
	// ReceiveBlocksInUse counts blocks of the peer's pool held by messages
	// waiting here or by this side's unreleased loans.
	ReceiveBlocksInUse int
	// PoolBlocks is the size of each pool, in blocks.
	PoolBlocks int
	// LoansOutstanding counts receive loans this side has not released.
	LoansOutstanding int
	// QueuedMemfds counts large-message memfds received and not yet read.
	QueuedMemfds int
}

// Stats returns a snapshot of the channel's pools and loans.
func (c *Chan) Stats() (Stats, error) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	if c.state.Load()&stateClosed != 0 {
		return Stats{}, ErrClosed
	}
	s := Stats{
		SendBlocksInUse:    c.txPool.inUse(),
		ReceiveBlocksInUse: c.rxPool.inUse(),
		PoolBlocks:         c.txPool.n,
	}
	for seq := c.relSeq; seq < c.viewSeq; seq++ {
		if !c.loans[seq%MaxLoans].released {
			s.LoansOutstanding++
		}
	}
	c.fdMu.Lock()
	s.QueuedMemfds = len(c.fds)
	c.fdMu.Unlock()
	return s, nil
}
