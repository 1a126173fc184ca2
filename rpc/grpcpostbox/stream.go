package grpcpostbox

import (
	"context"
	"encoding/binary"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/postbox-ipc/postbox"
)

// stream is one end of a stream, either side: the receive queue and its
// window, the send credit, and how the stream ended. The route loop
// feeds it frames (deliver, never blocking); the application's goroutines
// call recv and send (at most one of each at a time, as gRPC requires).
//
// Flow control counts messages: a receiver grants its peer a window of
// W msg frames (in open or accept) and more credit (window frames) as the
// application consumes them, in steps of at least W/2. A sender with no
// credit blocks. So a stream never has more than W messages queued in the
// receiver's inbox or in its receive queue, and a peer that sends more is
// cut off (ResourceExhausted).
type stream struct {
	ep     *endpoint
	id     uint64 // local stream id; the peer's frames name it
	openID string // client side: the open's correlation id
	client bool
	owner  *ClientConn // client side: the conn that opened it
	window uint32      // the window this side grants

	mu       sync.Mutex // guards every field below
	peerEP   uint64     // the peer's endpoint id; 0 until known (client: until accept)
	peerID   uint64     // the peer's stream id
	inq      []*postbox.Message
	recvd    uint64 // msg frames received
	consumed uint32 // messages taken by recv since credit was last granted
	eof      bool   // the peer sends no more: close (server side) or end (client side)
	credit   uint64 // msg frames this side may still send
	sent     uint64 // msg frames sent
	failed   *status.Status
	done     chan struct{} // closed when failed is set
	recvWake chan struct{}
	sendWake chan struct{}
	onFail   func()             // called once, without mu, after the stream failed
	onFrame  func(f frame)      // role-specific frames (accept, headers, end); with mu held
	onEOF    *status.Status     // client side: the status of the end frame (nil: OK)
	pub      *postbox.Publisher // this side's msg frames, pipelined; made on first use
	pubDone  bool               // pub is closed: no more msg frames
}

// pubWindow is how many msg frames of a stream may be on their way to
// the broker at once (the peer's credit bounds them too).
const pubWindow = 16

// newStream returns a stream; the caller sets it up, then ep.add(s).
func newStream(ep *endpoint, client bool, window uint32) *stream {
	s := &stream{ep: ep, client: client, window: window, done: make(chan struct{}),
		recvWake: make(chan struct{}, 1), sendWake: make(chan struct{}, 1)}
	return s
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (s *stream) peerEndpoint() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peerEP
}

func (s *stream) peerInbox() string { return postbox.InboxName(s.peerEP) }

// deliver takes one frame from the route loop.
func (s *stream) deliver(f frame) {
	s.mu.Lock()
	if s.failed != nil {
		s.mu.Unlock()
		return
	}
	if s.peerEP != 0 && f.msg.Sender.Endpoint != s.peerEP {
		// Not from this stream's peer. One case is expected: the server
		// that accepted died, and another server, given the open back,
		// answers it with an end.
		redirected := f.kind == frameEnd && s.openID != "" && string(f.msg.CorrelationID()) == s.openID
		s.mu.Unlock()
		if redirected {
			st := statusOf(f.msg)
			if st == nil {
				st = status.New(codes.Unavailable, "grpcpostbox: the server of this stream went away")
			}
			s.abort(st, false)
		}
		return
	}
	var fail *status.Status
	switch f.kind {
	case frameMsg:
		switch {
		case s.eof || f.seq != s.recvd+1:
			fail = status.Newf(codes.DataLoss, "grpcpostbox: stream %d: message %d out of sequence (received %d)", s.id, f.seq, s.recvd)
		case len(s.inq) >= int(s.window):
			fail = status.Newf(codes.ResourceExhausted, "grpcpostbox: stream %d: peer sent past its window of %d", s.id, s.window)
		default:
			s.recvd++
			s.inq = append(s.inq, f.msg)
			signal(s.recvWake)
		}
	case frameWindow:
		s.credit += f.window
		signal(s.sendWake)
	case frameClose, frameEnd:
		if f.seq != s.recvd {
			fail = status.Newf(codes.DataLoss, "grpcpostbox: stream %d: peer sent %d messages, %d arrived", s.id, f.seq, s.recvd)
			break
		}
		if s.onFrame != nil {
			s.onFrame(f)
		}
		s.eof = true
		signal(s.recvWake)
		signal(s.sendWake)
	case frameCancel:
		fail = statusOf(f.msg)
		if fail == nil {
			fail = status.New(codes.Canceled, "grpcpostbox: stream cancelled by peer")
		}
		s.mu.Unlock()
		s.abort(fail, false)
		return
	default:
		if s.onFrame != nil {
			s.onFrame(f)
		}
	}
	s.mu.Unlock()
	if fail != nil {
		s.abort(fail, true)
	} else if f.kind == frameEnd {
		s.finish()
	}
}

