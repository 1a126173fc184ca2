package broker

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/store"
	"github.com/postbox-ipc/postbox/wire"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("broker: server closed")

// Broker is a postbox broker. Its methods are safe for concurrent use.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	auth   Authorizer
	limits atomic.Pointer[Limits]

	leases leaseCounter
	// epoch is this run's random non-zero 32-bit value: endpoint ids are
	// epoch<<32 | n, n counting connections from 1 (endpoints).
	epoch     uint64
	endpoints atomic.Uint64
	// held is the body bytes held by all mailboxes together, checked
	// against Limits.MaxQueuedBytes.
	held atomic.Int64
	// nconns counts live connections, checked against MaxConnections.
	nconns atomic.Int64
	quota  *quotaTable // per-uid usage and quotas (quota.go)
	// hs counts handshaking connections (accept.go); warnFD and warnHS
	// rate-limit the descriptor-limit and handshake-bound warnings.
	hs             handshakes
	warnFD, warnHS rateLog
	warnTLS        rateLog // refused TLS handshakes (conn.go)
	// out is the unwritten output of all connections (their writers'
	// backlogs), counted with held against MaxQueuedBytes.
	out atomic.Int64
	// calls counts the CALLs waiting on all connections: destroying a
	// mailbox looks for those whose request it holds only if there are
	// any (call.go).
	calls atomic.Int64

	mu        sync.RWMutex    // guards boxes, named, conns, listeners, closed
	boxes     map[string]*box // named mailboxes and endpoints' inboxes
	named     int             // named mailboxes in boxes (the MaxMailboxes count)
	conns     map[*conn]struct{}
	listeners map[net.Listener]struct{}
	closed    bool

	dmu       sync.Mutex    // guards dead
	dead      []deadLetter  // waiting for the housekeeper to move them
	deadReady chan struct{} // signals the housekeeper that dead is non-empty
	keeping   bool          // the housekeeper runs; guarded by mu

	omu       sync.Mutex // guards offers, uidOffers, each offer's counts and conn.noffers
	offers    map[[16]byte]*offer
	uidOffers map[uint32]int // offers not yet attached, by their maker's uid (channel.go)

	ps         *pubsub    // publish/subscribe (pubsub.go)
	groups     groups     // group membership (groups.go)
	notices    notices    // watches (watch.go)
	fileCounts fileCounts // descriptors held for messages (files.go)

	rm *remotes // cluster mailboxes (remote_box.go); nil without Config.Remote

	st    *store.Store // nil without a data directory, or until it is needed (lazystore.go)
	lazy  lazyStore    // the data directory until the store is opened
	stats stats        // statistics beyond the counts limits keep (stats.go)
	sync  syncer       // completes requests once their records are durable

	wg      sync.WaitGroup // every goroutine the broker started
	done    chan struct{}  // closed by Shutdown/Close: no more accepting
	closing chan struct{}  // closed once connections are being closed
}

// leaseCounter is the broker-wide LeaseSource: lease ids are unique across
// all mailboxes, so an ack names one delivery unambiguously.
type leaseCounter struct{ n atomic.Uint64 }

func (c *leaseCounter) NextLease() uint64 { return c.n.Add(1) }

// New returns a broker with cfg. It panics where Open would fail; use
// Open to handle the error.
func New(cfg Config) *Broker {
	b, err := Open(cfg)
	if err != nil {
		panic(err)
	}
	return b
}

// Open returns a broker with cfg. With a DataDir holding a store it opens
// it (taking its lock: a second broker on the directory fails with
// store.ErrLocked) and recovers the durable mailboxes; a DataDir without
// one is locked if it exists, and the store is created there only when
// the first durable mailbox needs it (lazystore.go).
func Open(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.ConnBounds = cfg.ConnBounds.withDefaults()
	b := &Broker{
		cfg:       cfg,
		log:       cfg.logger(),
		boxes:     make(map[string]*box),
		conns:     make(map[*conn]struct{}),
		listeners: make(map[net.Listener]struct{}),
		done:      make(chan struct{}),
		closing:   make(chan struct{}),
		deadReady: make(chan struct{}, 1),
		offers:    make(map[[16]byte]*offer),
		uidOffers: make(map[uint32]int),
	}
	b.epoch = newEpoch()
	b.stats.start()
	b.quota = newQuotaTable(cfg.Quotas, cfg.MaxQueuedBytes)
	b.auth = cfg.Authorizer
	if b.auth == nil {
		b.auth = ModeAuthorizer{}
	}
	l := cfg.Limits
	b.limits.Store(&l)
	b.sync.cond.L = &b.sync.mu
	if cfg.DataDir != "" {
		if err := b.openDataDir(); err != nil {
			return nil, err
		}
	}
	b.rm = newRemotes(b)
	b.ps = newPubsub(b) // after the store: it restores the bindings of durable mailboxes
	return b, nil
}

