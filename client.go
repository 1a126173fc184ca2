package postbox

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/postbox-ipc/postbox/internal/mux"
	"github.com/postbox-ipc/postbox/wire"
)

// IdentityKind says how the broker established an Identity.
type IdentityKind uint8

const (
	// KindUnknown: the broker could not tell (no credentials).
	KindUnknown = IdentityKind(wire.PrincipalNone)
	// KindUnix: the kernel told the broker (SO_PEERCRED, pidfd): UID,
	// GID and PID are meaningful.
	KindUnix = IdentityKind(wire.PrincipalUnix)
	// KindTLS: a peer identified by its verified TLS client certificate:
	// Name is the certificate's URI SAN, else its subject.
	KindTLS = IdentityKind(wire.PrincipalTLS)
)

func (k IdentityKind) String() string {
	switch k {
	case KindUnknown:
		return "unknown"
	case KindUnix:
		return "unix"
	case KindTLS:
		return "tls"
	}
	return fmt.Sprintf("kind %d", uint8(k))
}

// Identity is who a process is, as the broker established it: the sender
// of a message, the receiver named by a receipt, or this client.
type Identity struct {
	// Kind says how the broker knows; UID, GID and PID are meaningful for
	// KindUnix.
	Kind     IdentityKind
	UID, GID uint32
	PID      int32
	// Endpoint is the broker-assigned id of the connection; its inbox is
	// "@<Endpoint>". Endpoint ids are never reused, even across broker
	// restarts (their high 32 bits are the broker's Epoch).
	Endpoint uint64
	// Name is a KindTLS peer's principal name (its certificate's URI SAN,
	// else its subject DN), stamped by the broker like UID; "" otherwise.
	Name string
}

func identityOf(w wire.Identity) Identity {
	return Identity{Kind: IdentityKind(w.Kind), UID: w.UID, GID: w.GID, PID: w.PID, Endpoint: w.Endpoint}
}

// identityWithName is identityOf with the PRINCIPAL_NAME of the ext tail
// that came with it.
func identityWithName(w wire.Identity, ext []byte) Identity {
	id := identityOf(w)
	if len(ext) > 0 {
		id.Name, _ = wire.PrincipalName(ext)
	}
	return id
}

// Session identifies a client across its connections: a Client sends it
// in its handshake, and one that reconnects with WithSession is known to
// the broker as the same session (its logs, and later exactly-once
// replies, key on it).
type Session [16]byte

// String returns the session in hex.
func (s Session) String() string { return hex.EncodeToString(s[:]) }

// IsZero reports whether s is all zero (no session).
func (s Session) IsZero() bool { return s == Session{} }

// ParseSession parses the hex form String returns.
func ParseSession(s string) (Session, error) {
	var id Session
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%w: session %q: want 32 hex digits", ErrInvalid, s)
	}
	copy(id[:], b)
	return id, nil
}

// Client is a connection to a broker. It is safe for concurrent use.
//
// With WithReconnect a Client outlives its connections (reconnect.go):
// everything that belongs to one connection is in a link, swapped as a
// whole when the client reconnects.
type Client struct {
	l       atomic.Pointer[link] // the current connection
	session Session
	grace   time.Duration // see WithReplyGrace
	rc      *reconnector  // nil without WithReconnect

	corrPrefix [8]byte       // random: the first half of generated CORRELATION_IDs
	corrSeq    atomic.Uint64 // their second half
	intr       interrupts    // INTERRUPTs received (call.go)
}

// link is one connection of a Client and what its handshake said. It
// never changes once made.
type link struct {
	m          *mux.Conn
	self       Identity
	epoch      uint64
	caps       uint64
	maxMessage int
	maxFrame   int
	server     string
	inbox      string      // this connection's inbox address, a CALL's REPLY_TO
	session    Session     // the session the broker says is in effect
	events     eventChunks // the reader's: what its subscriptions' events are cut from
}

