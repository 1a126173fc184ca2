package rpcfault_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/faultconn"
	"github.com/postbox-ipc/postbox/rpc"
	"github.com/postbox-ipc/postbox/rpc/envelope"
	"github.com/postbox-ipc/postbox/rpc/retry"
	"github.com/postbox-ipc/postbox/wire"
)

// TestDuplicateRequestRunsTheHandlerAtMostOnce sends one request twice
// with the same request id, the second after the first was answered, as
// a request duplicated in transit arrives (the faultconn layer's
// DuplicateRequest makes this happen now and then, when the broker
// reads the copy after the original's reply; here it is made certain).
// The requests are exactly what rpc.Client sends for a call of each
// semantics. maybe promises at most one execution and exactly-once
// exactly one: the duplicate must not run the handler again.
// at-least-once may run it again.
func TestDuplicateRequestRunsTheHandlerAtMostOnce(t *testing.T) {
	for _, sem := range allSemantics {
		t.Run(string(sem), func(t *testing.T) {
			const service = "rpcfault.dup"
			socket, logPath, _ := inProcess(t, service, serverConfig{handlers: 4})
			c, err := postbox.Dial(ctxT(t), postbox.WithSocket(socket), postbox.WithName(t.Name()))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var session [16]byte
			rand.Read(session[:])
			id := envelope.NewID(session, 1)
			key := "dup-" + string(sem)
			body, _ := json.Marshal(echoReq{Key: key})
			opts := []postbox.CallOption{postbox.CorrelationID(id[:]), postbox.ContentType(envelope.ContentJSON),
				postbox.WithHeader(envelope.Method, echoMethod(service, sem).Name), postbox.WithHeader(envelope.Attempt, "1")}
			if sem != maybe {
				opts = append(opts, postbox.WithHeader(envelope.Semantics, string(sem)))
			}
			if sem == exactlyOnce {
				opts = append(opts, postbox.WithHeader(envelope.Acked, "1"))
			}
			var replies []string
			for i := range 2 {
				m, err := c.Mailbox(service).Call(ctxT(t), body, opts...)
				if err != nil {
					t.Fatalf("request %d: %v", i+1, err)
				}
				h := m.Header()
				replies = append(replies, fmt.Sprintf("status %q cached %q body %s", h.Get(envelope.Status), h.Get(envelope.Cached), m.Body))
			}
			tl, err := readExecLog(logPath)
			if err != nil {
				t.Fatal(err)
			}
			runs := len(tl.runs[key])
			t.Logf("%s: the request sent twice ran the handler %d time(s); replies: %q", sem, runs, replies)
			switch {
			case runs == 0:
				t.Errorf("%s: the handler never ran", sem)
			case runs > 1 && sem != atLeastOnce:
				t.Errorf("%s: a duplicated request ran the handler %d times (maybe promises at most once, exactly-once once): %v", sem, runs, tl.runs[key])
			}
		})
	}
}

// TestLateCopyOfAnAttemptDoesNotFailTheCall: an attempt of a retried
// call times out (the handler is slower than the first attempt), and a
// late copy of that attempt's CALL reaches the broker after its answer,
// as a retransmission would (faultconn's ReplayRequest), before the
// retry. The copy now holds the call's CORRELATION_ID at the broker; the
// retry, with the same id, must still get its reply: the call's caller
// never sent anything wrong.
func TestLateCopyOfAnAttemptDoesNotFailTheCall(t *testing.T) {
	for _, sem := range []semantics{atLeastOnce, exactlyOnce} {
		t.Run(string(sem), func(t *testing.T) {
			const service = "rpcfault.late"
			socket, logPath, _ := inProcess(t, service, serverConfig{handlers: 4})
			ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
			defer cancel()
			nc, st, err := faultconn.Dial(ctx, socket, faultconn.ReplayRequest(wire.OpCall, faultconn.Nth(1)))
			if err != nil {
				t.Fatal(err)
			}
			pc, err := postbox.NewClient(ctx, nc, postbox.WithName(t.Name()), postbox.WithReplyGrace(20*time.Millisecond))
			if err != nil {
				nc.Close()
				t.Fatal(err)
			}
			defer pc.Close()
			cl := &caller{c: rpc.NewClient(pc, rpc.WithRetryPolicy(retry.Policy{FirstTimeout: 100 * time.Millisecond}))}
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			defer ccancel()
			key := "late-" + string(sem)
			resp, err := cl.echo(cctx, service, sem, echoReq{Key: key, Sleep: 300 * time.Millisecond})
			tl, rerr := readExecLog(logPath)
			if rerr != nil {
				t.Fatal(rerr)
			}
			t.Logf("%s: replayed %d CALL frame(s); call returned %+v, %v; handler ran %d time(s)", sem, st.Counts().Replayed, resp, err, len(tl.runs[key]))
			if err != nil {
				t.Errorf("%s: the call failed because a late copy of its first attempt held its CORRELATION_ID: %v", sem, err)
			}
		})
	}
}
