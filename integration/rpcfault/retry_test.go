package rpcfault_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/faultconn"
	"github.com/postbox-ipc/postbox/rpc"
	"github.com/postbox-ipc/postbox/rpc/retry"
	"github.com/postbox-ipc/postbox/wire"
)

// TestRefusalOfATimedOutAttemptDoesNotAnswerTheRetry: the first attempt
// of a retried call reaches the server late (the server's delivery is
// delayed past the attempt's end), so the server holds a request whose
// attempt has already been interrupted. Whatever the server does with
// it, its answer carries the call's CORRELATION_ID and would be claimed
// by the retry now waiting: it must not end the call with an error the
// caller never caused (Canceled). The retry gets the handler's reply.
func TestRefusalOfATimedOutAttemptDoesNotAnswerTheRetry(t *testing.T) {
	for _, sem := range []semantics{atLeastOnce, exactlyOnce} {
		t.Run(string(sem), func(t *testing.T) {
			const service = "rpcfault.stale"
			b := start(t)
			logPath := filepath.Join(t.TempDir(), "exec.log")
			log, err := openExecLog(logPath)
			if err != nil {
				t.Fatal(err)
			}
			defer log.Close()
			ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
			defer cancel()
			// The server's first delivery arrives 300 ms late; the
			// INTERRUPT for it is not held back.
			nc, _, err := faultconn.Dial(ctx, b.Socket, faultconn.DelayReply(wire.OpRecv, 300*time.Millisecond, faultconn.Nth(1)))
			if err != nil {
				t.Fatal(err)
			}
			spc, err := postbox.NewClient(ctx, nc, postbox.WithName(t.Name()+"-server"))
			if err != nil {
				nc.Close()
				t.Fatal(err)
			}
			defer spc.Close()
			srv, err := startServer(ctx, spc, serverConfig{service: service, handlers: 1}, log)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.stop(t)

			cl := &caller{c: rpc.NewClient(b.Dial(t), rpc.WithRetryPolicy(retry.Policy{FirstTimeout: 100 * time.Millisecond}))}
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			defer ccancel()
			key := "stale-" + string(sem)
			resp, err := cl.echo(cctx, service, sem, echoReq{Key: key})
			tl, rerr := readExecLog(logPath)
			if rerr != nil {
				t.Fatal(rerr)
			}
			t.Logf("%s: call returned %+v, %v; handler ran %d time(s)", sem, resp, err, len(tl.runs[key]))
			if err != nil {
				t.Errorf("%s: the retried call failed with the server's answer to its timed-out first attempt: %v", sem, err)
			}
		})
	}
}
