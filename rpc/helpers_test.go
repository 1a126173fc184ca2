package rpc_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/rpc"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Typed test methods.

type echoReq struct {
	Text string `json:"text"`
}

type echoResp struct {
	Text string `json:"text"`
	Runs int64  `json:"runs"`
}

var echo = rpc.Method[echoReq, echoResp]{Service: "test.Echo", Name: "Echo"}

// env is a broker, a server's connection and a caller's.
type env struct {
	t      *testing.T
	b      *testbroker.Broker
	srvPC  *postbox.Client
	callPC *postbox.Client
	client *rpc.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	b := testbroker.Start(t, nil)
	e := &env{t: t, b: b, srvPC: b.Dial(t), callPC: b.Dial(t)}
	e.client = rpc.NewClient(e.callPC)
	return e
}

// server starts a server on a new connection with register's handlers,
// closed when the test ends.
func (e *env) server(register func(*rpc.Server), opts ...rpc.ServerOption) *rpc.Server {
	e.t.Helper()
	return startServer(e.t, e.b.Dial(e.t), register, opts...)
}

func startServer(t *testing.T, pc *postbox.Client, register func(*rpc.Server), opts ...rpc.ServerOption) *rpc.Server {
	t.Helper()
	s := rpc.NewServer(pc, opts...)
	register(s)
	if err := s.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// echoServer registers echo counting its runs in runs.
func echoServer(runs *atomic.Int64) func(*rpc.Server) {
	return func(s *rpc.Server) {
		rpc.Register(s, echo, func(ctx context.Context, req *echoReq) (*echoResp, error) {
			return &echoResp{Text: req.Text, Runs: runs.Add(1)}, nil
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// depth returns how many requests wait in a service's mailbox.
func depth(t *testing.T, pc *postbox.Client, service string) uint64 {
	t.Helper()
	info, err := pc.Mailbox(service).Stat(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.Depth
}

// rawRequest sends a request by hand, as another language's client
// would: the envelope headers over postbox Mailbox.Call.
func rawRequest(ctx context.Context, pc *postbox.Client, service, method string, id envelope.ID, sem string, body []byte, extra ...postbox.CallOption) (*postbox.Message, error) {
	opts := append([]postbox.CallOption{postbox.CorrelationID(id[:]), postbox.ContentType(envelope.ContentJSON),
		postbox.WithHeader(envelope.Method, method), postbox.WithHeader(envelope.Semantics, sem)}, extra...)
	return pc.Mailbox(service).Call(ctx, body, opts...)
}
