package rpc

import (
	"sync"
	"sync/atomic"
	"testing"
)

// rpc-acked must never pass the sequence of an exactly-once call still
// waiting for its reply, however calls of one client interleave: the
// server would refuse that call as already acknowledged.
func TestAckedNeverPassesAnOutstandingCall(t *testing.T) {
	c := &Client{outstanding: map[uint64]struct{}{}}
	var maxAcked atomic.Uint64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20000 {
				sem := ExactlyOnce
				if (g+i)%3 == 0 {
					sem = Maybe
				}
				seq, release := c.take(sem)
				a := c.acked()
				for old := maxAcked.Load(); a > old && !maxAcked.CompareAndSwap(old, a); old = maxAcked.Load() {
				}
				if m := maxAcked.Load(); sem == ExactlyOnce && m > seq {
					t.Errorf("rpc-acked %d sent while call %d waits", m, seq)
					release()
					return
				}
				release()
			}
		}()
	}
	wg.Wait()
}