// DialOption configures Dial and NewClient.
type DialOption func(*dialOptions)

type dialOptions struct {
	socket    string
	socketSet bool        // WithSocket was given
	url       string      // WithURL
	tls       *tls.Config // WithTLS
	name      string
	grace     time.Duration
	session   Session
	dialer    func(context.Context) (net.Conn, error) // WithDialer
	reconnect *ReconnectPolicy                        // WithReconnect
	redial    func(context.Context) (net.Conn, error) // how Dial dialled: set by Dial only
}

func dialDefaults(opts []DialOption) dialOptions {
	o := dialOptions{socket: DefaultSocketPath(), name: filepath.Base(os.Args[0]), grace: DefaultReplyGrace}
	for _, opt := range opts {
		opt(&o)
	}
	if len(o.name) > wire.MaxClientName {
		o.name = o.name[:wire.MaxClientName]
	}
	return o
}

// WithSocket dials path instead of DefaultSocketPath().
func WithSocket(path string) DialOption {
	return func(o *dialOptions) { o.socket, o.socketSet = path, true }
}

// WithDialer makes Dial (and each reconnect, see WithReconnect) connect
// with dial instead of dialling the socket path: any net.Conn that
// reaches a broker will do, a TCP connection say. The socket path rules
// and checks do not apply.
func WithDialer(dial func(ctx context.Context) (net.Conn, error)) DialOption {
	return func(o *dialOptions) { o.dialer = dial }
}

// WithName names the client in the broker's logs (at most 255 bytes; a
// longer name is cut).
func WithName(name string) DialOption { return func(o *dialOptions) { o.name = name } }

// WithSession resumes session id (Client.Session of an earlier client)
// instead of starting a new one: a reconnecting client passes the session
// it had. By default every Client starts a session of 16 random bytes.
func WithSession(id Session) DialOption { return func(o *dialOptions) { o.session = id } }

// DefaultReplyGrace is how long a call waits for the broker's reply after
// its context ended, unless WithReplyGrace says otherwise.
//
// The broker is told each request's timeout and answers CANCEL at once,
// so its definite reply ("timed out, nothing happened", or the request's
// result if it completed first) normally arrives within microseconds of
// the deadline: the broker's clock started when it read the request, a
// little after the client's. A quarter of a second covers that on a
// loaded machine (scheduling delays, garbage collection, a busy broker)
// many times over, while a call to a broker that is stopped or wedged
// returns at most that long after its context ended, with
// ErrUnknownOutcome.
const DefaultReplyGrace = 250 * time.Millisecond

// WithReplyGrace sets how long a call waits for the broker's reply after
// its context ended before giving up with ErrUnknownOutcome (default
// DefaultReplyGrace). A longer grace turns more give-ups into definite
// answers from a slow broker; a shorter one returns sooner from a dead one.
func WithReplyGrace(d time.Duration) DialOption {
	return func(o *dialOptions) { o.grace = max(d, 0) }
}

// Dial connects to the broker and performs the handshake, both bounded by
// ctx (at its deadline the error matches ErrTimeout). A connection the
// broker closes before answering HELLO (past its bound on handshakes in
// progress, or while it restarts) is dialled again after a short pause,
// for up to 5 seconds (dialretry.go).
func Dial(ctx context.Context, opts ...DialOption) (*Client, error) {
	o := dialDefaults(opts)
	o.redial = o.dialConn
	return dialHandshake(ctx, o) // dialretry.go
}

// dialConn connects to the broker as o says (a reconnect dials again the
// same way).
func (o *dialOptions) dialConn(ctx context.Context) (net.Conn, error) {
	if o.dialer != nil {
		nc, err := o.dialer(ctx)
		if err != nil {
			return nil, fmt.Errorf("postbox: dial: %w", err)
		}
		return nc, nil
	}
	var d net.Dialer
	if u := o.brokerURL(); u != "" {
		return dialURL(ctx, &d, u, o) // url.go
	}
	return dialSocket(ctx, &d, o.socket) // default paths are checked: see socket.go
}

