package shm

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPingPongUnderEachWaitPolicy runs one body under the three policies,
// with both ends in this process.
func TestPingPongUnderEachWaitPolicy(t *testing.T) {
	for _, w := range []WaitPolicy{Hybrid, BusyPoll, Park} {
		t.Run(w.String(), func(t *testing.T) {
			checkNoLeak(t)
			cfg := Config{Wait: w, SpinTime: time.Microsecond}
			a, b := pair(t, cfg, cfg)
			ctx := guardCtx(t)
			const rounds = 2000
			go func() {
				buf := make([]byte, 256)
				for {
					n, err := b.Receive(ctx, buf)
					if err != nil {
						return
					}
					if b.Send(ctx, buf[:n]) != nil {
						return
					}
				}
			}()
			buf := make([]byte, 256)
			for i := 0; i < rounds; i++ {
				makeMsg(buf[:i%256], uint64(i))
				if err := a.Send(ctx, buf[:i%256]); err != nil {
					t.Fatal(err)
				}
				n, err := a.Receive(ctx, buf)
				if err != nil || n != i%256 {
					t.Fatalf("round %d: %d, %v", i, n, err)
				}
				checkMsg(t, buf[:n], uint64(i))
			}
			a.Close()
			b.Close()
		})
	}
}

func TestListenDialHandsOverTheSegment(t *testing.T) {
	checkNoLeak(t)
	path := filepath.Join(t.TempDir(), "shm.sock")
	l, err := Listen(path, Config{RingSize: 8192})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := guardCtx(t)
	accepted := make(chan *Chan, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	d, err := Dial(ctx, path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := <-accepted
	defer s.Close()
	if d.geo.ringSize != 8192 {
		t.Errorf("dialer sees ring size %d, want the listener's 8192", d.geo.ringSize)
	}
	if err := d.Send(ctx, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := s.Receive(ctx, buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("%q, %v", buf[:n], err)
	}
	d.Close()
	if _, err := s.Receive(ctx, buf); !errors.Is(err, ErrPeerGone) {
		t.Fatalf("after the dialer closed: %v", err)
	}
}

func TestListenRefusesDisallowedUID(t *testing.T) {
	checkNoLeak(t)
	path := filepath.Join(t.TempDir(), "shm.sock")
	l, err := Listen(path, Config{AllowedUIDs: []int{os.Geteuid() + 12345}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	if c, err := Dial(guardCtx(t), path, Config{}); err == nil {
		c.Close()
		t.Error("dial succeeded against a listener that refuses our uid")
	}
	if err := <-errc; !errors.Is(err, ErrPeerNotAllowed) {
		t.Fatalf("Accept: %v, want ErrPeerNotAllowed", err)
	}
}

func TestAttachValidatesHeader(t *testing.T) {
	checkNoLeak(t)
	for _, tc := range []struct {
		name string
		off  int64
		val  byte
	}{{"magic", offMagic, 'X'}, {"version", offVersion, 9}, {"ring size", offRingSize + 2, 1}, {"hash", offHash, 1}} {
		seg, err := Create(Config{})
		if err != nil {
			t.Fatal(err)
		}
		mem, ctl := seg.Files(SideA)
		if _, err := unix.Pwrite(int(mem.Fd()), []byte{tc.val}, tc.off); err != nil {
			t.Fatal(err)
		}
		if c, err := Attach(mem, ctl, SideA, Config{}); !errors.Is(err, ErrBadSegment) {
			t.Errorf("%s corrupted: %v, want ErrBadSegment", tc.name, err)
			if c != nil {
				c.Close()
			}
		}
		seg.Close()
	}
	seg, _ := Create(Config{})
	defer seg.Close()
	mem, ctl := seg.Files(SideA)
	c, err := Attach(mem, ctl, SideA, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := Attach(mem, ctl, SideA, Config{}); !errors.Is(err, ErrSideTaken) {
		t.Errorf("second attach of side A: %v, want ErrSideTaken", err)
	}
}

// TestIdleChannelParks checks that a receiver blocked on an idle channel
// under the default policy sleeps rather than spins. The bound (a quarter
// of a core) only catches spinning; the measured figure is logged.
//
// It must not run in parallel: it measures the whole process's CPU time.
func TestIdleChannelParks(t *testing.T) {
	checkNoLeak(t)
	_, b := pair(t, Config{}, Config{})
	done := make(chan struct{})
	go func() {
		b.ReceiveTimeout(nil, 500*time.Millisecond)
		close(done)
	}()
	time.Sleep(50 * time.Millisecond)
	var r0, r1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	start := time.Now()
	<-done
	syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	wall := time.Since(start)
	cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
	frac := float64(cpu) / float64(wall)
	t.Logf("idle: %v CPU over %v (%.2f%% of a core, whole test process)", cpu, wall, 100*frac)
	if frac > 0.25 {
		t.Errorf("idle channel used %.0f%% of a core: it is spinning", 100*frac)
	}
}
