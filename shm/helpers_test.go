package shm

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// hangGuard bounds a test that would otherwise hang on a bug. It is never
// an assertion about speed: it is generous on a slow, shared machine.
const hangGuard = 60 * time.Second

func guardCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}

// pair makes both ends of a channel in this process, as a broker's two
// clients would get them.
func pair(t testing.TB, cfgA, cfgB Config) (a, b *Chan) {
	t.Helper()
	seg, err := Create(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	mem, ctl := seg.Files(SideA)
	a, err = Attach(mem, ctl, SideA, cfgA)
	if err != nil {
		t.Fatal(err)
	}
	mem, ctl = seg.Files(SideB)
	b, err = Attach(mem, ctl, SideB, cfgB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// checkNoLeak fails t if goroutines started during t are still alive once
// t's other cleanups have run (goleak.Find with goleak.IgnoreCurrent). It
// keeps looking for up to hangGuard, as goroutines may take a moment to exit
// after Close; one goleak.Find gives up after under a second. goleak cannot
// tell whose goroutine it sees, so a test that calls checkNoLeak must not
// call t.Parallel; parallel tests rely on VerifyTestMain in TestMain.
func checkNoLeak(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		deadline := time.Now().Add(hangGuard)
		for {
			err := goleak.Find(ignore)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines leaked: %v", err)
				return
			}
		}
	})
}

// fill writes a pattern determined by seq into p.
func fill(p []byte, seq uint64) {
	x := seq*0x9E3779B97F4A7C15 + 1
	for i := range p {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		p[i] = byte(x)
	}
}

func verify(p []byte, seq uint64) bool {
	x := seq*0x9E3779B97F4A7C15 + 1
	for i := range p {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		if p[i] != byte(x) {
			return false
		}
	}
	return true
}
