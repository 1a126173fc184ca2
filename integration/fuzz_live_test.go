package integration_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/wire"
)

var (
	fuzzFrames = flag.Int("postbox.fuzz.frames", 2000, "live fuzz: mutated frames per connection")
	fuzzConns  = flag.Int("postbox.fuzz.conns", 32, "live fuzz: concurrent fuzzing connections")
	fuzzTime   = flag.Duration("postbox.fuzz.time", 10*time.Second, "live fuzz: stop sending after this long")
	fuzzSeed   = flag.Uint64("postbox.fuzz.seed", 0, "live fuzz: seed (0: random, logged)")
	fuzzServe  = flag.String("postbox.fuzz.serve", "",
		"live fuzz: `postbox serve` arguments besides --memory (default: none, the broker's defaults)")
)

// fuzzRSSLimit is the most resident memory the broker may use while it is
// fuzzed, at its default limits (16 MiB max frame). It holds because a
// frame's declared size costs a connection's reader only the bytes that
// actually arrived (wire.Reader grows its buffer as they come and drops a
// large one after its frame): before that fix, 32 connections claiming
// near-max frames held up to 32 x 16 MiB, and 10 s runs measured
// 700-1250 MiB; after it, the same 10 s runs peak at about 170 MiB.
const fuzzRSSLimit = 256 << 20

// TestLiveFuzzBrokerKeepsServing sends mutated frames, seeded from the
// conformance vectors, over many connections to a `postbox serve`
// process, while another client goes on sending, receiving and acking.
// The broker must not crash, must answer that client's every call within
// the hang guard, and must keep its RSS bounded.
func TestLiveFuzzBrokerKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("live fuzz: not in -short")
	}
	seeds := loadSeedFrames(t)
	seed := *fuzzSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	p := testbroker.StartProcess(t, cli(t), append([]string{"--memory"}, strings.Fields(*fuzzServe)...)...)
	pid := p.Cmd.Process.Pid
	steady := p.Dial(t)
	name := fmt.Sprintf("steady.%d", seed%1_000_000)
	mb := create(t, steady, name)

	ctx, stop := context.WithTimeout(context.Background(), *fuzzTime)
	defer stop()
	var (
		wg                    sync.WaitGroup
		frames, conns, resets atomic.Int64
		rssMax                atomic.Int64
		steadyOps             atomic.Int64
		steadyErr             = make(chan error, 1)
	)

	// The broker's RSS, sampled until the fuzzing has ended and the broker
	// has had a second to work through what the fuzzers left it.
	sampling, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, err := readRSS(pid); err == nil && rss > rssMax.Load() {
				rssMax.Store(rss)
			}
			select {
			case <-sampling:
				return
			case <-tick.C:
			}
		}
	}()

	// The second client: every call bounded by the hang guard.
	steadyDone := make(chan struct{})
	go func() {
		defer close(steadyDone)
		for i := 0; ctx.Err() == nil; i++ {
			if err := steadyRound(mb, i); err != nil {
				steadyErr <- err
				stop()
				return
			}
			steadyOps.Add(1)
		}
	}()

	for i := range *fuzzConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			fuzzConnection(ctx, p.Socket, rng, seeds, *fuzzFrames, &frames, &conns, &resets)
		}()
	}
	wg.Wait()
	stop()
	<-steadyDone

	select {
	case err := <-steadyErr:
		t.Fatalf("seed %d: the steady client failed after %d rounds: %v\n%s", seed, steadyOps.Load(), err, p.Log())
	default:
	}
	// Still alive, still answering, still correct.
	if err := p.Cmd.Process.Signal(syscallZero); err != nil {
		t.Fatalf("seed %d: broker process gone: %v\n%s", seed, err, p.Log())
	}
	if err := steadyRound(mb, -1); err != nil {
		t.Fatalf("seed %d: steady round after the fuzzing: %v", seed, err)
	}
	if strings.Contains(p.Log(), "panic") {
		t.Fatalf("seed %d: the broker logged a panic\n%s", seed, p.Log())
	}
	time.Sleep(time.Second) // let the broker finish with the fuzzers' connections
	close(sampling)
	<-sampled
	rss := rssMax.Load()
	var boxes, depth, inFlight, bytes, blocked uint64
	if infos, err := steady.List(ctxT(t)); err == nil {
		for _, in := range infos {
			boxes, depth, inFlight, bytes, blocked = boxes+1, depth+in.Depth, inFlight+uint64(in.InFlight), bytes+in.Bytes, blocked+uint64(in.BlockedSenders)
		}
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	rssAfter, _ := readRSS(pid)
	t.Logf("seed %d: a second after: %d open descriptors, RSS %.1f MiB", seed, len(fds), float64(rssAfter)/(1<<20))
	t.Logf("seed %d: afterwards %d mailboxes hold %d messages (%d KiB), %d in flight, %d blocked senders",
		seed, boxes, depth, bytes>>10, inFlight, blocked)
	t.Logf("seed %d: %d frames over %d connections (%d fuzzers; %d write errors or resets); steady rounds %d, slowest call %v; broker RSS max %.1f MiB",
		seed, frames.Load(), conns.Load(), *fuzzConns, resets.Load(), steadyOps.Load(), time.Duration(steadySlowest.Load()).Round(time.Millisecond), float64(rss)/(1<<20))
	if steadyOps.Load() == 0 {
		t.Fatalf("seed %d: the steady client completed no round", seed)
	}
	if rss > fuzzRSSLimit {
		t.Fatalf("seed %d: broker RSS reached %d MiB, limit %d MiB", seed, rss>>20, fuzzRSSLimit>>20)
	}
}

