package grpcpostbox

import (
	"errors"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/postbox-ipc/postbox"
)

// The stream core's rules, without a broker: frames are handed to deliver
// as the route loop would, and the frames the stream asks to send are
// read from the endpoint's control queue.

const peerEndpointID = 9

func testStream(window uint32) (*stream, *endpoint) {
	ep := &endpoint{streams: map[uint64]*stream{}, wake: make(chan struct{}, 1)}
	s := newStream(ep, false, window)
	s.peerEP, s.peerID, s.credit = peerEndpointID, 4, 2
	ep.add(s)
	return s, ep
}

func msgFrame(seq uint64) frame {
	return frame{kind: frameMsg, seq: seq, msg: &postbox.Message{Sender: postbox.Identity{Endpoint: peerEndpointID}, Body: []byte{byte(seq)}}}
}

func queued(ep *endpoint) []ctlFrame {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	q := ep.ctl
	ep.ctl = nil
	return q
}

func wantFailed(t *testing.T, s *stream, code codes.Code) {
	t.Helper()
	if _, err := s.recv(); status.Code(err) != code {
		t.Fatalf("recv: %v, want %v", err, code)
	}
}

func TestMsgOutOfSequenceIsDataLoss(t *testing.T) {
	s, ep := testStream(4)
	s.deliver(msgFrame(1))
	s.deliver(msgFrame(3))
	wantFailed(t, s, codes.DataLoss)
	if q := queued(ep); len(q) != 1 {
		t.Fatalf("%d frames queued, want the cancel", len(q))
	}
	if len(ep.streams) != 0 {
		t.Error("a failed stream is still routed")
	}
}

func TestMsgPastWindowIsResourceExhausted(t *testing.T) {
	s, _ := testStream(2)
	for seq := uint64(1); seq <= 3; seq++ {
		s.deliver(msgFrame(seq))
	}
	wantFailed(t, s, codes.ResourceExhausted)
}

func TestRecvReturnsCreditInHalfWindowSteps(t *testing.T) {
	s, ep := testStream(4)
	for seq := uint64(1); seq <= 4; seq++ {
		s.deliver(msgFrame(seq))
	}
	for i := 1; i <= 4; i++ {
		b, err := s.recv()
		if err != nil || b[0] != byte(i) {
			t.Fatalf("recv #%d: %v %v", i, b, err)
		}
		if n := len(queued(ep)); (i%2 == 0) != (n == 1) {
			t.Fatalf("after %d received: %d window frames queued", i, n)
		}
	}
}

func TestFramesFromAnotherEndpointAreIgnored(t *testing.T) {
	s, _ := testStream(4)
	f := msgFrame(1)
	f.msg.Sender.Endpoint = peerEndpointID + 1
	s.deliver(f)
	s.deliver(frame{kind: frameCancel, msg: &postbox.Message{Sender: postbox.Identity{Endpoint: peerEndpointID + 1}}})
	s.deliver(msgFrame(1))
	if b, err := s.recv(); err != nil || b[0] != 1 {
		t.Fatalf("recv: %v %v", b, err)
	}
}

func TestCloseAfterAllMessagesIsEOF(t *testing.T) {
	s, _ := testStream(4)
	s.deliver(msgFrame(1))
	s.deliver(frame{kind: frameClose, seq: 1, msg: &postbox.Message{Sender: postbox.Identity{Endpoint: peerEndpointID}}})
	if _, err := s.recv(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("recv after close: %v, want io.EOF", err)
	}
}

func TestCloseCountingOtherMessagesIsDataLoss(t *testing.T) {
	s, _ := testStream(4)
	s.deliver(msgFrame(1))
	s.deliver(frame{kind: frameClose, seq: 2, msg: &postbox.Message{Sender: postbox.Identity{Endpoint: peerEndpointID}}})
	wantFailed(t, s, codes.DataLoss)
}

func TestCancelEndsStreamAndDropsQueue(t *testing.T) {
	s, ep := testStream(4)
	cancelled := false
	s.onFail = func() { cancelled = true }
	s.deliver(msgFrame(1))
	s.deliver(frame{kind: frameCancel, msg: &postbox.Message{Sender: postbox.Identity{Endpoint: peerEndpointID}}})
	wantFailed(t, s, codes.Canceled)
	if !cancelled {
		t.Error("the handler's context was not cancelled")
	}
	if q := queued(ep); len(q) != 0 {
		t.Errorf("a cancel was answered with %d frames", len(q))
	}
}

func TestWindowFrameAddsCredit(t *testing.T) {
	s, _ := testStream(4)
	s.deliver(frame{kind: frameWindow, window: 3, msg: &postbox.Message{Sender: postbox.Identity{Endpoint: peerEndpointID}}})
	if s.credit != 5 {
		t.Errorf("credit %d, want 2+3", s.credit)
	}
}
