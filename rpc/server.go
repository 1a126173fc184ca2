package rpc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc/envelope"
	"github.com/postbox-ipc/postbox/rpc/replycache"
)

// RawHandler serves one method on bytes. It returns the reply or an
// error (its status: an *Error, or any error through CodeOf); rep may
// carry Header and Trailer with an error. A handler that sent its reply
// early (Request.Reply) has its return value ignored.
type RawHandler func(ctx context.Context, req *Request) (rep *Reply, err error)

// Server serves the methods registered on it. Each service is a mailbox
// (created with postbox.Service() if missing); several servers, in one
// process or many, may serve one service: a request goes to whichever is
// free. Its methods are safe for concurrent use.
//
// A server takes each service's requests through one postbox Consumer
// under manual credit (postbox.ManualCredit): its credit is the number
// of free handlers, one more granted as each handler finishes, so the
// broker delivers a request only when a handler is free and the others
// wait in the mailbox. Each server therefore counts once in the
// service's Info.Consumers (postbox ls's SERVERS).
//
// A server serves over one postbox connection. If that connection is
// lost, the requests it held go back to the mailbox, as for any receiver
// that dies; on a reconnecting client (postbox.WithReconnect) its
// consumers resume on the next connection, with the credit of the
// handlers then free; otherwise its handlers stop taking requests: Close
// it and start a new server on a new connection.
type Server struct {
	pc   *postbox.Client
	opts serverOptions

	mu       sync.Mutex // guards services, started, stopped
	services map[string]*service
	started  bool
	stopped  bool

	cacheMu sync.Mutex // guards cache
	cache   *replycache.Cache[*wireReply, *postbox.Message]

	seenMu     sync.Mutex                         // guards seen, seenCopies
	seen       *replycache.Seen                   // the maybe requests taken, by id
	seenCopies map[envelope.ID][]*postbox.Message // copies of running maybe requests

	// recv ends the services' streams (Shutdown); work ends the
	// handlers' contexts (Close).
	recv       context.Context
	stopRecv   context.CancelFunc
	work       context.Context
	stopWork   context.CancelFunc
	goroutines sync.WaitGroup // every goroutine the server started
	done       chan struct{}  // closed when every goroutine has ended
}

type service struct {
	name    string
	mb      *postbox.Mailbox
	methods map[string]RawHandler
	cons    atomic.Pointer[postbox.Consumer] // its stream of requests (dispatch replaces it if it ends)
}

type serverOptions struct {
	concurrency  int
	cache        replycache.Config
	seen         replycache.SeenConfig
	mode         os.FileMode
	replyTimeout time.Duration
	errorLog     func(error)
}

// ServerOption configures NewServer.
type ServerOption func(*serverOptions)

// Concurrency sets how many requests of each service the server handles
// at once (default 16). The server takes a request only when a handler
// is free: the others wait in the mailbox, where another server can take
// them and a cancelled call withdraws its request.
func Concurrency(n int) ServerOption { return func(o *serverOptions) { o.concurrency = max(n, 1) } }

// ReplyCache bounds the exactly-once reply cache (zero fields: the
// replycache defaults).
func ReplyCache(cfg replycache.Config) ServerOption { return func(o *serverOptions) { o.cache = cfg } }

// MaybeRecord bounds the record of maybe request ids the server keeps to
// recognise a copy of a request it took (zero fields: the replycache
// defaults, DefaultSeenEntries ids for DefaultRetention).
func MaybeRecord(cfg replycache.SeenConfig) ServerOption {
	return func(o *serverOptions) { o.seen = cfg }
}

// ServiceMode sets the permission bits of service mailboxes the server
// creates (default 0600: callers of the same uid; 0622 lets anyone call).
func ServiceMode(m os.FileMode) ServerOption { return func(o *serverOptions) { o.mode = m } }

// ErrorLog receives the errors the server cannot return to anyone (a
// reply that failed to send, a receive that failed). Default: dropped.
func ErrorLog(f func(error)) ServerOption { return func(o *serverOptions) { o.errorLog = f } }

// NewServer returns a server that serves over pc (which it does not own:
// close pc after the server).
func NewServer(pc *postbox.Client, opts ...ServerOption) *Server {
	o := serverOptions{concurrency: 16, mode: 0o600, replyTimeout: 10 * time.Second, errorLog: func(error) {}}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{pc: pc, opts: o, services: map[string]*service{}, done: make(chan struct{})}
	s.recv, s.stopRecv = context.WithCancel(context.Background())
	s.work, s.stopWork = context.WithCancel(context.Background())
	return s
}

