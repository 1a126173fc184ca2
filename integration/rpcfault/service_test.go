package rpcfault_test

// The service under test and everything this package knows of package
// rpc's API: the methods (an echo and a blocking method for each
// semantics), their handlers, which write the execution log, and thin
// wrappers for starting a server and making a call.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc"
	"github.com/postbox-ipc/postbox/rpc/envelope"
	"github.com/postbox-ipc/postbox/rpc/replycache"
)

// echoReq is the echo method's request: the call's key and how long the
// handler works on it.
type echoReq struct {
	Key   string        `json:"key"`
	Sleep time.Duration `json:"sleep,omitempty"`
}

// echoResp says which call was answered, by which process, under which
// request id.
type echoResp struct {
	Key string `json:"key"`
	PID int    `json:"pid"`
	ID  string `json:"id"`
}

func rpcSemantics(sem semantics) rpc.Semantics {
	switch sem {
	case atLeastOnce:
		return rpc.AtLeastOnce
	case exactlyOnce:
		return rpc.ExactlyOnce
	}
	return rpc.Maybe
}

func echoMethod(service string, sem semantics) rpc.Method[echoReq, echoResp] {
	return rpc.Method[echoReq, echoResp]{Service: service, Name: "echo." + string(sem), Semantics: rpcSemantics(sem)}
}

func blockMethod(service string, sem semantics) rpc.Method[echoReq, echoResp] {
	return rpc.Method[echoReq, echoResp]{Service: service, Name: "block." + string(sem), Semantics: rpcSemantics(sem)}
}

// serverConfig is how a test server runs.
type serverConfig struct {
	service  string
	handlers int               // concurrent handlers
	cache    replycache.Config // the reply cache's bound; zero: cacheBound
}

// cacheBound is the reply cache's bound in the tests: far below the
// defaults, yet above what calls that are acknowledged promptly need.
var cacheBound = replycache.Config{MaxEntries: 1024, MaxBytes: 1 << 20}

// server is a running rpc server.
type server struct {
	srv   *rpc.Server
	bound replycache.Config
}

// handlerID is the request id a handler's context carries.
func handlerID(ctx context.Context) string {
	id, ok := rpc.RequestID(ctx)
	if !ok {
		return "none"
	}
	return strings.ReplaceAll(id.String(), " ", "_")
}

// startServer serves every method on cfg.service over c, logging each
// execution to log.
func startServer(ctx context.Context, c *postbox.Client, cfg serverConfig, log *execLog) (*server, error) {
	if cfg.cache == (replycache.Config{}) {
		cfg.cache = cacheBound
	}
	srv := rpc.NewServer(c, rpc.Concurrency(cfg.handlers), rpc.ReplyCache(cfg.cache))
	for _, sem := range allSemantics {
		rpc.Register(srv, echoMethod(cfg.service, sem), func(ctx context.Context, req *echoReq) (*echoResp, error) {
			id := handlerID(ctx)
			if err := log.ran(req.Key, id); err != nil {
				return nil, err
			}
			if req.Sleep > 0 {
				t := time.NewTimer(req.Sleep)
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return &echoResp{Key: req.Key, PID: os.Getpid(), ID: id}, nil
		})
		rpc.Register(srv, blockMethod(cfg.service, sem), func(ctx context.Context, req *echoReq) (*echoResp, error) {
			id := handlerID(ctx)
			if err := log.ran(req.Key, id); err != nil {
				return nil, err
			}
			<-ctx.Done()
			if err := log.ended(ctx, req.Key, id); err != nil {
				return nil, err
			}
			return nil, ctx.Err()
		})
	}
	if err := srv.Start(ctx); err != nil {
		srv.Close()
		return nil, err
	}
	return &server{srv: srv, bound: cfg.cache}, nil
}

// shutdown shuts the server down gracefully: it waits (bounded by ctx)
// for the running handlers, then ends everything. Calling it again does
// nothing.
func (s *server) shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.srv.Close()
	return err
}

// stop is shutdown for a test: every handler has returned when it
// returns.
func (s *server) stop(t testing.TB) {
	t.Helper()
	if err := s.shutdown(ctxT(t)); err != nil {
		t.Errorf("server shutdown: %v", err)
	}
}

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

// cacheStats is the reply cache's occupancy and its bound.
type cacheStats struct {
	entries, bytes       int
	maxEntries, maxBytes int
}

func (s *server) cache() cacheStats {
	st := s.srv.CacheStats()
	return cacheStats{entries: st.Running + st.Done, bytes: int(st.Bytes),
		maxEntries: s.bound.MaxEntries, maxBytes: int(s.bound.MaxBytes)}
}

// caller makes calls.
type caller struct {
	c *rpc.Client
}

func newCaller(c *postbox.Client) *caller { return &caller{c: rpc.NewClient(c)} }

// echo calls the echo method of service under sem.
func (cl *caller) echo(ctx context.Context, service string, sem semantics, req echoReq) (*echoResp, error) {
	return echoMethod(service, sem).Call(ctx, cl.c, &req)
}

// block calls the blocking method, which returns only when its context
// ends.
func (cl *caller) block(ctx context.Context, service string, sem semantics, key string) error {
	_, err := blockMethod(service, sem).Call(ctx, cl.c, &echoReq{Key: key})
	return err
}

// codeOf is the rpc status code of a call's error.
func codeOf(err error) envelope.Code { return rpc.CodeOf(err) }
