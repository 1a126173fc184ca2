package grpcpostbox

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/postbox-ipc/postbox"
)

// An endpoint is this package's side of one *postbox.Client: the one
// consumer of the client's inbox (frames of MessageType), the table of
// the streams whose frames arrive there, and two helper loops. Every
// ClientConn and Server on the same Client shares it (a registry keyed by
// the Client, reference counted), because stream ids are per inbox: a
// frame names the recipient's stream.
//
// Three goroutines run while an endpoint is referenced:
//
//   - route: takes frames from the inbox and hands each to its stream
//     (never blocking: a stream's queue is bounded by the window it
//     granted, and a peer that overruns it is cut off);
//   - control: sends the frames nobody should wait for (window updates,
//     cancels, refusals of unknown streams), in the order queued;
//   - watch: every keepaliveInterval, STATs the inbox of each peer that
//     has an open stream here; a peer whose inbox is gone (NOT_FOUND: its
//     process died or closed its client) fails those streams with
//     Unavailable.
//
// The last release stops them and waits for them.
type endpoint struct {
	c       *postbox.Client
	self    uint64 // the client's endpoint id
	refs    int    // guarded by registry.mu
	cons    *postbox.Consumer
	ctx     context.Context // ended when the endpoint stops
	stop    context.CancelFunc
	wg      sync.WaitGroup
	pubs    sync.WaitGroup // closing streams' publishers (stream.closePub)
	wake    chan struct{}  // the control loop has work (capacity 1)
	closing chan struct{}  // closed by the last release: the control loop drains and ends
	watch   time.Duration

	mu      sync.Mutex // guards streams, nextID, ctl
	streams map[uint64]*stream
	nextID  uint64
	ctl     []ctlFrame
}

// ctlFrame is a frame for the control loop to send.
type ctlFrame struct {
	to   string
	opts []postbox.SendOption
}

// keepaliveInterval is how often an endpoint checks that the peers of its
// streams are alive. A variable so tests can shorten it.
var keepaliveInterval atomic.Int64

func init() { keepaliveInterval.Store(int64(time.Second)) }

var registry struct {
	mu sync.Mutex
	m  map[*postbox.Client]*endpoint
}

// acquire returns c's endpoint, starting it if this is its first user.
func acquire(ctx context.Context, c *postbox.Client) (*endpoint, error) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if ep := registry.m[c]; ep != nil {
		ep.refs++
		return ep, nil
	}
	cons, err := c.Inbox().Consume(ctx, postbox.Type(MessageType), postbox.AutoAck(), postbox.Prefetch(1024))
	if err != nil {
		return nil, err
	}
	ep := &endpoint{c: c, self: c.Identity().Endpoint, refs: 1, cons: cons,
		wake: make(chan struct{}, 1), closing: make(chan struct{}), watch: time.Duration(keepaliveInterval.Load()),
		streams: map[uint64]*stream{}}
	ep.ctx, ep.stop = context.WithCancel(context.Background())
	ep.wg.Add(3)
	go ep.route()
	go ep.control()
	go ep.keepalive()
	if registry.m == nil {
		registry.m = map[*postbox.Client]*endpoint{}
	}
	registry.m[c] = ep
	return ep, nil
}

// release drops a reference; the last one stops the endpoint, failing
// the streams still open, and waits for its goroutines.
func (ep *endpoint) release() {
	registry.mu.Lock()
	ep.refs--
	last := ep.refs == 0
	if last {
		delete(registry.m, ep.c)
	}
	registry.mu.Unlock()
	if !last {
		return
	}
	ep.abortAll(status.New(codes.Unavailable, "grpcpostbox: connection closing"))
	close(ep.closing) // the control loop sends the cancels just queued, then ends
	ep.stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	ep.cons.Close(ctx)
	cancel()
	ep.wg.Wait()
	ep.pubs.Wait() // after the route loop, which may close publishers too
}

