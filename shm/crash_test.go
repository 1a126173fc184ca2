package shm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestKillSenderNeverDeliversHalfMessages kills a sending child with
// SIGKILL at random moments. Every message received before and after must
// be complete, then Receive reports ErrPeerGone instead of hanging.
func TestKillSenderNeverDeliversHalfMessages(t *testing.T) {
	// It kills only its own children; leaks are caught by VerifyTestMain.
	t.Parallel()
	r := rand.New(rand.NewPCG(11, 12))
	for round := 0; round < 5; round++ {
		c, cmd := startChild(t, "sender", Config{})
		ctx := guardCtx(t)
		killAt := uint64(r.IntN(2000))
		buf := make([]byte, 8<<20)
		var seq uint64
		for {
			if seq == killAt {
				// The child is mid-stream, possibly mid-write.
				cmd.Process.Signal(syscall.SIGKILL)
			}
			n, err := c.Receive(ctx, buf)
			if errors.Is(err, ErrPeerGone) {
				break
			}
			if err != nil {
				t.Fatalf("round %d, message %d: %v", round, seq, err)
			}
			checkMsg(t, buf[:n], seq)
			seq++
		}
		cmd.Wait()
		if seq < killAt {
			t.Fatalf("round %d: peer reported gone after %d messages, before it was killed at %d", round, seq, killAt)
		}
		t.Logf("round %d: killed at message %d, %d delivered in all", round, killAt, seq)
		c.Close()
	}
}

// TestKillReceiverUnblocksSender kills a receiving child while the parent
// streams to it: the parent's Send, blocked on a full ring, returns
// ErrPeerGone.
func TestKillReceiverUnblocksSender(t *testing.T) {
	// It kills only its own children; leaks are caught by VerifyTestMain.
	t.Parallel()
	r := rand.New(rand.NewPCG(13, 14))
	for round := 0; round < 3; round++ {
		c, cmd := startChild(t, "receiver", Config{})
		ctx := guardCtx(t)
		killAt := 300 + r.IntN(20_000) // past a ringful: the child is receiving
		msg := make([]byte, 1000)
		var err error
		for i := 0; err == nil; i++ {
			if i == killAt {
				cmd.Process.Signal(syscall.SIGKILL)
			}
			err = c.Send(ctx, msg)
		}
		if !errors.Is(err, ErrPeerGone) {
			t.Fatalf("round %d: Send after the receiver died: %v, want ErrPeerGone", round, err)
		}
		cmd.Wait()
		c.Close()
	}
}

// TestKillMidWriteLeavesNothingBehind kills a child holding a half-written
// pool reservation: the parent never sees the half message, only the note
// sent after it, and then ErrPeerGone; its pool stats show the stuck run.
func TestKillMidWriteLeavesNothingBehind(t *testing.T) {
	t.Parallel() // it kills only its own child
	c, cmd := startChild(t, "stuck-loan", Config{})
	ctx := guardCtx(t)
	buf := make([]byte, 1<<20)
	n, err := c.Receive(ctx, buf)
	if err != nil || n != 8 {
		t.Fatalf("note: %d bytes, %v", n, err)
	}
	st, _ := c.Stats()
	if st.ReceiveBlocksInUse == 0 {
		t.Errorf("stats do not show the peer's stuck run: %+v", st)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	if n, err := c.Receive(ctx, buf); !errors.Is(err, ErrPeerGone) {
		t.Fatalf("after kill: %d bytes, %v, want ErrPeerGone", n, err)
	}
}

// TestStoppedPeerIsNotDeclaredDead pauses an echoing child with SIGSTOP:
// calls time out rather than report the peer gone, and after SIGCONT the
// exchange resumes.
func TestStoppedPeerIsNotDeclaredDead(t *testing.T) {
	// It stops only its own child, and a busy machine can only make the
	// stopped peer's silence longer, never end it.
	t.Parallel()
	for _, w := range []WaitPolicy{Hybrid, BusyPoll, Park} {
		t.Run(w.String(), func(t *testing.T) {
			c, cmd := startChild(t, "echo", Config{Wait: w})
			ctx := guardCtx(t)
			buf := make([]byte, 64)
			if err := c.Send(ctx, []byte("ping")); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Receive(ctx, buf); err != nil {
				t.Fatal(err)
			}
			cmd.Process.Signal(syscall.SIGSTOP)
			waitStopped(t, cmd.Process.Pid)
			if err := c.Send(ctx, []byte("while stopped")); err != nil {
				t.Fatal(err)
			}
			// Well past the 100 ms in which a dead peer is reported.
			if _, err := c.ReceiveTimeout(buf, 300*time.Millisecond); !errors.Is(err, ErrTimeout) {
				t.Fatalf("stopped peer: %v, want ErrTimeout", err)
			}
			cmd.Process.Signal(syscall.SIGCONT)
			n, err := c.Receive(ctx, buf)
			if err != nil || string(buf[:n]) != "while stopped" {
				t.Fatalf("after SIGCONT: %q, %v", buf[:n], err)
			}
		})
	}
}

// waitStopped waits until the kernel shows pid stopped: SIGSTOP takes
// effect asynchronously, and a child still running could answer.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		// The state follows the parenthesised command name.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'T' {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("pid %d did not stop", pid)
}

// TestCancelWakesParkedReceive checks a parked Receive ends with the
// context's error when the context is cancelled. The elapsed time is
// logged; the bound is only the hang guard.
func TestCancelWakesParkedReceive(t *testing.T) {
	_, b := pair(t, Config{}, Config{Wait: Park})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := b.Receive(ctx, make([]byte, 64))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond) // let it park; not needed for correctness
	start := time.Now()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Receive: %v, want context.Canceled", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("Receive did not return after cancel")
	}
	t.Logf("cancel reported after %v", time.Since(start))
}

// TestPeerDeathIsReportedPromptly checks a parked Receive ends with
// ErrPeerGone after the peer dies. The bound is a hang guard, not a speed
// claim; the elapsed time is logged.
func TestPeerDeathIsReportedPromptly(t *testing.T) {
	t.Parallel() // it kills only its own child; the bound is a hang guard
	c, cmd := startChild(t, "receiver", Config{Wait: Park})
	ctx := guardCtx(t)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Receive(ctx, make([]byte, 64))
		errc <- err
	}()
	start := time.Now()
	cmd.Process.Signal(syscall.SIGKILL)
	if err := <-errc; !errors.Is(err, ErrPeerGone) {
		t.Fatalf("Receive: %v, want ErrPeerGone", err)
	}
	t.Logf("peer death reported after %v", time.Since(start))
}