// NewClient performs the handshake over an established connection (any
// net.Conn speaking the postbox protocol to a broker), bounded by ctx, and
// returns a Client that owns it. Of the options, WithName, WithSession
// and WithReplyGrace apply; WithReconnect is ErrInvalid, as the client
// could not dial again. Descriptor passing (shared-memory channels)
// is asked for only on a *net.UnixConn.
func NewClient(ctx context.Context, nc net.Conn, opts ...DialOption) (*Client, error) {
	return handshake(ctx, nc, dialDefaults(opts))
}

func handshake(ctx context.Context, nc net.Conn, o dialOptions) (*Client, error) {
	if o.reconnect != nil && o.redial == nil {
		return nil, fmt.Errorf("%w: WithReconnect needs Dial, which knows how to dial again (NewClient was given one connection)", ErrInvalid)
	}
	if o.session.IsZero() {
		if _, err := rand.Read(o.session[:]); err != nil {
			return nil, fmt.Errorf("postbox: handshake: session id: %w", err)
		}
	}
	c := &Client{grace: o.grace, corrPrefix: randomPrefix()}
	stopped := stoppedError
	if o.reconnect != nil {
		c.rc = newReconnector(*o.reconnect, o)
		stopped = lostError
	}
	lk, err := c.connect(ctx, nc, o, 0, stopped)
	if err != nil {
		return nil, err
	}
	c.l.Store(lk)
	c.session = lk.session
	if c.rc != nil {
		c.rc.start(c)
	}
	return c, nil
}

// connect says HELLO over nc with o's session and starts the connection's
// mux, its request ids after firstID.
func (c *Client) connect(ctx context.Context, nc net.Conn, o dialOptions, firstID uint64, stopped func(error) error) (*link, error) {
	h := wire.Hello{MinVersion: wire.Version, MaxVersion: wire.Version, Client: []byte(o.name), Session: wire.Session(o.session)}
	if _, ok := nc.(*net.UnixConn); ok {
		h.Caps |= wire.CapDescriptors
	}
	rep, status, msg, err := mux.Handshake(ctx, nc, &h)
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, contextEnded(ctx, "handshake: no answer from the broker")
	case err != nil && isTLS(nc):
		return nil, fmt.Errorf("%w: %w", ErrHandshake, tlsError(nc.RemoteAddr().String(), err, true))
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	case status == wire.CodeVersion:
		return nil, fmt.Errorf("%w: this client speaks protocol version %d only; upgrade the broker",
			&Error{Code: status, Msg: msg}, wire.Version)
	case status != wire.OK:
		return nil, &Error{Code: status, Msg: msg}
	case rep.Version != wire.Version:
		return nil, fmt.Errorf("%w: the broker answered with protocol version %d, this client speaks %d", ErrVersion, rep.Version, wire.Version)
	}
	lk := &link{
		session:    Session(rep.Session),
		self:       identityWithName(rep.Principal, rep.Ext),
		epoch:      rep.Epoch,
		caps:       rep.Caps,
		maxMessage: int(rep.MaxMessage),
		maxFrame:   int(rep.MaxFrame),
		server:     string(rep.Server),
		inbox:      InboxName(rep.Endpoint),
	}
	lk.self.Endpoint = rep.Endpoint
	// The broker closes a connection silent for DEAD_PEER (not a Unix
	// socket's): the mux pings it every KEEPALIVE when idle, and gives
	// the broker up if it is silent that long itself.
	ka, dp := time.Duration(rep.Keepalive), time.Duration(rep.DeadPeer)
	under := nc
	if t, ok := nc.(*tls.Conn); ok {
		under = t.NetConn() // the probes go on the TCP connection beneath TLS
	}
	if tc, ok := under.(*net.TCPConn); ok {
		idle := max(cmp.Or(ka, 15*time.Second), time.Second)
		tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: idle, Interval: idle, Count: 3})
	}
	lk.m = mux.New(nc, mux.Config{
		MaxFrame:  readLimit(rep.MaxFrame),
		Grace:     o.grace,
		Stopped:   stopped,
		Keepalive: ka,
		DeadPeer:  dp,
		FirstID:   firstID,
	})
	lk.m.RegisterPush(wire.OpInterrupt, c.onInterrupt)
	return lk, nil
}