// newEpoch picks a random non-zero 32-bit epoch.
func newEpoch() uint64 {
	var e [4]byte
	for {
		rand.Read(e[:])
		if v := binary.LittleEndian.Uint32(e[:]); v != 0 {
			return uint64(v)
		}
	}
}

// Epoch returns this run's epoch: the high 32 bits of every endpoint id.
func (b *Broker) Epoch() uint64 { return b.epoch }

// Limits returns the limits in force.
func (b *Broker) Limits() Limits { return *b.limits.Load() }

// SetLimits replaces the broker-wide limits. MaxMessage cannot exceed what
// MaxFrame allows. Existing mailboxes and connections are not affected
// beyond new requests being checked against the new values.
func (b *Broker) SetLimits(l Limits) error {
	c := b.cfg
	c.Limits = l
	if err := c.Validate(); err != nil {
		return err
	}
	b.limits.Store(&l)
	return nil
}

// Serve accepts connections on l until Shutdown or Close, then returns
// ErrServerClosed. Any stream listener will do; who each peer is comes
// from PeerCredentials (the kernel's peer credentials on a Unix socket,
// KindNone on anything else). ServeWith takes another credential
// function.
func (b *Broker) Serve(l net.Listener) error { return b.ServeWith(l, PeerCredentials) }

// ServeWith is Serve with creds saying who is at the other end of each
// connection l accepts (nil: PeerCredentials).
func (b *Broker) ServeWith(l net.Listener, creds Credentials) error {
	if creds == nil {
		creds = PeerCredentials
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrServerClosed
	}
	b.listeners[l] = struct{}{}
	b.wg.Add(1)
	if !b.keeping {
		b.keeping = true
		b.wg.Add(1)
		go b.housekeep()
	}
	b.mu.Unlock()
	defer b.wg.Done()
	defer func() {
		b.mu.Lock()
		delete(b.listeners, l)
		b.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			select {
			case <-b.done:
				return ErrServerClosed
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				if !isFDLimit(err) {
					b.log.Warn("accept failed; retrying", "err", err, "in", backoff)
				} else if b.warnFD.ok() {
					b.log.Warn("accept: out of file descriptors; raise the descriptor limit or lower max_connections, max_handshaking or the channel offer bounds",
						"err", err, "in", backoff)
				}
				select {
				case <-time.After(backoff):
				case <-b.done:
					return ErrServerClosed
				}
				continue
			}
			return err
		}
		backoff = 0
		b.start(nc, creds)
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// Shutdown stops accepting, fails waiting requests with CodeClosed, lets
// each connection flush what was already written, closes them and waits
// for every goroutine the broker started, or for ctx.
func (b *Broker) Shutdown(ctx context.Context) error {
	conns := b.stop()
	for _, c := range conns {
		c.failPending(mailbox.ErrClosed)
	}
	b.rm.shutdown()      // receives from cluster mailboxes end CLOSED (remote_recv.go)
	b.notices.shutdown() // watch.go
	// Durable requests whose records are being written get their replies
	// before their connections close.
	b.drainSync(ctx)
	b.closeConns()
	for _, c := range conns {
		c.shutdown(true)
	}
	wait := make(chan struct{})
	go func() { b.wg.Wait(); close(wait) }()
	var err error
	select {
	case <-wait:
	case <-ctx.Done():
		for _, c := range conns {
			c.shutdown(false)
		}
		<-wait
		err = ctx.Err()
	}
	b.closeOffers()
	if serr := b.closeStore(); err == nil {
		err = serr
	}
	return err
}

// closeStore closes the store once nothing can write to it any more.
func (b *Broker) closeStore() error {
	if b.st == nil {
		b.releaseDirLock()
		return nil
	}
	return b.st.Close()
}

// Close is Shutdown without waiting for flushes: connections are closed at
// once. It waits for the broker's goroutines.
func (b *Broker) Close() error {
	conns := b.stop()
	b.notices.shutdown() // watch.go
	b.closeConns()
	for _, c := range conns {
		c.shutdown(false)
	}
	b.wg.Wait()
	b.closeOffers()
	return b.closeStore()
}

// stop marks the broker closed, closes listeners and returns the live
// connections.
func (b *Broker) stop() []*conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.done)
		for l := range b.listeners {
			l.Close()
		}
	}
	conns := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	return conns
}

// closeConns marks the point after which nothing more is answered; it
// ends the syncer.
func (b *Broker) closeConns() {
	b.mu.Lock()
	select {
	case <-b.closing:
	default:
		close(b.closing)
	}
	b.mu.Unlock()
	if b.st != nil {
		b.wakeSyncer()
	}
}