// HandleRaw registers h for method of serviceName. Method "" registers a
// fallback: it serves the requests of every method without a handler of
// its own, and those with no rpc-method header (a plain Mailbox.Call, as
// postbox req makes). It panics after Start.
func (s *Server) HandleRaw(serviceName, method string, h RawHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		panic(fmt.Sprintf("rpc: HandleRaw(%q, %q) after Start", serviceName, method))
	}
	svc := s.services[serviceName]
	if svc == nil {
		svc = &service{name: serviceName, mb: s.pc.Mailbox(serviceName), methods: map[string]RawHandler{}}
		s.services[serviceName] = svc
	}
	svc.methods[method] = h
}

// Start creates the service mailboxes that do not exist yet (bounded by
// ctx) and starts serving. It fails with ErrServerClosed after Shutdown
// or Close.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopped:
		return ErrServerClosed
	case s.started:
		return errors.New("rpc: server already started")
	}
	cache, err := replycache.New[*wireReply, *postbox.Message](s.opts.cache)
	if err != nil {
		return err
	}
	seen, err := replycache.NewSeen(s.opts.seen)
	if err != nil {
		return err
	}
	s.cache, s.seen, s.seenCopies = cache, seen, map[envelope.ID][]*postbox.Message{}
	for _, svc := range s.services {
		_, err := s.pc.Create(ctx, svc.name, postbox.Service(), postbox.Mode(s.opts.mode))
		if err != nil && !errors.Is(err, postbox.ErrExists) {
			return fmt.Errorf("rpc: service %q: %w", svc.name, err)
		}
	}
	for _, svc := range s.services {
		cons, err := s.consume(ctx, svc)
		if err != nil {
			for _, svc := range s.services {
				if c := svc.cons.Load(); c != nil {
					c.Close(ctx)
				}
			}
			return fmt.Errorf("rpc: service %q: %w", svc.name, err)
		}
		svc.cons.Store(cons)
	}
	s.started = true
	for _, svc := range s.services {
		work := make(chan *postbox.Message, s.opts.concurrency)
		s.goroutines.Add(1 + 2*s.opts.concurrency)
		go s.dispatch(svc, work)
		for range 2 * s.opts.concurrency {
			go s.worker(svc, work)
		}
	}
	return nil
}

// Shutdown stops taking requests and waits for the running handlers to
// reply and return, or for ctx to end (then it returns ctx's error and
// the handlers go on: Close ends them). Requests still queued stay in the
// mailbox for other servers. The server holds no requests beyond its
// running ones (its credit is its free handlers), so there is nothing to
// give back, except a request the broker delivered just as the stream
// was ended: that one is served (giving it back would count as a
// redelivery, which maybe semantics refuses to run).
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops taking requests, cancels the running handlers' contexts and
// waits for every goroutine the server started; a request the broker
// delivered just as the stream was ended is given back (nacked), and
// so is a retried (at-least-once, exactly-once) request whose handler
// returned an error once canceled: another server runs it for the retry.
// It is idempotent.
func (s *Server) Close() error {
	s.stop()
	s.stopWork()
	<-s.done
	return nil
}

// CacheStats returns the exactly-once reply cache's contents.
func (s *Server) CacheStats() replycache.Stats {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	if s.cache == nil {
		return replycache.Stats{}
	}
	return s.cache.Stats()
}

func (s *Server) stop() {
	s.mu.Lock()
	first := !s.stopped
	s.stopped = true
	s.mu.Unlock()
	if first {
		s.stopRecv()
		go func() {
			s.goroutines.Wait()
			close(s.done)
		}()
	}
}

// consume opens svc's stream: manual credit, one credit per handler, so
// the broker delivers a request only when a handler is free.
func (s *Server) consume(ctx context.Context, svc *service) (*postbox.Consumer, error) {
	return svc.mb.Consume(ctx, postbox.ManualCredit(), postbox.Prefetch(uint32(s.opts.concurrency)))
}

// dispatch hands svc's requests, as its consumer delivers them, to its
// workers; it ends when the server stops (draining the stream: the
// requests delivered as it ended are served, or after Close given back)
// or the connection is closed. A stream that ends otherwise (the mailbox
// was destroyed) is reopened after a pause.
func (s *Server) dispatch(svc *service, work chan<- *postbox.Message) {
	defer s.goroutines.Done()
	defer close(work)
	cons := svc.cons.Load()
	for {
		msg, err := cons.Next(s.recv)
		if err == nil {
			work <- msg // never blocks for long: credit bounds deliveries by free handlers
			continue
		}
		if s.recv.Err() != nil {
			s.drain(svc, cons, work)
			return
		}
		if errors.Is(err, postbox.ErrClosed) {
			return
		}
		s.opts.errorLog(fmt.Errorf("rpc: receive from %q: %w", svc.name, err))
		for {
			select {
			case <-s.recv.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			if cons, err = s.consume(s.recv, svc); err == nil {
				svc.cons.Store(cons)
				break
			}
			if s.recv.Err() != nil || errors.Is(err, postbox.ErrClosed) {
				return
			}
			s.opts.errorLog(fmt.Errorf("rpc: receive from %q: %w", svc.name, err))
		}
	}
}

// drain ends a stopping server's stream. Requests the broker delivered
// as the stream ended are served after Shutdown (giving one back would
// count as a redelivery, which maybe refuses) and given back after Close
// (the workers check).
func (s *Server) drain(svc *service, cons *postbox.Consumer, work chan<- *postbox.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.replyTimeout)
	defer cancel()
	if s.work.Err() != nil {
		if err := cons.Close(ctx); err != nil {
			s.opts.errorLog(fmt.Errorf("rpc: stop receiving from %q: %w", svc.name, err))
		}
		return
	}
	if err := cons.Drain(ctx); err != nil {
		s.opts.errorLog(fmt.Errorf("rpc: stop receiving from %q: %w", svc.name, err))
	}
	for {
		msg, err := cons.Next(ctx)
		if err != nil {
			return
		}
		work <- msg
	}
}

