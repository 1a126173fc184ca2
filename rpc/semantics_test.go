package rpc_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
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

var fastRetry = rpc.WithRetry(retry.Policy{FirstTimeout: 100 * time.Millisecond, Backoff: 5 * time.Millisecond})

func TestEachSemanticsRunsHandlerOnceWithoutFaults(t *testing.T) {
	e := newEnv(t)
	var runs atomic.Int64
	e.server(echoServer(&runs))
	for i, sem := range []rpc.Semantics{rpc.Maybe, rpc.AtLeastOnce, rpc.ExactlyOnce} {
		resp, err := echo.Call(ctx(t), e.client, &echoReq{Text: sem.String()}, rpc.WithSemantics(sem))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Text != sem.String() || resp.Runs != int64(i+1) {
			t.Fatalf("%v: %+v", sem, resp)
		}
	}
}

func TestMaybeDoesNotRunRedeliveredRequest(t *testing.T) {
	e := newEnv(t)
	if _, err := e.srvPC.Create(ctx(t), echo.Service, postbox.Service()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := echo.Call(ctx(t), e.client, &echoReq{Text: "once"})
		done <- err
	}()
	// A server takes the request and goes away without answering.
	msg, err := e.srvPC.Mailbox(echo.Service).Receive(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := msg.Nack(ctx(t)); err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int64
	e.server(echoServer(&runs))
	if err := <-done; rpc.CodeOf(err) != envelope.Unavailable {
		t.Fatalf("%v", err)
	}
	if runs.Load() != 0 {
		t.Fatal("the handler ran a redelivered maybe request")
	}
}

func TestAtLeastOnceRetriesUntilAServerStarts(t *testing.T) {
	e := newEnv(t)
	var runs atomic.Int64
	go func() {
		time.Sleep(150 * time.Millisecond)
		e.server(echoServer(&runs))
	}()
	rep, err := e.client.Invoke(ctx(t), echo.Service, echo.Name, []byte(`{"text":"late"}`),
		rpc.WithSemantics(rpc.AtLeastOnce), rpc.WithContentType(envelope.ContentJSON), fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Attempts < 2 || runs.Load() != 1 {
		t.Fatalf("%d attempts, %d runs", rep.Attempts, runs.Load())
	}
}

func TestAtLeastOnceRetriesALostRequestWithTheSameID(t *testing.T) {
	e := newEnv(t)
	if _, err := e.srvPC.Create(ctx(t), echo.Service, postbox.Service()); err != nil {
		t.Fatal(err)
	}
	// The first attempt is lost: taken and acked without a reply.
	lost := make(chan envelope.ID, 1)
	go func() {
		msg, err := e.srvPC.Mailbox(echo.Service).Receive(context.Background())
		if err != nil {
			t.Error(err)
			return
		}
		id, _ := envelope.ParseID(msg.CorrelationID())
		msg.Ack(context.Background())
		lost <- id
	}()
	done := make(chan error, 1)
	go func() {
		_, err := echo.Call(ctx(t), e.client, &echoReq{Text: "x"}, rpc.WithSemantics(rpc.AtLeastOnce), fastRetry)
		done <- err
	}()
	first := <-lost
	var runs atomic.Int64
	var retried atomic.Value
	e.server(func(s *rpc.Server) {
		rpc.Register(s, echo, func(ctx context.Context, req *echoReq) (*echoResp, error) {
			r := rpc.RequestFrom(ctx)
			if r.Attempt < 2 {
				t.Errorf("attempt %d reached the server", r.Attempt)
			}
			retried.Store(r.ID)
			runs.Add(1)
			return &echoResp{}, nil
		})
	})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if runs.Load() != 1 || retried.Load() != first {
		t.Fatalf("%d runs; retry had id %v, first attempt %v", runs.Load(), retried.Load(), first)
	}
}

// eoRequest sends echo's request with id by hand under exactly-once.
func eoRequest(t *testing.T, pc *postbox.Client, id envelope.ID, text string) (*postbox.Message, error) {
	body, _ := json.Marshal(echoReq{Text: text})
	return rawRequest(ctx(t), pc, echo.Service, echo.Name, id, envelope.SemExactlyOnce, body)
}

func TestExactlyOnceDuplicateGetsCachedReplyWithoutRunning(t *testing.T) {
	e := newEnv(t)
	var runs atomic.Int64
	e.server(echoServer(&runs))
	id := envelope.NewID([16]byte{1, 2, 3}, 1)
	first, err := eoRequest(t, e.callPC, id, "a")
	if err != nil {
		t.Fatal(err)
	}
	second, err := eoRequest(t, e.callPC, id, "a")
	if err != nil {
		t.Fatal(err)
	}
	if runs.Load() != 1 {
		t.Fatalf("handler ran %d times", runs.Load())
	}
	if string(first.Body) != string(second.Body) || first.Header().Get(envelope.Cached) != "" ||
		second.Header().Get(envelope.Cached) != "1" {
		t.Fatalf("first %q %v, second %q %v", first.Body, first.Header(), second.Body, second.Header())
	}
}

func TestExactlyOnceDuplicateOfRunningCallWaitsForIt(t *testing.T) {
	e := newEnv(t)
	var runs atomic.Int64
	started, release := make(chan struct{}), make(chan struct{})
	e.server(func(s *rpc.Server) {
		rpc.Register(s, echo, func(ctx context.Context, req *echoReq) (*echoResp, error) {
			n := runs.Add(1)
			close(started)
			<-release
			return &echoResp{Text: req.Text, Runs: n}, nil
		})
	})
	id := envelope.NewID([16]byte{4}, 9)
	other := e.b.Dial(t) // a duplicate from another connection (a caller that reconnected)
	var wg sync.WaitGroup
	replies := make([]*postbox.Message, 2)
	for i, pc := range []*postbox.Client{e.callPC, other} {
		if i == 1 {
			<-started
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := eoRequest(t, pc, id, "same")
			if err != nil {
				t.Error(err)
			}
			replies[i] = m
		}()
	}
	waitFor(t, "the duplicate to be taken", func() bool { return depth(t, e.callPC, echo.Service) == 0 })
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if runs.Load() != 1 || replies[0] == nil || replies[1] == nil {
		t.Fatalf("%d runs", runs.Load())
	}
	if string(replies[0].Body) != string(replies[1].Body) || replies[1].Header().Get(envelope.Cached) != "1" {
		t.Fatalf("%q / %q %v", replies[0].Body, replies[1].Body, replies[1].Header())
	}
}

func TestExactlyOnceReusedIDWithOtherArgumentsIsRejected(t *testing.T) {
	e := newEnv(t)
	var runs atomic.Int64
	e.server(echoServer(&runs))
	id := envelope.NewID([16]byte{5}, 1)
	if _, err := eoRequest(t, e.callPC, id, "one"); err != nil {
		t.Fatal(err)
	}
	m, err := eoRequest(t, e.callPC, id, "two")
	if err != nil {
		t.Fatal(err)
	}
	if code := envelope.ParseCode(m.Header().Get(envelope.Status)); code != envelope.AlreadyExists || runs.Load() != 1 {
		t.Fatalf("%v, %d runs", code, runs.Load())
	}
}

func TestExactlyOnceAckReleasesEarlierReplies(t *testing.T) {
	e := newEnv(t)
	var runs atomic.Int64
	s := e.server(echoServer(&runs))
	for range 20 {
		if _, err := echo.Call(ctx(t), e.client, &echoReq{}, rpc.WithSemantics(rpc.ExactlyOnce)); err != nil {
			t.Fatal(err)
		}
	}
	// Each call acknowledged the one before: only the last is kept.
	if st := s.CacheStats(); st.Done != 1 || st.Running != 0 {
		t.Fatalf("%+v", st)
	}
}

func TestExactlyOnceCacheIsBounded(t *testing.T) {
	e := newEnv(t)
	var runs atomic.Int64
	s := e.server(echoServer(&runs), rpc.ReplyCache(replycache.Config{MaxEntries: 8, MaxBytes: 8 << 10}))
	for i := range 50 {
		// A fresh client each time: nothing acknowledges its reply.
		c := rpc.NewClient(e.callPC)
		if _, err := echo.Call(ctx(t), c, &echoReq{Text: "bounded"}, rpc.WithSemantics(rpc.ExactlyOnce)); err != nil {
			t.Fatal(i, err)
		}
		if st := s.CacheStats(); st.Running+st.Done > 8 || st.Bytes > 8<<10 {
			t.Fatalf("after %d calls: %+v", i+1, st)
		}
	}
	if runs.Load() != 50 {
		t.Fatalf("%d runs", runs.Load())
	}
}

// TestExactlyOnceRetryOfAnEvictedCallIsAbortedNotRun: a finished call
// whose reply its caller never got (nor acknowledged) is evicted from a
// full cache by other callers' calls; its retry must not run it again on
// this living server: it is answered Aborted (it ran, its reply is gone).
func TestExactlyOnceRetryOfAnEvictedCallIsAbortedNotRun(t *testing.T) {
	e := newEnv(t)
	var runs atomic.Int64
	s := e.server(echoServer(&runs), rpc.ReplyCache(replycache.Config{MaxEntries: 4}))
	id := envelope.NewID([16]byte{7}, 1)
	if _, err := eoRequest(t, e.callPC, id, "lost"); err != nil {
		t.Fatal(err)
	}
	for i := range 8 { // fresh clients: nothing acknowledges their replies
		if _, err := echo.Call(ctx(t), rpc.NewClient(e.callPC), &echoReq{Text: "fill"}, rpc.WithSemantics(rpc.ExactlyOnce)); err != nil {
			t.Fatal(i, err)
		}
	}
	if st := s.CacheStats(); st.Running+st.Done > 4 || st.Evicted == 0 {
		t.Fatalf("cache %+v: want at most 4 entries and evicted records", st)
	}
	m, err := eoRequest(t, e.callPC, id, "lost")
	if err != nil {
		t.Fatal(err)
	}
	if code := envelope.ParseCode(m.Header().Get(envelope.Status)); code != envelope.Aborted || runs.Load() != 9 {
		t.Fatalf("retry of the evicted call: status %v (%s), %d runs; want Aborted, 9 runs", code, m.Header().Get(envelope.Error), runs.Load())
	}
}

func TestExactlyOnceConcurrentCallsOfOneClientAreNeverTakenForAcknowledged(t *testing.T) {
	e := newEnv(t)
	var runs atomic.Int64
	s := e.server(echoServer(&runs))
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if _, err := echo.Call(ctx(t), e.client, &echoReq{}, rpc.WithSemantics(rpc.ExactlyOnce)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if runs.Load() != 800 {
		t.Fatalf("%d runs for 800 calls", runs.Load())
	}
	if st := s.CacheStats(); st.Done > 16 {
		t.Fatalf("%+v: acknowledged replies were kept", st)
	}
}

func TestExactlyOnceRetentionReleasesUnacknowledgedReplies(t *testing.T) {
	e := newEnv(t)
	var runs atomic.Int64
	s := e.server(echoServer(&runs), rpc.ReplyCache(replycache.Config{Retention: int64(50 * time.Millisecond)}))
	if _, err := echo.Call(ctx(t), rpc.NewClient(e.callPC), &echoReq{}, rpc.WithSemantics(rpc.ExactlyOnce)); err != nil {
		t.Fatal(err)
	}
	if st := s.CacheStats(); st.Done != 1 {
		t.Fatalf("%+v", st)
	}
	time.Sleep(60 * time.Millisecond)
	// The next request (from another session) is when the cache expires.
	if _, err := echo.Call(ctx(t), rpc.NewClient(e.callPC), &echoReq{}, rpc.WithSemantics(rpc.ExactlyOnce)); err != nil {
		t.Fatal(err)
	}
	if st := s.CacheStats(); st.Done != 1 { // the second call's; the first session stays (idle) a retention longer
		t.Fatalf("%+v: the first reply outlived its retention", st)
	}
}

func TestRetriedCallWithoutReplyEndsWithDeadlineExceeded(t *testing.T) {
	e := newEnv(t)
	if _, err := e.srvPC.Create(ctx(t), "test.Void", postbox.Service()); err != nil {
		t.Fatal(err)
	}
	for _, sem := range []rpc.Semantics{rpc.AtLeastOnce, rpc.ExactlyOnce} {
		c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := e.client.Invoke(c, "test.Void", "Nothing", nil, rpc.WithSemantics(sem), fastRetry)
		cancel()
		if rpc.CodeOf(err) != envelope.DeadlineExceeded || rpc.OutcomeOf(err) != postbox.OutcomeWithdrawn {
			t.Fatalf("%v: %v (outcome %v)", sem, err, rpc.OutcomeOf(err))
		}
	}
	// Every attempt was withdrawn: nothing is left in the mailbox.
	if d := depth(t, e.callPC, "test.Void"); d != 0 {
		t.Fatalf("%d requests left", d)
	}
}

// TestMaybeCopyOfARequestDoesNotRunAgain: a request taken under maybe
// semantics and then delivered again with the same id (a duplicated or
// replayed frame) is refused, AlreadyExists, without running; once its
// id has left the bounded record a copy is a new request.
func TestMaybeCopyOfARequestDoesNotRunAgain(t *testing.T) {
	e := newEnv(t)
	var runs atomic.Int64
	e.server(echoServer(&runs), rpc.MaybeRecord(replycache.SeenConfig{MaxEntries: 2}))
	send := func(seq uint64) *postbox.Message {
		t.Helper()
		body, _ := json.Marshal(echoReq{Text: "m"})
		m, err := rawRequest(ctx(t), e.callPC, echo.Service, echo.Name, envelope.NewID([16]byte{9}, seq), envelope.SemMaybe, body)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := send(1); m.Header().Get(envelope.Status) != "" || runs.Load() != 1 {
		t.Fatalf("first request: status %q, %d runs", m.Header().Get(envelope.Status), runs.Load())
	}
	m := send(1)
	if code := envelope.ParseCode(m.Header().Get(envelope.Status)); code != envelope.AlreadyExists || runs.Load() != 1 {
		t.Fatalf("copy: status %v (%s), %d runs; want AlreadyExists, 1 run", code, m.Header().Get(envelope.Error), runs.Load())
	}
	// Typed maybe calls each have their own id: none is taken for a copy.
	for range 3 {
		if _, err := echo.Call(ctx(t), e.client, &echoReq{Text: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := runs.Load(); n != 4 {
		t.Fatalf("%d runs, want 4", n)
	}
	// The record holds 2 ids: seq 1 was forgotten, its copy runs.
	send(1)
	if n := runs.Load(); n != 5 {
		t.Fatalf("%d runs, want 5 (a forgotten id is a new request)", n)
	}
}

// TestMaybeCopyBesideItsOriginalIsNotAnswered: a request frame the
// transport duplicated waits in the mailbox beside its original while
// the call waits; whichever the server takes first runs, the other is
// refused only after the run's reply, so the caller gets that reply,
// never the copy's refusal.
func TestMaybeCopyBesideItsOriginalIsNotAnswered(t *testing.T) {
	e := newEnv(t)
	var runs atomic.Int64
	e.server(func(s *rpc.Server) {
		rpc.Register(s, echo, func(ctx context.Context, req *echoReq) (*echoResp, error) {
			n := runs.Add(1)
			time.Sleep(50 * time.Millisecond) // both are taken while it runs
			return &echoResp{Text: req.Text, Runs: n}, nil
		})
	}, rpc.Concurrency(4))
	for i := range 10 {
		nc, st, err := faultconn.Dial(ctx(t), e.b.Socket, faultconn.DuplicateRequest(wire.OpCall, faultconn.Always()))
		if err != nil {
			t.Fatal(err)
		}
		pc, err := postbox.NewClient(ctx(t), nc)
		if err != nil {
			nc.Close()
			t.Fatal(err)
		}
		before := runs.Load()
		resp, err := echo.Call(ctx(t), rpc.NewClient(pc), &echoReq{Text: "dup"})
		pc.Close()
		if err != nil || resp.Text != "dup" {
			t.Fatalf("call %d, its request duplicated (%d): %+v, %v", i, st.Counts().Duplicated, resp, err)
		}
		waitFor(t, "the copy to be taken", func() bool { return depth(t, e.callPC, echo.Service) == 0 })
		time.Sleep(60 * time.Millisecond)
		if n := runs.Load() - before; n != 1 {
			t.Fatalf("call %d: %d runs, want 1", i, n)
		}
	}
}
