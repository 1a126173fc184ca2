package shm

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// TestLoansReleasedOutOfOrder holds many loans and releases them in a
// random order while the sender keeps reserving and committing: content
// stays intact and room comes back only as the oldest loans go.
func TestLoansReleasedOutOfOrder(t *testing.T) {
	checkNoLeak(t)
	cfg := Config{RingSize: 4096, BlockSize: 4096, Blocks: 16}
	a, b := pair(t, cfg, cfg)
	r := rand.New(rand.NewPCG(21, 22))
	var sent, got uint64
	var held []Loan
	var heldSeq []uint64
	for round := 0; round < 20_000; round++ {
		switch r.IntN(3) {
		case 0: // reserve and commit, maybe in the pool
			n := r.IntN(300)
			if r.IntN(10) == 0 {
				n = 3000 + r.IntN(20000)
			}
			res, err := a.TryReserve(n)
			if errors.Is(err, ErrFull) || errors.Is(err, ErrPoolExhausted) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			makeMsg(res.Bytes(), sent)
			if err := res.Commit(); err != nil {
				t.Fatal(err)
			}
			sent++
		case 1:
			l, err := b.TryReceiveLoan()
			if errors.Is(err, ErrEmpty) || errors.Is(err, ErrTooManyLoans) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			checkMsg(t, l.Bytes(), got)
			held, heldSeq = append(held, l), append(heldSeq, got)
			got++
		case 2:
			if len(held) == 0 {
				continue
			}
			i := r.IntN(len(held))
			checkMsg(t, held[i].Bytes(), heldSeq[i]) // still intact while held
			if err := held[i].Release(); err != nil {
				t.Fatal(err)
			}
			if err := held[i].Release(); !errors.Is(err, ErrLoanReleased) {
				t.Fatalf("second release: %v, want ErrLoanReleased", err)
			}
			held = append(held[:i], held[i+1:]...)
			heldSeq = append(heldSeq[:i], heldSeq[i+1:]...)
		}
	}
	for _, l := range held {
		l.Release()
	}
	st, err := b.Stats()
	if err != nil || st.LoansOutstanding != 0 {
		t.Fatalf("stats after releasing all: %+v, %v", st, err)
	}
	if got < 1000 {
		t.Fatalf("only %d messages went through", got)
	}
}

// TestPoolExhaustionBackPressure fills the pool with loans the receiver
// holds: TrySend reports ErrPoolExhausted (never a silent fallback), Stats
// report the blocks, a timed Send times out, and a blocked Send completes
// once a loan is released.
func TestPoolExhaustionBackPressure(t *testing.T) {
	checkNoLeak(t)
	cfg := Config{RingSize: 8192, BlockSize: 4096, Blocks: 4}
	a, b := pair(t, cfg, cfg)
	ctx := guardCtx(t)
	big := make([]byte, 8192) // two blocks: too big for the ring, fits the pool
	for i := 0; i < 2; i++ {
		if err := a.TrySend(big); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if err := a.TrySend(big); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("third send: %v, want ErrPoolExhausted", err)
	}
	l1, err := b.ReceiveLoan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := a.Stats()
	if st.SendBlocksInUse != 4 {
		t.Fatalf("sender stats %+v, want 4 blocks in use", st)
	}
	if err := a.SendTimeout(big, 10*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("timed send: %v, want ErrTimeout", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Send(ctx, big) }()
	if err := l1.Release(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("blocked send after release: %v", err)
	}
	buf := make([]byte, len(big))
	for i := 0; i < 2; i++ {
		if _, err := b.Receive(ctx, buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.TrySend(make([]byte, 5*4096)); !errors.Is(err, ErrTooLarge) && err != nil {
		t.Fatalf("message larger than the pool: %v", err)
	}
}

func TestErrorsAreSentinels(t *testing.T) {
	checkNoLeak(t)
	cfg := Config{RingSize: 4096, Blocks: -1, MaxMessage: 10000}
	a, b := pair(t, cfg, cfg)
	ctx := guardCtx(t)
	if err := a.TrySend(make([]byte, 10001)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized: %v", err)
	}
	for err := error(nil); err == nil; {
		err = a.TrySend(make([]byte, 1000))
		if err != nil && !errors.Is(err, ErrFull) {
			t.Fatalf("filling: %v", err)
		}
	}
	small := make([]byte, 10)
	if n, err := b.Receive(ctx, small); !errors.Is(err, ErrShortBuffer) || n != 1000 {
		t.Errorf("short buffer: %d, %v", n, err)
	}
	if n, err := b.Receive(ctx, make([]byte, 1000)); err != nil || n != 1000 {
		t.Errorf("retry with a large enough buffer: %d, %v", n, err)
	}
	if _, err := b.ReceiveTimeout(small, time.Millisecond); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("%v", err)
	}
	var ne interface{ Timeout() bool }
	if !errors.As(ErrTimeout, &ne) || !ne.Timeout() {
		t.Error("ErrTimeout is not a timeout net.Error")
	}
	a.Close()
	if err := a.TrySend(small); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	for {
		_, err := b.Receive(ctx, make([]byte, 1000))
		if errors.Is(err, ErrPeerGone) {
			break
		}
		if err != nil {
			t.Fatalf("draining after peer close: %v", err)
		}
	}
}

func TestCloseUnblocksWaiters(t *testing.T) {
	checkNoLeak(t)
	for _, w := range []WaitPolicy{Hybrid, BusyPoll, Park} {
		a, b := pair(t, Config{Wait: w}, Config{Wait: w})
		ctx := guardCtx(t)
		done := make(chan error, 1)
		go func() {
			_, err := b.Receive(ctx, nil)
			done <- err
		}()
		time.Sleep(time.Millisecond) // let it park; not needed for correctness
		b.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Fatalf("%v: Receive after Close: %v", w, err)
		}
		a.Close()
	}
}

func TestStageAndFlushPublishOnce(t *testing.T) {
	checkNoLeak(t)
	a, b := pair(t, Config{}, Config{})
	ctx := guardCtx(t)
	for i := 0; i < 10; i++ {
		res, err := a.Reserve(ctx, 8)
		if err != nil {
			t.Fatal(err)
		}
		makeMsg(res.Bytes(), uint64(i))
		res.Stage()
	}
	if _, err := b.TryReceive(make([]byte, 8)); !errors.Is(err, ErrEmpty) {
		t.Fatalf("staged messages visible before Flush: %v", err)
	}
	a.Flush()
	seq := uint64(0)
	n, err := b.ReceiveBatch(ctx, 100, func(m []byte) { checkMsg(t, m, seq); seq++ })
	if err != nil || n != 10 {
		t.Fatalf("ReceiveBatch: %d, %v", n, err)
	}
}