// worker serves the requests dispatch hands it, one at a time, and
// grants its consumer a credit for the next as each handler returns
// (before its reply is sent: there are twice as many workers as
// handlers, so a request the credit lets in finds a free worker while
// replies travel).
func (s *Server) worker(svc *service, work <-chan *postbox.Message) {
	defer s.goroutines.Done()
	free := func() { svc.cons.Load().Credit(1) }
	for msg := range work {
		if s.work.Err() != nil {
			// Taken as Close began: give it back for another server
			// (its redelivery count grows, so maybe will not run it).
			free()
			s.giveBack(msg)
		} else {
			s.serve(svc, msg, free)
		}
	}
}

// giveBack nacks a request taken while stopping, for another server.
func (s *Server) giveBack(msg *postbox.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.replyTimeout)
	defer cancel()
	if err := msg.Nack(ctx); err != nil {
		s.opts.errorLog(fmt.Errorf("rpc: give back request %d of %q: %w", msg.ID, msg.Mailbox, err))
	}
}

// send sends w to msg's caller; with ack, the request is acked with it
// (one frame, reply first), or without waiting if no reply can be sent.
func (s *Server) send(ctx context.Context, msg *postbox.Message, w *wireReply, cached, ack bool) (bool, error) {
	if ctx == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), s.opts.replyTimeout)
		defer cancel()
	}
	opts := w.options(cached)
	if ack {
		opts = append(opts, postbox.AckRequest())
	}
	claimed, err := msg.Reply(ctx, w.body, opts...)
	if err != nil && (errors.Is(err, postbox.ErrTooLarge) || errors.Is(err, postbox.ErrInvalid)) {
		// The reply itself cannot be sent (too large, a bad header): tell
		// the caller so rather than leave it waiting for its deadline.
		s.opts.errorLog(fmt.Errorf("rpc: reply to request %d of %q: %w", msg.ID, msg.Mailbox, err))
		fail := errorReply(CodeOf(err), fmt.Sprintf("rpc: the handler's reply could not be sent: %v", err))
		opts = fail.options(false)
		if ack {
			opts = append(opts, postbox.AckRequest())
		}
		claimed, err = msg.Reply(ctx, fail.body, opts...)
	}
	if err != nil {
		s.opts.errorLog(fmt.Errorf("rpc: reply to request %d of %q: %w", msg.ID, msg.Mailbox, err))
		if ack {
			msg.AckNoWait()
		}
	}
	return claimed, err
}

// refuse answers a request the server will not run, and acks it.
func (s *Server) refuse(msg *postbox.Message, code envelope.Code, format string, args ...any) {
	s.send(nil, msg, errorReply(code, fmt.Sprintf(format, args...)), false, true)
}

// finish sends a run's reply (acking the request with it if ack); under
// exactly-once the reply is cached first and also answers the duplicates
// that joined the run.
func (s *Server) finish(ctx context.Context, r *Request, w *wireReply, ack bool) (bool, error) {
	var joined []*postbox.Message
	if r.Semantics == ExactlyOnce {
		s.cacheMu.Lock()
		joined = s.cache.Finish(r.ID, w, w.size(), time.Now().UnixNano())
		s.cacheMu.Unlock()
	}
	claimed, err := s.send(ctx, r.Message, w, false, ack)
	for _, dup := range joined {
		s.send(nil, dup, w, true, true)
	}
	if r.Semantics == Maybe && r.hasID {
		// The reply has ended the call: the copies held meanwhile, and
		// any from now on, are refused.
		s.seenMu.Lock()
		s.seen.Done(r.ID)
		copies := s.seenCopies[r.ID]
		delete(s.seenCopies, r.ID)
		s.seenMu.Unlock()
		for _, m := range copies {
			s.refuseCopy(m, r.ID)
		}
	}
	return claimed, err
}