// steadySlowest is the longest any steady call took, in nanoseconds.
var steadySlowest atomic.Int64

func noteSlowest(d time.Duration) {
	for {
		old := steadySlowest.Load()
		if int64(d) <= old || steadySlowest.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

// steadyRound sends one message, receives it and acks it, each call
// within the hang guard.
func steadyRound(mb *postbox.Mailbox, i int) error {
	call := func(what string, f func(context.Context) error) error {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		start := time.Now()
		defer func() { noteSlowest(time.Since(start)) }()
		if err := f(ctx); err != nil {
			return fmt.Errorf("%s (round %d, after %v): %w", what, i, time.Since(start).Round(time.Millisecond), err)
		}
		return nil
	}
	body := []byte(strconv.Itoa(i))
	var m *postbox.Message
	if err := call("send", func(ctx context.Context) error { _, err := mb.Send(ctx, body); return err }); err != nil {
		return err
	}
	if err := call("receive", func(ctx context.Context) (err error) { m, err = mb.Receive(ctx); return err }); err != nil {
		return err
	}
	if string(m.Body) != string(body) {
		return fmt.Errorf("round %d: received %q, want %q", i, m.Body, body)
	}
	return call("ack", m.Ack)
}

// fuzzConnection sends n mutated frames, over as many connections as it
// takes: each connection usually starts with a valid HELLO, carries a
// burst of frames, and is dropped (the broker may drop it first).
func fuzzConnection(ctx context.Context, socket string, rng *rand.Rand, seeds [][]byte, n int,
	frames, conns, resets *atomic.Int64) {
	hello := seeds[0]
	for sent := 0; sent < n && ctx.Err() == nil; {
		nc, err := net.Dial("unix", socket)
		if err != nil {
			resets.Add(1)
			time.Sleep(time.Millisecond)
			continue
		}
		conns.Add(1)
		drained := make(chan struct{})
		go func() { io.Copy(io.Discard, nc); close(drained) }()
		w := bufio.NewWriter(nc)
		if rng.IntN(8) != 0 {
			w.Write(hello)
		}
		burst := 1 + rng.IntN(64)
		for j := 0; j < burst && sent < n && ctx.Err() == nil; j++ {
			w.Write(mutate(rng, seeds))
			sent++
			frames.Add(1)
			if rng.IntN(4) == 0 {
				nc.SetWriteDeadline(time.Now().Add(time.Second))
				if w.Flush() != nil {
					resets.Add(1)
					break
				}
			}
		}
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		if w.Flush() != nil {
			resets.Add(1)
		}
		if rng.IntN(2) == 0 {
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond) // let some replies come
		}
		nc.Close()
		<-drained
	}
}

// mutate returns a frame derived from a seed: bytes flipped, cut short,
// spliced with another, its size field, op, flags or request id changed.
func mutate(rng *rand.Rand, seeds [][]byte) []byte {
	f := append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
	for range 1 + rng.IntN(3) {
		switch rng.IntN(9) {
		case 0: // flip bytes
			for range min(len(f), 1+rng.IntN(4)) {
				f[rng.IntN(len(f))] ^= byte(1 << rng.IntN(8))
			}
		case 1: // truncate (the size field still says the old length)
			if len(f) > 4 {
				f = f[:4+rng.IntN(len(f)-4)]
			}
		case 2: // splice another seed's tail onto this one's head
			g := seeds[rng.IntN(len(seeds))]
			f = append(f[:rng.IntN(len(f)+1)], g[rng.IntN(len(g)+1):]...)
		case 3: // a size field that agrees with the bytes
			if len(f) >= 4 {
				binary.LittleEndian.PutUint32(f, uint32(len(f)-4))
			}
		case 4: // a size field that does not
			if len(f) >= 4 {
				sizes := []uint32{0, 1, 11, 12, 13, uint32(len(f)), 1 << 16, 16 << 20, 16<<20 + 1, 1<<32 - 1, rng.Uint32()}
				binary.LittleEndian.PutUint32(f, sizes[rng.IntN(len(sizes))])
			}
		case 5: // a random op, a request op, a pushed op
			if len(f) > 4 {
				ops := []byte{byte(rng.IntN(256)), byte(wire.OpSend), byte(wire.OpRecv), byte(wire.OpConsume),
					byte(wire.OpCredit), byte(wire.OpAck), byte(wire.OpNack), byte(wire.OpCancel), byte(wire.OpBrowse),
					byte(wire.OpChannel), byte(wire.OpAttach), byte(wire.OpHello), 0x60, 0x7f, 0xa0}
				f[4] = ops[rng.IntN(len(ops))]
			}
		case 6: // random flags
			if len(f) > 5 {
				f[5] = byte(rng.IntN(256))
			}
		case 7: // a request id that collides, or not
			if len(f) >= 16 {
				binary.LittleEndian.PutUint64(f[8:], uint64(rng.IntN(4)))
			}
		case 8: // random bytes appended (a second, garbage frame)
			junk := make([]byte, rng.IntN(64))
			for i := range junk {
				junk[i] = byte(rng.IntN(256))
			}
			f = append(f, junk...)
		}
	}
	return f
}

// loadSeedFrames reads every frame of the conformance vectors; the first
// is a valid HELLO.
func loadSeedFrames(t *testing.T) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "wire", "testdata", "vectors", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no conformance vectors: %v", err)
	}
	var hello []byte
	var frames [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var vs []struct {
			Name  string `json:"name"`
			Hex   string `json:"hex"`
			Valid bool   `json:"valid"`
		}
		if err := json.Unmarshal(data, &vs); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, v := range vs {
			b, err := hex.DecodeString(v.Hex)
			if err != nil || len(b) == 0 {
				continue
			}
			if v.Name == "hello" {
				hello = b
			}
			frames = append(frames, b)
		}
	}
	if hello == nil {
		t.Fatal("no valid HELLO vector named hello")
	}
	return append([][]byte{hello}, frames...)
}

// readRSS returns the VmRSS of process pid in bytes.
func readRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// syscallZero is signal 0: it checks that a process exists.
var syscallZero = syscall.Signal(0)