// readLimit is the largest frame the client reads: the broker's max frame
// plus what a DELIVER adds to a message (its fixed fields and the
// headers' length fields; the headers themselves count in the message
// size the broker already bounds), plus one more headers block of slack
// for a broker that counts headers apart from max frame.
func readLimit(maxFrame uint32) int {
	if maxFrame == 0 {
		maxFrame = wire.DefaultMaxFrame
	}
	return int(maxFrame) + wire.DeliveryOverhead + wire.MaxHeaderBytes
}

func stoppedError(cause error) error {
	if cause == nil {
		return ErrClosed
	}
	return fmt.Errorf("%w: connection to broker lost: %v", ErrClosed, cause)
}

// link is the client's current connection and what its handshake said.
func (c *Client) link() *link { return c.l.Load() }

// conn is the client's current connection.
func (c *Client) conn() *mux.Conn { return c.l.Load().m }

// start queues cl's request (see mux.Conn.Start) on the current
// connection. With WithReconnect, a connection found lost before the
// frame was queued is waited out, until ctx ends, and the request goes
// on the next one: nothing was sent, so nothing is unknown.
//
// It returns the connection the request went on.
func (c *Client) start(ctx context.Context, cl *mux.Call, op wire.Op, flags uint8, enc func([]byte) []byte) (*link, error) {
	for {
		lk := c.link()
		err := lk.m.Start(cl, op, flags, enc)
		if err == nil || c.rc == nil {
			return lk, err
		}
		if err := c.rc.awaitNext(ctx, c, lk, strings.ToLower(op.String())); err != nil {
			return lk, err
		}
	}
}

// Identity returns this client's identity as the broker sees it.
func (c *Client) Identity() Identity { return c.link().self }

// Session returns this client's session (see WithSession).
func (c *Client) Session() Session { return c.session }

// Epoch returns the broker's epoch: a random non-zero number it picked
// when it started. A different epoch after a reconnect means the broker
// restarted (and inboxes of the old run are gone).
func (c *Client) Epoch() uint64 { return c.link().epoch }

// Server returns the broker's self-description from the handshake.
func (c *Client) Server() string { return c.link().server }

// MaxMessage is the largest message the broker accepts: len(body) plus
// the encoded size of its headers.
func (c *Client) MaxMessage() int { return c.link().maxMessage }

// MaxFrame is the largest frame the broker accepts; a SendBatch larger
// than this goes in several frames.
func (c *Client) MaxFrame() int { return c.link().maxFrame }

// Close closes the connection. Frames already queued are written first
// (within 5 s): fire-and-forget acks take effect, and so may requests
// whose callers are still waiting, though those callers get ErrClosed.
// Messages received but not acked go back to their mailboxes. Close waits
// for the client's goroutines and is idempotent.
func (c *Client) Close() error {
	if c.rc != nil {
		c.rc.close(c)
		return nil
	}
	c.conn().Close()
	return nil
}

// Done is closed when the client stops (Close, or the connection failed;
// with WithReconnect, once it gave up reconnecting).
func (c *Client) Done() <-chan struct{} {
	if c.rc != nil {
		return c.rc.done
	}
	return c.conn().Done()
}

// Err returns why the client stopped, or nil while it runs (with
// WithReconnect: while it runs or is reconnecting).
func (c *Client) Err() error {
	if c.rc != nil {
		return c.rc.stopErr()
	}
	return c.conn().Err()
}

