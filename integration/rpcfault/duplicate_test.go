package rpcfault_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/faultconn"
	"github.com/postbox-ipc/postbox/rpc"
	"github.com/postbox-ipc/postbox/rpc/envelope"
	"github.com/postbox-ipc/postbox/rpc/replycache"
	"github.com/postbox-ipc/postbox/rpc/retry"
	"github.com/postbox-ipc/postbox/wire"
)

// inProcess runs an in-process server configured by cfg (its service
// set to service) on a fresh broker, and returns the broker's socket,
// the execution log's path and the server, which is stopped when t
// ends.
func inProcess(t *testing.T, service string, cfg serverConfig) (socket, logPath string, srv *server) {
	t.Helper()
	b := start(t)
	logPath = filepath.Join(t.TempDir(), "exec.log")
	log, err := openExecLog(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	cfg.service = service
	srv, err = startServer(ctxT(t), b.Dial(t), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.stop(t) })
	return b.Socket, logPath, srv
}

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

// TestExactlyOnceCacheAtItsBoundDoesNotRunACallTwice fills a small reply
// cache (8 entries) while an exactly-once call whose reply was lost waits
// to retry: its entry is the oldest done one. The cache must stay within
// its bound, and the retry must not run the handler a second time on
// the same, living server: it gets the cached reply, or (the reply
// dropped for room, a tombstone kept) an error saying the call ran; it
// never runs again.
func TestExactlyOnceCacheAtItsBoundDoesNotRunACallTwice(t *testing.T) {
	const service = "rpcfault.bound"
	bound := replycache.Config{MaxEntries: 8, MaxBytes: 1 << 20}
	socket, logPath, _ := inProcess(t, service, serverConfig{handlers: 4, cache: bound})

	// The call whose first reply is lost, with a long first attempt so
	// that the cache fills before it retries.
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	nc, _, err := faultconn.Dial(ctx, socket, faultconn.DropReply(wire.OpCall, faultconn.Nth(1)))
	if err != nil {
		t.Fatal(err)
	}
	lossy, err := postbox.NewClient(ctx, nc, postbox.WithName(t.Name()), postbox.WithReplyGrace(20*time.Millisecond))
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	defer lossy.Close()
	slow := &caller{c: rpc.NewClient(lossy, rpc.WithRetryPolicy(retry.Policy{FirstTimeout: time.Second}))}
	done := make(chan error, 1)
	go func() {
		_, err := slow.echo(ctx, service, exactlyOnce, echoReq{Key: "lost-reply"})
		done <- err
	}()
	waitRunning(t, logPath, "lost-reply")

	// Calls from fresh clients (sessions): none acknowledges another's
	// reply, so their entries stay until the cache needs room.
	pc, err := postbox.Dial(ctxT(t), postbox.WithSocket(socket), postbox.WithName(t.Name()+"-fill"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for i := range 2 * bound.MaxEntries {
		if _, err := newCaller(pc).echo(ctxT(t), service, exactlyOnce, echoReq{Key: fmt.Sprintf("fill-%d", i)}); err != nil {
			t.Fatalf("fill call %d: %v", i, err)
		}
	}
	err = <-done
	tl, rerr := readExecLog(logPath)
	if rerr != nil {
		t.Fatal(rerr)
	}
	runs := tl.runs["lost-reply"]
	t.Logf("exactly-once call retried after %d calls filled an %d-entry cache: ran %d time(s), returned %v", 2*bound.MaxEntries, bound.MaxEntries, len(runs), err)
	if len(runs) != 1 {
		t.Errorf("exactly-once: the call ran %d times on one living server (its cache entry was evicted while its caller still retried): %v", len(runs), runs)
	}
}
