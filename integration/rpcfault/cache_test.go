package rpcfault_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/faultconn"
	"github.com/postbox-ipc/postbox/rpc"
	"github.com/postbox-ipc/postbox/rpc/replycache"
	"github.com/postbox-ipc/postbox/rpc/retry"
	"github.com/postbox-ipc/postbox/wire"
)

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
	socket, logPath, srv := inProcess(t, service, serverConfig{handlers: 4, cache: bound})

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
	if st := srv.cache(); st.entries > bound.MaxEntries || st.bytes > int(bound.MaxBytes) {
		t.Errorf("reply cache holds %d entries / %d bytes, beyond its bound of %d / %d", st.entries, st.bytes, bound.MaxEntries, bound.MaxBytes)
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
