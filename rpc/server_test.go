package rpc_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/rpc"
)

func TestServersShareTheLoad(t *testing.T) {
	e := newEnv(t)
	var counts [3]atomic.Int64
	for i := range counts {
		e.server(func(s *rpc.Server) {
			rpc.Register(s, echo, func(ctx context.Context, req *echoReq) (*echoResp, error) {
				counts[i].Add(1)
				time.Sleep(10 * time.Millisecond)
				return &echoResp{}, nil
			})
		}, rpc.Concurrency(1))
	}
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := echo.Call(ctx(t), e.client, &echoReq{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	total := int64(0)
	for i := range counts {
		n := counts[i].Load()
		if n == 0 {
			t.Errorf("server %d served nothing", i)
		}
		total += n
	}
	if total != 30 {
		t.Fatalf("%d runs for 30 calls", total)
	}
}

func TestShutdownWaitsForRunningHandlersAndLeavesQueuedRequests(t *testing.T) {
	testbroker.CheckGoroutines(t)
	e := newEnv(t)
	b, srv := newBlockingServer(e, rpc.Concurrency(1))
	results := make(chan error, 2)
	for _, body := range []string{"running", "queued"} {
		go func() {
			_, err := e.client.Invoke(ctx(t), "test.Block", "Wait", []byte(body))
			results <- err
		}()
		if body == "running" {
			<-b.started
		}
	}
	waitFor(t, "a queued request", func() bool { return depth(t, e.callPC, "test.Block") == 1 })
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx(t)) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while a handler ran", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(b.release)
	if err := <-results; err != nil {
		t.Fatal(err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if d := depth(t, e.callPC, "test.Block"); d != 1 {
		t.Fatalf("%d queued after Shutdown, want the 1 it never took", d)
	}
	if err := srv.Start(ctx(t)); !errors.Is(err, rpc.ErrServerClosed) {
		t.Fatalf("Start after Shutdown: %v", err)
	}
	// Another server takes the request the first one left.
	e.server(func(s *rpc.Server) {
		s.HandleRaw("test.Block", "Wait", func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) {
			return &rpc.Reply{Body: r.Body}, nil
		})
	})
	if err := <-results; err != nil {
		t.Fatal(err)
	}
}

func TestShutdownReturnsWhenItsContextEnds(t *testing.T) {
	testbroker.CheckGoroutines(t)
	e := newEnv(t)
	b, srv := newBlockingServer(e)
	go e.client.Invoke(ctx(t), "test.Block", "Wait", nil)
	<-b.started
	c, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(c); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	srv.Close() // ends the handler
}

func TestCloseCancelsRunningHandlersAndWaitsForThem(t *testing.T) {
	testbroker.CheckGoroutines(t)
	e := newEnv(t)
	b, srv := newBlockingServer(e)
	done := make(chan error, 1)
	go func() {
		_, err := e.client.Invoke(ctx(t), "test.Block", "Wait", nil)
		done <- err
	}()
	<-b.started
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.ended:
	default:
		t.Fatal("Close returned before the handler did")
	}
	if err := <-done; err == nil {
		t.Fatal("the call succeeded though its handler was canceled")
	}
	srv.Close() // idempotent
}

func TestServerStopsServingWhenItsConnectionIsLost(t *testing.T) {
	testbroker.CheckGoroutines(t)
	e := newEnv(t)
	pc := e.b.Dial(t)
	var runs atomic.Int64
	srv := startServer(t, pc, echoServer(&runs), rpc.Concurrency(4))
	if _, err := echo.Call(ctx(t), e.client, &echoReq{}); err != nil {
		t.Fatal(err)
	}
	pc.Close()
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(c); err != nil {
		t.Fatalf("the workers did not end with their connection: %v", err)
	}
}

func TestCloseGivesRetriedRequestsToAnotherServer(t *testing.T) {
	testbroker.CheckGoroutines(t)
	e := newEnv(t)
	b, srv := newBlockingServer(e)
	done := make(chan error, 1)
	go func() {
		_, err := e.client.Invoke(ctx(t), "test.Block", "Wait", []byte("moved"), rpc.WithSemantics(rpc.AtLeastOnce))
		done <- err
	}()
	<-b.started
	srv.Close() // the handler is canceled; its request goes back to the mailbox
	var runs atomic.Int64
	e.server(func(s *rpc.Server) {
		s.HandleRaw("test.Block", "Wait", func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) {
			runs.Add(1)
			return &rpc.Reply{Body: r.Body}, nil
		})
	})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if runs.Load() != 1 {
		t.Fatalf("%d runs on the new server", runs.Load())
	}
}

// TestAServerIsOneConsumerOfEachService: Info.Consumers (postbox ls's
// SERVERS) counts servers, not handlers, and a server holds no request
// beyond its free handlers: with one handler busy, the next request
// waits in the mailbox.
func TestAServerIsOneConsumerOfEachService(t *testing.T) {
	e := newEnv(t)
	b, _ := newBlockingServer(e, rpc.Concurrency(1))
	e.server(func(s *rpc.Server) {
		s.HandleRaw("test.Other", "", func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) {
			return &rpc.Reply{Body: r.Body}, nil
		})
	}, rpc.Concurrency(8))
	for svc, want := range map[string]uint32{"test.Block": 1, "test.Other": 1} {
		info, err := e.callPC.Mailbox(svc).Stat(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if info.Consumers != want {
			t.Fatalf("%s: %d consumers, want %d (one per server)", svc, info.Consumers, want)
		}
	}
	done := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := e.client.Invoke(ctx(t), "test.Block", "Wait", []byte("x"))
			done <- err
		}()
	}
	<-b.started
	waitFor(t, "the second request queued", func() bool { return depth(t, e.callPC, "test.Block") == 1 })
	close(b.release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