// abortAll fails every open stream with st (their peers get a cancel).
func (ep *endpoint) abortAll(st *status.Status) {
	for _, s := range ep.open() {
		s.abort(st, true)
	}
}

// open returns the open streams. Lock order: a stream's mu before ep.mu,
// so callers ask streams anything only after this returned.
func (ep *endpoint) open() []*stream {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	open := make([]*stream, 0, len(ep.streams))
	for _, s := range ep.streams {
		open = append(open, s)
	}
	return open
}

// add registers a new stream and returns its id.
func (ep *endpoint) add(s *stream) uint64 {
	ep.mu.Lock()
	ep.nextID++
	s.id = ep.nextID
	ep.streams[s.id] = s
	ep.mu.Unlock()
	return s.id
}

func (ep *endpoint) remove(id uint64) {
	ep.mu.Lock()
	delete(ep.streams, id)
	ep.mu.Unlock()
}

// send queues a frame for the control loop.
func (ep *endpoint) send(to string, opts []postbox.SendOption) {
	ep.mu.Lock()
	ep.ctl = append(ep.ctl, ctlFrame{to: to, opts: opts})
	ep.mu.Unlock()
	select {
	case ep.wake <- struct{}{}:
	default:
	}
}

func (ep *endpoint) route() {
	defer ep.wg.Done()
	for {
		m, err := ep.cons.Next(ep.ctx)
		if err != nil {
			if ep.ctx.Err() == nil {
				// The client's connection is gone: no frame will come.
				ep.abortAll(status.Newf(codes.Unavailable, "grpcpostbox: inbox consumer ended: %v", err))
			}
			return
		}
		ep.dispatch(m)
	}
}

// dispatch hands one inbox frame to its stream.
func (ep *endpoint) dispatch(m *postbox.Message) {
	f, ok := parseFrame(m)
	if !ok {
		return // not ours
	}
	ep.mu.Lock()
	s := ep.streams[f.stream]
	ep.mu.Unlock()
	if s == nil {
		// A stream this side has already given up. An accept means a
		// server has just started it: tell that server to stop.
		if f.kind == frameAccept && f.from != 0 {
			ep.send(postbox.InboxName(m.Sender.Endpoint), frameOpts(frameCancel, f.from,
				postbox.Priority(1), postbox.WithHeader("rpc-status", fmtUint(uint64(codes.Canceled)))))
		}
		return
	}
	s.deliver(f)
}

func (ep *endpoint) control() {
	defer ep.wg.Done()
	for {
		ep.mu.Lock()
		q := ep.ctl
		ep.mu.Unlock()
		if len(q) == 0 {
			select {
			case <-ep.wake:
				continue
			case <-ep.closing:
				return
			}
		}
		f := q[0]
		// Not ep.ctx: frames queued as the endpoint closes still go.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ep.c.Mailbox(f.to).Send(ctx, nil, f.opts...) // best effort: a dead peer needs no frames
		cancel()
		ep.mu.Lock()
		ep.ctl = ep.ctl[1:]
		if len(ep.ctl) == 0 {
			ep.ctl = nil
		}
		ep.mu.Unlock()
	}
}

func (ep *endpoint) keepalive() {
	defer ep.wg.Done()
	t := time.NewTicker(ep.watch)
	defer t.Stop()
	for {
		select {
		case <-ep.ctx.Done():
			return
		case <-t.C:
		}
		peers := map[uint64][]*stream{}
		for _, s := range ep.open() {
			if p := s.peerEndpoint(); p != 0 {
				peers[p] = append(peers[p], s)
			}
		}
		for p, ss := range peers {
			ctx, cancel := context.WithTimeout(ep.ctx, time.Second)
			_, err := ep.c.Mailbox(postbox.InboxName(p)).Stat(ctx)
			cancel()
			if errors.Is(err, postbox.ErrNotFound) {
				st := status.Newf(codes.Unavailable, "grpcpostbox: peer endpoint %s is gone", postbox.InboxName(p))
				for _, s := range ss {
					s.abort(st, false)
				}
			}
		}
	}
}