// what names a request in an error, in the user's words.
func what(op wire.Op, mbox string) string {
	switch op {
	case wire.OpSend:
		return fmt.Sprintf("send to %q", mbox)
	case wire.OpRecv:
		return fmt.Sprintf("receive from %q", mbox)
	}
	return strings.ToLower(op.String())
}

// wait waits for cl's reply and returns the error it says (nil for OK).
func (c *Client) wait(ctx context.Context, cl *mux.Call, op wire.Op, mbox string) error {
	err := c.conn().Await(ctx, cl)
	if errors.Is(err, mux.ErrNoReply) {
		return &ctxError{op: what(op, mbox), cause: ctx.Err(), unknown: true, grace: c.grace}
	}
	if err != nil {
		return err
	}
	if cl.Status == wire.OK {
		return nil
	}
	e := &Error{Code: cl.Status, Msg: cl.Msg}
	if cl.Status == wire.CodeCanceled && ctx.Err() != nil {
		// The broker withdrew the request on our CANCEL: nothing
		// happened, and the caller learns why it was cancelled.
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &Error{Code: wire.CodeTimeout, Msg: cl.Msg + " (deadline)"}
		}
		return fmt.Errorf("%w: %w", e, ctx.Err())
	}
	return e
}

// roundTrip sends a request with a generic reply and returns the reply
// payload (the caller's to keep).
func (c *Client) roundTrip(ctx context.Context, op wire.Op, flags uint8, enc func([]byte) []byte) ([]byte, error) {
	cl := c.conn().NewCall()
	if _, err := c.start(ctx, cl, op, flags, enc); err != nil {
		c.conn().Release(cl)
		return nil, err
	}
	err := c.wait(ctx, cl, op, "")
	p := cl.Payload
	cl.Payload = nil // the caller keeps it
	c.conn().Release(cl)
	return p, err
}

// timeoutOf converts ctx's deadline into a request timeout: -1 none.
func timeoutOf(ctx context.Context, nowait bool) int64 {
	if nowait {
		return 0
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return -1
	}
	d := time.Until(dl)
	if d <= 0 {
		return 0
	}
	return int64(d)
}

// decodeMessage makes a Message of a Delivery payload from mailbox mbox.
func (c *Client) decodeMessage(p []byte, mbox string) *Message {
	var d wire.Delivery
	if d.Decode(p) != nil {
		return nil
	}
	return c.messageOf(&d, mbox)
}

// messageOf makes a Message of a decoded Delivery from mailbox mbox (nil
// if its headers do not parse).
func (c *Client) messageOf(d *wire.Delivery, mbox string) *Message {
	m := newMessage(d.Body)
	m.ID, m.Mailbox, m.Type, m.Priority, m.Redeliveries = d.ID, mbox, d.Type, d.Priority, d.Redeliveries
	m.Sender = identityWithName(d.Sender, d.Ext)
	m.SentAt = time.Unix(0, d.SentUnixNano)
	m.lease, m.c, m.lk, m.Reason, m.flags = d.Lease, c, c.link(), Reason(d.Reason), d.Flags
	if len(d.Headers) > 0 && m.setHeaders(d.Headers) != nil {
		return nil
	}
	return m
}

// newMessage returns a Message holding a copy of body. Small bodies share
// one allocation with the Message, halving the allocations per received
// message.
func newMessage(body []byte) *Message {
	n := len(body)
	switch {
	case n <= 64:
		x := new(struct {
			m Message
			b [64]byte
		})
		x.m.Body = x.b[:n:n]
		copy(x.m.Body, body)
		return &x.m
	case n <= 512:
		x := new(struct {
			m Message
			b [512]byte
		})
		x.m.Body = x.b[:n:n]
		copy(x.m.Body, body)
		return &x.m
	}
	// Growing a nil slice copies without zeroing the new bytes first;
	// make([]byte, 0, n) would zero them.
	return &Message{Body: append([]byte(nil), body...)}
}
