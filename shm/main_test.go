package shm

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// childEnv selects a child role when the test binary re-executes itself.
const childEnv = "POSTBOX_SHM_TEST_CHILD"

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role))
	}
	// No goroutine of ours may outlive the tests, parallel ones included;
	// goleak itself ignores the testing package's and os/signal's.
	goleak.VerifyTestMain(m)
}

// startChild runs this test binary as a child in role, attached to a new
// channel; it returns the parent's end.
func startChild(t *testing.T, role string, cfg Config) (*Chan, *exec.Cmd) {
	t.Helper()
	c, files, err := NewPair(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role)
	cmd.ExtraFiles = files
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	closeFiles(files)
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		c.Close()
	})
	return c, cmd
}

// Child roles. Each attaches with FromInherited(3, 4) and runs until its
// peer goes or it is killed.
func runChild(role string) int {
	c, err := FromInherited(3, 4, Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	defer c.Close()
	ctx := context.Background()
	buf := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(uint64(os.Getpid()), 9))
	switch role {
	case "sender": // sends checked messages of random sizes, all tiers, until killed
		for seq := uint64(0); ; seq++ {
			n := r.IntN(512)
			switch r.IntN(100) {
			case 0:
				n = 200<<10 + r.IntN(300<<10) // pool
			case 1:
				n = 4<<20 + r.IntN(1<<20) // memfd
			}
			res, err := c.Reserve(ctx, n)
			if err != nil {
				return 0
			}
			makeMsg(res.Bytes(), seq)
			if err := res.Commit(); err != nil {
				return 0
			}
		}
	case "receiver": // receives until killed
		for {
			if _, err := c.Receive(ctx, buf); err != nil {
				return 0
			}
		}
	case "echo": // sends back every message
		for {
			n, err := c.Receive(ctx, buf)
			if err != nil {
				return 0
			}
			if err := c.Send(ctx, buf[:n]); err != nil {
				return 0
			}
		}
	case "stuck-loan": // reserves a pool run, half writes it, says so, waits to be killed
		res, err := c.Reserve(ctx, 300<<10)
		if err != nil {
			return 2
		}
		copy(res.Bytes()[:1000], "half written")
		var note [8]byte
		binary.LittleEndian.PutUint64(note[:], 1)
		// The note goes on the ring after the reservation is cancelled
		// by Send; so announce with a fresh reservation-free path:
		c.sendMu.Lock()
		c.res = pending{} // keep the pool run marked in use, as a crash would
		c.sendMu.Unlock()
		if err := c.Send(ctx, note[:]); err != nil {
			return 2
		}
		time.Sleep(time.Hour)
	}
	return 2
}