// accepted records the peer of a client stream (from its accept frame).
// With mu held.
func (s *stream) accepted(f frame) {
	if s.peerEP != 0 {
		return
	}
	s.peerEP, s.peerID = f.msg.Sender.Endpoint, f.from
	s.credit += f.window
	signal(s.sendWake)
	if s.consumed > 0 {
		s.grant()
	}
}

// abort ends the stream with st (once); notify also tells the peer with a
// cancel frame.
func (s *stream) abort(st *status.Status, notify bool) {
	s.mu.Lock()
	if s.failed != nil {
		s.mu.Unlock()
		return
	}
	s.failed = st
	close(s.done)
	peer, peerID := s.peerEP, s.peerID
	s.inq = nil
	s.mu.Unlock()
	s.ep.remove(s.id)
	s.closePub()
	if notify && peer != 0 {
		opts := frameOpts(frameCancel, peerID, postbox.Priority(1))
		opts = statusOpts(opts, st)
		s.ep.send(postbox.InboxName(peer), opts)
	}
	if s.onFail != nil {
		s.onFail()
	}
}

// finish removes an orderly-ended stream from its endpoint.
func (s *stream) finish() {
	s.ep.remove(s.id)
	s.closePub()
}

// grant sends the credit for the messages consumed. With mu held.
func (s *stream) grant() {
	n := s.consumed
	s.consumed = 0
	s.ep.send(s.peerInbox(), frameOpts(frameWindow, s.peerID, postbox.WithHeader(keyWindow, fmtUint(uint64(n)))))
}

// recv returns the next message's body, io.EOF after the peer's last, or
// the stream's failure.
func (s *stream) recv() ([]byte, error) {
	for {
		s.mu.Lock()
		if s.failed != nil {
			st := s.failed
			s.mu.Unlock()
			return nil, st.Err()
		}
		if len(s.inq) > 0 {
			m := s.inq[0]
			s.inq[0] = nil
			s.inq = s.inq[1:]
			s.consumed++
			if !s.eof && s.peerEP != 0 && s.consumed >= max(s.window/2, 1) {
				s.grant()
			}
			s.mu.Unlock()
			return m.Body, nil
		}
		if s.eof {
			s.mu.Unlock()
			return nil, io.EOF
		}
		s.mu.Unlock()
		select {
		case <-s.recvWake:
		case <-s.done:
		}
	}
}

// errEnded is send's error when the peer has ended the stream in order
// (the client then finds the status with recv).
var errEnded = io.EOF

// send sends one msg frame, waiting for credit. msg is the frame's body:
// seqLen bytes for its number (send fills them in), then the message
// (marshalMsg makes it). The frames are pipelined: send returns once
// the frame is queued, and a failure shows in a later send (or in the
// close or end, which wait for every msg frame before them).
func (s *stream) send(ctx context.Context, msg []byte) error {
	for {
		s.mu.Lock()
		if s.failed != nil {
			st := s.failed
			s.mu.Unlock()
			return st.Err()
		}
		if s.client && s.eof {
			s.mu.Unlock()
			return errEnded
		}
		if s.credit > 0 {
			break
		}
		s.mu.Unlock()
		select {
		case <-s.sendWake:
		case <-s.done:
		}
	}
	s.credit--
	s.sent++
	seq := s.sent
	if s.pub == nil && !s.pubDone {
		s.pub = s.ep.c.Mailbox(s.peerInbox()).Publisher(pubWindow, postbox.Type(MessageType),
			postbox.WithHeader(keyFrame, frameMsg), postbox.WithHeader(keyStream, fmtUint(s.peerID)))
	}
	pub := s.pub
	s.mu.Unlock()
	if pub == nil {
		return errEnded
	}
	binary.BigEndian.PutUint64(msg, seq)
	if err := pub.Send(ctx, msg); err != nil {
		st := transportStatus(ctx, err)
		s.abort(st, true)
		return st.Err()
	}
	return nil
}

// closePub closes the publisher of msg frames once the sends in flight
// have settled (a sendFinal may be flushing it meanwhile), in a goroutine
// of the endpoint's, since it may be called on the route loop.
func (s *stream) closePub() {
	s.mu.Lock()
	pub := s.pub
	s.pub, s.pubDone = nil, true
	s.mu.Unlock()
	if pub != nil {
		s.ep.pubs.Add(1)
		go func() {
			defer s.ep.pubs.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			pub.Close(ctx)
		}()
	}
}

// sendFinal sends a close or end frame (with extra headers and body)
// after the last message.
func (s *stream) sendFinal(ctx context.Context, kind string, extra []postbox.SendOption, body []byte) error {
	s.mu.Lock()
	if s.failed != nil || s.peerEP == 0 {
		s.mu.Unlock()
		return nil
	}
	seq, to, id, pub := s.sent, s.peerInbox(), s.peerID, s.pub
	s.mu.Unlock()
	if pub != nil {
		if err := pub.Flush(ctx); err != nil {
			return err
		}
	}
	s.closePub()
	opts := frameOpts(kind, id, append(extra, postbox.WithHeader(keySeq, fmtUint(seq)))...)
	_, err := s.ep.c.Mailbox(to).Send(ctx, body, opts...)
	return err
}
