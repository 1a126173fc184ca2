package rpcbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/grpcpeer"
)

// env is what a run measures against: the broker, the peer and the
// clients of its servers.
type env struct {
	dir     string
	sock    string // the broker's socket
	service string
	closers []func() error // run in reverse order by close

	peer *peer
	grpc *grpcpeer.Client
	pc   PeerConfig
}

func setup(ctx context.Context, cfg Config) (e *env, err error) {
	dir, err := os.MkdirTemp("", "postbox-bench-rpc-")
	if err != nil {
		return nil, err
	}
	e = &env{dir: dir, sock: cfg.Socket, service: fmt.Sprintf("bench-rpc-%d", os.Getpid())}
	e.closers = append(e.closers, func() error { return os.RemoveAll(dir) })
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.sock == "" {
		e.sock = filepath.Join(dir, "broker.sock")
		stop, err := startBroker(e.sock)
		if err != nil {
			return nil, err
		}
		e.closers = append(e.closers, func() error { stop(); return nil })
	}
	if err := e.createService(ctx); err != nil {
		return nil, err
	}
	e.pc = PeerConfig{GRPC: filepath.Join(dir, "grpc.sock"), Raw: filepath.Join(dir, "raw.sock"),
		Broker: e.sock, Service: e.service, Size: cfg.Size}
	e.peer, err = startPeer(ctx, cfg.Peer, e.pc)
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.peer.stop)
	e.grpc, err = grpcpeer.Dial(ctx, e.pc.GRPC)
	if err != nil {
		return nil, fmt.Errorf("grpc peer: %w", err)
	}
	e.closers = append(e.closers, e.grpc.Close)
	return e, nil
}

func (e *env) close() error {
	var errs []error
	for i := len(e.closers) - 1; i >= 0; i-- {
		errs = append(errs, e.closers[i]())
	}
	return errors.Join(errs...)
}

func startBroker(sock string) (stop func(), err error) {
	l, err := broker.Listen(sock, 0o600)
	if err != nil {
		return nil, err
	}
	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b := broker.New(cfg)
	done := make(chan struct{})
	go func() { b.Serve(l); close(done) }()
	return func() { b.Close(); <-done }, nil
}

// grpcRow measures n callers sharing one gRPC connection.
func (e *env) grpcRow(ctx context.Context, cfg Config, n int) (Row, error) {
	body := make([]byte, cfg.Size)
	outs := make([][]byte, n)
	r, err := measure(ctx, n, cfg.Duration, func(ctx context.Context, w int) error {
		return e.grpc.Call(ctx, body, &outs[w], false)
	})
	r.Name, r.Size, r.Note = NameGRPC, cfg.Size, "one HTTP/2 connection, raw-bytes codec"
	return r, err
}

// rawRow measures n callers, each with its own connection to the raw
// echo server, writing a request and reading its echo.
func (e *env) rawRow(ctx context.Context, cfg Config, n int) (Row, error) {
	conns := make([]net.Conn, n)
	bufs := make([][]byte, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var d net.Dialer
	for i := range conns {
		c, err := d.DialContext(ctx, "unix", e.pc.Raw)
		if err != nil {
			return Row{}, err
		}
		conns[i], bufs[i] = c, make([]byte, cfg.Size)
	}
	r, err := measure(ctx, n, cfg.Duration, func(ctx context.Context, w int) error {
		if _, err := conns[w].Write(bufs[w]); err != nil {
			return err
		}
		_, err := io.ReadFull(conns[w], bufs[w])
		return err
	})
	r.Name, r.Size, r.Note = NameRaw, cfg.Size, "a connection per caller, one write and one read per call"
	return r, err
}
