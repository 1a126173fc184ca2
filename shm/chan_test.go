package shm

import (
	"bytes"
	"errors"
	"testing"
)

func TestSendReceiveRoundTrip(t *testing.T) {
	checkNoLeak(t)
	a, b := pair(t, Config{}, Config{})
	ctx := guardCtx(t)
	for _, n := range []int{0, 1, 64, 4096, 100 << 10, 1 << 20, 5 << 20} {
		msg := make([]byte, n)
		fill(msg, uint64(n))
		if err := a.Send(ctx, msg); err != nil {
			t.Fatalf("send %d: %v", n, err)
		}
		buf := make([]byte, n)
		got, err := b.Receive(ctx, buf)
		if err != nil || got != n || !bytes.Equal(buf, msg) {
			t.Fatalf("receive %d: got %d, %v", n, got, err)
		}
	}
	if _, err := b.TryReceive(nil); !errors.Is(err, ErrEmpty) {
		t.Fatalf("TryReceive on empty ring: %v, want ErrEmpty", err)
	}
	a.Close()
	b.Close()
}
