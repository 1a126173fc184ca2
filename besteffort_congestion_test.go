package postbox_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// stallingProxy forwards TCP connections to a broker until stall is
// closed; then it stops reading from the clients (a congested network, or
// a broker that no longer reads). cut breaks the connections forwarded so
// far (a network failure).
type stallingProxy struct {
	addr  string
	stall chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startStallingProxy(t *testing.T, broker string) *stallingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallingProxy{addr: l.Addr().String(), stall: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer l.Close()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", broker)
			if err != nil {
				in.Close()
				return
			}
			p.forward(in, out)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

// forward copies between in (the client) and out (the broker) until one
// closes, or, client to broker, until stall is closed.
func (p *stallingProxy) forward(in, out net.Conn) {
	{
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(in, out) }()
		go func() {
			defer p.wg.Done()
			buf := make([]byte, 32<<10)
			for {
				select {
				case <-p.stall:
					return // stop reading: the client's writes back up
				default:
				}
				in.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
				n, err := in.Read(buf)
				if n > 0 {
					out.Write(buf[:n])
				}
				if err != nil && !errors.Is(err, net.ErrClosed) && !isTimeout(err) {
					return
				}
				if errors.Is(err, net.ErrClosed) {
					return
				}
			}
		}()
	}
}

// cut closes both sides of the connections forwarded so far.
func (p *stallingProxy) cut() {
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestSendBestEffortDropsLocallyWhenTheConnectionIsCongested: once the
// path to the broker stops taking bytes, best-effort sends keep
// returning at once, and once MaxBestEffortBacklog bytes wait to be
// written they fail with ErrDropped instead of queueing more.
func TestSendBestEffortDropsLocallyWhenTheConnectionIsCongested(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	p := startStallingProxy(t, b.ServeTCP(t))
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	nc, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := postbox.NewClient(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mb, err := c.Create(ctx, "metrics", postbox.Mode(0o666))
	if err != nil {
		t.Fatal(err)
	}
	close(p.stall)
	body := make([]byte, 64<<10)
	start := time.Now()
	for i := 0; ; i++ {
		err := mb.SendBestEffort(body)
		if errors.Is(err, postbox.ErrDropped) {
			if !errors.Is(err, postbox.ErrFull) {
				t.Fatalf("ErrDropped does not match ErrFull: %v", err)
			}
			t.Logf("dropped locally after %d messages (%d MiB) in %v", i, i*len(body)>>20, time.Since(start))
			break
		}
		if err != nil {
			t.Fatalf("best-effort send %d: %v", i, err)
		}
		if i == 4000 { // 250 MiB: far past any socket buffers
			t.Fatal("no ErrDropped while the connection does not move")
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("best-effort sends into a stalled connection took %v: they blocked", d)
	}
	p.cut() // so that Close need not wait to flush into a stalled path
}
