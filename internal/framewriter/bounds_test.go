package framewriter

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
)

func TestGaugeFollowsTheBacklogAndReturnsToZero(t *testing.T) {
	checkNoLeak(t)
	var gauge atomic.Int64
	g := newGated()
	w := start(t, g, Config{Gauge: &gauge, MaxWrite: 1000})
	w.Append(false, realFrame('a', 100))
	<-g.started
	for range 50 {
		w.Append(false, realFrame('d', 100))
	}
	w.Append(true, realFrame('U', 100))
	if got, want := gauge.Load(), int64(w.Pending()); got != want || got != 52*100 {
		t.Fatalf("gauge %d, Pending %d, want both %d", got, want, 52*100)
	}
	close(g.gate)
	if err := w.Close(true); err != nil {
		t.Fatal(err)
	}
	if n := gauge.Load(); n != 0 {
		t.Fatalf("gauge %d after everything was written, want 0", n)
	}
}

func TestGaugeCountsDroppedFramesOut(t *testing.T) {
	checkNoLeak(t)
	var gauge atomic.Int64
	g := newGated()
	w := start(t, g, Config{Gauge: &gauge})
	w.Append(false, realFrame('a', 100))
	<-g.started
	w.Append(false, realFrame('d', 100))
	w.DropData()
	w.Append(true, realFrame('U', 100))
	w.Shutdown(false)
	close(g.gate)
	<-w.Done()
	if n := gauge.Load(); n != 0 {
		t.Fatalf("gauge %d after drops, want 0", n)
	}
	if s := g.stream(); bytes.IndexByte(s, 'd') >= 0 {
		t.Fatal("a dropped data frame was written")
	}
}

func TestOnLowRunsOnceAtLowWaterWithoutTheWritersLock(t *testing.T) {
	checkNoLeak(t)
	var w *Writer
	var calls atomic.Int32
	var mu sync.Mutex
	low := make(chan int, 1)
	g := newGated()
	w = start(t, g, Config{MaxWrite: 1000, LowWater: 2000, OnLow: func() {
		calls.Add(1)
		mu.Lock()
		defer mu.Unlock()
		low <- w.Pending() // calling the writer here would deadlock under its lock
	}})
	if w.ArmLow() {
		t.Fatal("ArmLow armed with an empty backlog")
	}
	w.Append(false, realFrame('a', 100))
	<-g.started
	for range 100 {
		w.Append(false, realFrame('d', 100))
	}
	if !w.ArmLow() {
		t.Fatal("ArmLow did not arm over the low-water mark")
	}
	close(g.gate)
	if n := <-low; n > 2000 {
		t.Fatalf("OnLow ran with %d bytes pending, over LowWater 2000", n)
	}
	if err := w.Close(true); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("OnLow ran %d times, want 1", n)
	}
}

// A data lane that is written in capped pieces while new frames keep
// arriving never drains to empty; its buffer must not grow by everything
// ever written through it.
func TestANeverDrainedLaneStaysBounded(t *testing.T) {
	checkNoLeak(t)
	var mu sync.Mutex
	var sink bytes.Buffer
	var want bytes.Buffer
	var w *Writer
	var maxCap int
	w = start(t, writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return sink.Write(p)
	}), Config{MaxWrite: 4096, HighWater: 64 << 10})
	for i := range 20000 {
		f := realFrame(byte('a'+i%26), 100+i%200)
		want.Write(f(nil))
		w.Append(false, f)
		w.Wait()
		w.mu.Lock()
		maxCap = max(maxCap, cap(w.data.buf))
		w.mu.Unlock()
	}
	if err := w.Close(true); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sink.Bytes(), want.Bytes()) {
		t.Fatal("stream differs from what was appended")
	}
	if maxCap > 1<<20 {
		t.Fatalf("the data lane's buffer grew to %d bytes with a 64 KiB high water (%d written)", maxCap, want.Len())
	}
	t.Logf("largest data buffer %d bytes for %d written", maxCap, want.Len())
}