// start registers and runs a new connection, or closes it at once past
// the handshake bounds (accept.go).
func (b *Broker) start(nc net.Conn, creds Credentials) {
	uid := acceptUID(nc)
	if !b.hs.admit(uid, b.cfg.MaxHandshaking, b.cfg.MaxHandshakingPerUID) {
		nc.Close()
		if b.warnHS.ok() {
			who := any(uid) // a uid, or a remote peer's address (its count is per IP)
			if uid < 0 {
				who = nc.RemoteAddr().String()
			}
			b.log.Warn("connection closed at accept: too many connections before HELLO",
				"uid", who, "max_handshaking", b.cfg.MaxHandshaking, "per_uid", b.cfg.MaxHandshakingPerUID)
		}
		return
	}
	c := newConn(b, nc, creds)
	c.hsUID = uid
	if b.nconns.Add(1) <= int64(b.Limits().MaxConnections) {
		c.counted = true
	} else {
		b.nconns.Add(-1)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.hs.release(uid)
		if c.counted {
			b.nconns.Add(-1)
		}
		nc.Close()
		return
	}
	b.conns[c] = struct{}{}
	b.wg.Add(2)
	b.mu.Unlock()
	go c.readLoop()
	go c.writeLoop()
}

func (b *Broker) forget(c *conn) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
}

// newBox returns a box without its core, owned by creator: its uid and
// gid if it is a Unix principal, else its kind and name (NoOwnerID for
// uid and gid, so that no local user's ids match them).
func newBox(name string, inbox uint64, creator mailbox.Identity, mode uint32) *box {
	bx := &box{name: name, inbox: inbox, created: time.Now(), ownerKind: PrincipalKind(creator.Kind)}
	if bx.ownerKind == KindUnix {
		bx.uid, bx.gid = creator.UID, creator.GID
	} else {
		bx.uid, bx.gid, bx.ownerName = wire.NoOwnerID, wire.NoOwnerID, creator.Name
	}
	bx.mode.Store(mode)
	return bx
}

// box is one mailbox and what the broker knows about it beyond delivery.
type box struct {
	name string
	// inbox is the owning endpoint for an endpoint's private inbox, else 0.
	inbox uint64
	// owner is that endpoint's connection (nil for a named mailbox): a
	// reply sent to the inbox may be claimed by one of its CALLs.
	owner   *conn
	service bool // created with SERVICE: an RPC service's mailbox
	// pipe is a pipe's ends (pipe.go), nil for a mailbox. The pointer
	// never changes; what it points to is guarded by mu.
	pipe    *pipeState
	created time.Time
	// deadLetter names the mailbox that receives this one's dead letters
	// ("" = they are dropped).
	deadLetter string
	// durable: the core journals and the broker records it in the store.
	durable bool
	// st is the broker's store for a durable mailbox, else nil.
	st *store.Store

	// The creator owns the mailbox: its kind, and its uid and gid
	// (KindUnix) or its name (KindTLS). They never change.
	ownerKind PrincipalKind
	uid, gid  uint32
	ownerName string
	// access is the access entries (ACL, acl.go): replaced whole under
	// mu, read without it like mode. nil: none.
	access atomic.Pointer[[]AccessEntry]
	// mode is the permission bits: stored under mu (so that a durable
	// definition record and the change are in the same order), read
	// without it (authorization happens before a request takes mu).
	mode atomic.Uint32

	// dropped counts best-effort messages not admitted (besteffort.go):
	// MailboxInfo's DROPPED.
	ndropped atomic.Uint64

	mu   sync.Mutex // guards core and the fields below
	core *mailbox.Mailbox
	// moving is set while a dead letter is being added (see journal).
	moving *moving
	// lazyAck is set while acks nobody waits for (ACK with NOREPLY) are
	// applied: their records need no fdatasync of their own.
	lazyAck bool
}

// object is bx as the Authorizer sees it.
func (bx *box) object() Object {
	obj := Object{Name: bx.name, Inbox: bx.inbox, OwnerKind: bx.ownerKind, OwnerName: bx.ownerName, Mode: bx.mode.Load()}
	if bx.ownerKind == KindUnix {
		obj.OwnerUID, obj.OwnerGID = bx.uid, bx.gid
	}
	if a := bx.access.Load(); a != nil {
		obj.Access = *a
	}
	return obj
}

// authorize asks the broker's Authorizer whether c may do act on bx. It
// takes no lock (bx.mode is atomic, the rest of an object never changes).
func (c *conn) authorize(bx *box, act Action) bool {
	return c.b.auth.Authorize(c.who, bx.object(), act) == nil
}

func (b *Broker) lookup(name []byte) *box {
	b.mu.RLock()
	bx := b.boxes[string(name)]
	b.mu.RUnlock()
	return bx
}

// account adds the change in bx's held bytes to the broker-wide total.
// bx.mu must be held; before is core.HeldBytes() before the call.
func (b *Broker) account(bx *box, before int64) {
	if d := bx.core.HeldBytes() - before; d != 0 {
		b.held.Add(d)
	}
}
