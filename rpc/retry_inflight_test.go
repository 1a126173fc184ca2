package rpc_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/faultconn"
	"github.com/postbox-ipc/postbox/rpc"
	"github.com/postbox-ipc/postbox/rpc/retry"
	"github.com/postbox-ipc/postbox/wire"
)

// TestRetryWaitsOutALateCopyOfItsFirstAttempt: the first attempt times
// out (the handler is slower), and the transport delivers a late copy of
// its CALL frame, which then holds the call's CORRELATION_ID at the
// broker. The retry is refused with ErrCallInFlight; the client backs
// off and tries again, and the call succeeds within its deadline.
func TestRetryWaitsOutALateCopyOfItsFirstAttempt(t *testing.T) {
	for _, sem := range []rpc.Semantics{rpc.AtLeastOnce, rpc.ExactlyOnce} {
		t.Run(sem.String(), func(t *testing.T) {
			e := newEnv(t)
			var runs atomic.Int64
			e.server(func(s *rpc.Server) {
				rpc.Register(s, echo, func(ctx context.Context, req *echoReq) (*echoResp, error) {
					n := runs.Add(1)
					time.Sleep(150 * time.Millisecond)
					return &echoResp{Text: req.Text, Runs: n}, nil
				})
			})
			nc, st, err := faultconn.Dial(ctx(t), e.b.Socket, faultconn.ReplayRequest(wire.OpCall, faultconn.Nth(1)))
			if err != nil {
				t.Fatal(err)
			}
			pc, err := postbox.NewClient(ctx(t), nc, postbox.WithReplyGrace(20*time.Millisecond))
			if err != nil {
				nc.Close()
				t.Fatal(err)
			}
			defer pc.Close()
			c := rpc.NewClient(pc, rpc.WithRetryPolicy(retry.Policy{FirstTimeout: 50 * time.Millisecond}))
			cctx, cancel := context.WithTimeout(ctx(t), 5*time.Second)
			defer cancel()
			resp, err := echo.Call(cctx, c, &echoReq{Text: "late"}, rpc.WithSemantics(sem))
			if err != nil {
				t.Fatalf("call with a late copy of its first attempt (%d replayed): %v", st.Counts().Replayed, err)
			}
			if resp.Text != "late" || st.Counts().Replayed != 1 {
				t.Fatalf("reply %+v, %d frames replayed", resp, st.Counts().Replayed)
			}
		})
	}
}
