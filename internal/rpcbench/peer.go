package rpcbench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/postbox-ipc/postbox/internal/grpcpeer"
)

// PeerConfig says what the peer serves. Its fields are the flags of the
// peer's command line (Args).
type PeerConfig struct {
	GRPC    string // Unix socket of the gRPC echo server
	Raw     string // Unix socket of the raw echo server
	Broker  string // the broker's socket, for the postbox echo service
	Service string // the postbox service's name
	Size    int    // request size (the raw echo's unit)
}

// Args is c as command-line flags, for the hidden peer subcommand.
func (c PeerConfig) Args() []string {
	return []string{"--grpc", c.GRPC, "--raw", c.Raw, "--broker", c.Broker, "--service", c.Service,
		"--size", fmt.Sprint(c.Size)}
}

// PeerStarter returns the command that runs the peer with these flags
// (PeerConfig.Args): a program calls RunPeer with them, reading its stdin
// and writing its stdout. `postbox bench rpc` re-executes itself with a
// hidden subcommand.
type PeerStarter func(args []string) *exec.Cmd

// ready is what the peer prints once every server listens.
const ready = "ready"

// RunPeer serves what c says (the gRPC echo server, the raw echo server,
// the postbox echo service) and prints "ready" on out when all of them
// listen; it returns, closing them, when in reaches EOF (the parent
// closed it or died) or ctx ends.
func RunPeer(ctx context.Context, c PeerConfig, in io.Reader, out io.Writer) error {
	g, err := grpcpeer.Listen(c.GRPC)
	if err != nil {
		return err
	}
	defer g.Close()
	raw, err := listenEcho(c.Raw, c.Size)
	if err != nil {
		return err
	}
	defer raw.close()
	srv, err := serveEcho(ctx, c.Broker, c.Service)
	if err != nil {
		return err
	}
	defer srv.close()
	if _, err := fmt.Fprintln(out, ready); err != nil {
		return err
	}
	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, in)
		close(eof)
	}()
	select {
	case <-eof:
	case <-ctx.Done():
	}
	return nil
}

// peer is a running peer.
type peer struct {
	stop func() error
}

// startPeer runs the peer: as a process if start is set, else in this
// process. It returns once the peer said it is ready.
func startPeer(ctx context.Context, start PeerStarter, c PeerConfig) (*peer, error) {
	if start == nil {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan error, 1)
		go func() {
			err := RunPeer(context.WithoutCancel(ctx), c, inR, outW)
			outW.CloseWithError(err)
			done <- err
		}()
		if err := awaitReady(ctx, outR); err != nil {
			inW.Close()
			<-done
			return nil, err
		}
		go io.Copy(io.Discard, outR)
		return &peer{stop: func() error { inW.Close(); return <-done }}, nil
	}
	cmd := start(c.Args())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() error {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("peer: %w: %s", err, strings.TrimSpace(stderr.String()))
			}
			return nil
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			return errors.New("peer: did not exit; killed")
		}
	}
	if err := awaitReady(ctx, stdout); err != nil {
		stop()
		return nil, fmt.Errorf("peer: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return &peer{stop: stop}, nil
}

// awaitReady reads the peer's first line, at most 30 s.
func awaitReady(ctx context.Context, r io.Reader) error {
	line := make(chan error, 1)
	go func() {
		s, err := bufio.NewReader(r).ReadString('\n')
		switch {
		case strings.TrimSpace(s) == ready:
			line <- nil
		case err != nil:
			line <- fmt.Errorf("exited before it was ready: %w", err)
		default:
			line <- fmt.Errorf("said %q, not %q", s, ready)
		}
	}()
	select {
	case err := <-line:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return errors.New("not ready after 30s")
	}
}

// echoServer echoes size-byte requests on every connection it accepts.
type echoServer struct {
	l      net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex // guards conns and closed
	conns  map[net.Conn]struct{}
	closed bool
}

func listenEcho(path string, size int) (*echoServer, error) {
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	e := &echoServer{l: l, conns: make(map[net.Conn]struct{})}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			if e.closed {
				e.mu.Unlock()
				c.Close()
				return
			}
			e.conns[c] = struct{}{}
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer c.Close()
				// One read and one write per request: what a server of a
				// request/response protocol does at the least.
				buf := make([]byte, max(size, 1))
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return e, nil
}

func (e *echoServer) close() {
	e.l.Close()
	e.mu.Lock()
	e.closed = true
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}
