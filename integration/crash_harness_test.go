package integration_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

var (
	crashCycles = flag.Int("postbox.crash.cycles", 5, "crash harness: how many times the broker is killed with SIGKILL")
	crashSeed   = flag.Uint64("postbox.crash.seed", 0, "crash harness: seed for the kill points (0: random, logged)")
)

// The crash harness's mailboxes: both durable, one bounded so that senders
// also wait for space, both sent to at mixed priorities.
const (
	crashFree   = "crash.free"
	crashCapped = "crash.capped"
)

// crashReceivers is who receives in every cycle: a one-at-a-time receiver
// and a consumer on each mailbox.
var crashReceivers = []struct{ mailbox, mode string }{
	{crashFree, "recv"}, {crashFree, "consume"}, {crashCapped, "recv"}, {crashCapped, "consume"},
}

const crashSenders = 3

// TestCrashHarnessLosesNothingAcknowledged runs a `postbox serve` process
// on one data directory, with sender and receiver processes against two
// durable mailboxes, kills the broker with SIGKILL after a random number
// of acknowledged sends, lets the clients die with their connections,
// restarts it and goes on, -postbox.crash.cycles times. Then a final
// receiver drains both mailboxes, and the ledger of everything the
// clients recorded is checked (see ledger.check): nothing acknowledged
// lost, no confirmed ack undone, redelivery counts exact, per-sender
// order kept, identities intact. After every other crash random garbage
// is appended to the newest segment, as a torn write would leave it:
// recovery must cut it off as a torn tail (never report corruption), and
// the same checks show that cutting it dropped nothing acknowledged.
func TestCrashHarnessLosesNothingAcknowledged(t *testing.T) {
	testbroker.CheckGoroutines(t)
	bin, role := cli(t), self(t)
	seed := *crashSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	work := t.TempDir()
	data := filepath.Join(work, "data")
	l := newLedger()
	start := time.Now()
	cycles := *crashCycles
	torn := 0         // recoveries that cut a torn tail off the log
	tears := 0        // crashes after which garbage was appended to the log
	injected := false // garbage was appended after the last crash
	// recovered checks what the broker p logged when it recovered.
	recovered := func(p *testbroker.Process, when string) {
		t.Helper()
		p.WaitLog(t, "durable mailboxes recovered")
		log := p.Log()
		cut := strings.Contains(log, "torn_tail_dropped_bytes")
		if cut {
			torn++
		}
		if injected && !cut {
			t.Errorf("%s: garbage appended to the log after the crash was not cut off as a torn tail:\n%s", when, log)
		}
		injected = false
		if strings.Contains(log, "corrupt") {
			t.Errorf("%s: a kill -9 (and a torn tail) can only damage the end of the log, yet the broker reports corruption:\n%s", when, log)
		}
	}
	for cycle := 1; cycle <= cycles; cycle++ {
		p := testbroker.StartProcess(t, bin, "--data", data)
		recovered(p, fmt.Sprintf("cycle %d", cycle))
		c := p.Dial(t)
		if cycle == 1 {
			create(t, c, crashFree, postbox.Durable(), postbox.Mode(0o666))
			create(t, c, crashCapped, postbox.Durable(), postbox.Mode(0o666), postbox.Capacity(40))
		}
		for _, name := range []string{crashFree, crashCapped} {
			info, err := c.Mailbox(name).Stat(ctxT(t))
			if err != nil || !info.Durable {
				t.Fatalf("cycle %d: %s after restart: %+v, %v\n%s", cycle, name, info, err, p.Log())
			}
		}
		c.Close()

		var children []*crashRole
		var senderFiles []string
		for k := range crashSenders {
			id := fmt.Sprintf("c%ds%d", cycle, k)
			file := filepath.Join(work, id+".send")
			senderFiles = append(senderFiles, file)
			children = append(children, startCrashRole(t, role, p.Socket, "crash-send", id, file, crashFree, crashCapped))
		}
		for k, r := range crashReceivers {
			id := fmt.Sprintf("c%dr%d", cycle, k)
			children = append(children, startCrashRole(t, role, p.Socket, "crash-recv", id, filepath.Join(work, id+".recv"), r.mailbox, r.mode))
		}

		// Kill after a random number of acknowledged sends: a point in
		// the work, not in time.
		target := 30 + rng.IntN(400)
		waitFor(t, fmt.Sprintf("cycle %d: %d acknowledged sends", cycle, target), func() bool {
			for _, ch := range children {
				ch.running(t, fmt.Sprintf("cycle %d", cycle))
			}
			return countLines(senderFiles, "S ") >= target
		})
		p.Crash(t)
		if rng.IntN(2) == 0 {
			// What a power loss can leave: the unsynced tail of the
			// last batch written in part, as garbage.
			appendGarbage(t, data, rng)
			injected = true
			tears++
		}
		for _, ch := range children {
			if err := ch.wait(); err != nil {
				t.Fatalf("cycle %d: role %q: %v (it must end cleanly when the broker goes away)", cycle, ch.cmd.Args[1:], err)
			}
		}
		for k := range crashSenders {
			id := fmt.Sprintf("c%ds%d", cycle, k)
			if err := l.readSender(filepath.Join(work, id+".send"), id); err != nil {
				t.Fatal(err)
			}
		}
		for k := range crashReceivers {
			id := fmt.Sprintf("c%dr%d", cycle, k)
			if err := l.readReceiver(filepath.Join(work, id+".recv"), id, cycle); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The final drain, on a broker recovered from the last crash.
	p := testbroker.StartProcess(t, bin, "--data", data)
	recovered(p, "final drain")
	c := p.Dial(t)
	l.streamList = append(l.streamList, "drain")
	for _, name := range []string{crashFree, crashCapped} {
		mb := c.Mailbox(name)
		for {
			m, err := mb.Receive(ctxT(t), postbox.NoWait())
			if errors.Is(err, postbox.ErrEmpty) {
				break
			}
			if err != nil {
				t.Fatalf("drain %s: %v\n%s", name, err, p.Log())
			}
			d := delivery{cycle: cycles + 1, stream: "drain", mailbox: name, body: string(m.Body), priority: m.Priority,
				typ: m.Type, redeliveries: m.Redeliveries, id: m.ID, senderPID: m.Sender.PID}
			l.deliver(d)
			ack(t, m)
			l.confirm(d)
		}
		waitStat(t, mb, "drained", func(i postbox.Info) bool { return i.Depth == 0 && i.InFlight == 0 })
	}
	// The drain's acks were confirmed: a crash now must not bring
	// anything back.
	p.Crash(t)
	p = testbroker.StartProcess(t, bin, "--data", data)
	c = p.Dial(t)
	for _, name := range []string{crashFree, crashCapped} {
		if m, err := c.Mailbox(name).Receive(ctxT(t), postbox.NoWait()); !errors.Is(err, postbox.ErrEmpty) {
			t.Errorf("%s after the drain and a crash: got %v (%+v), want ErrEmpty: a confirmed ack was undone", name, err, m)
			if m != nil {
				l.deliver(delivery{cycle: cycles + 2, stream: "after-drain", mailbox: name, body: string(m.Body),
					priority: m.Priority, typ: m.Type, redeliveries: m.Redeliveries, id: m.ID, senderPID: m.Sender.PID})
			}
		}
	}

	v := l.check()
	t.Logf("seed %d: %d cycles in %v; sends attempted %d, acknowledged %d; deliveries %d (drain %d), acks confirmed %d; "+
		"losses %d, resurrections %d, duplicates %d (messages delivered more than once), delivered without a send ack %d, "+
		"gone after an unconfirmed ack %d; order pairs checked %d; garbage tails appended %d, cut off at recovery %d",
		seed, cycles, time.Since(start).Round(time.Millisecond), v.attempted, v.acked, v.delivered, v.drained, v.confirmedAcks,
		len(v.losses), len(v.resurrections), v.duplicates, v.unackedDelivered, v.ambiguous, v.orderChecked, tears, torn)
	if v.acked == 0 || v.confirmedAcks == 0 {
		t.Errorf("the harness did no work: %d sends acknowledged, %d acks confirmed", v.acked, v.confirmedAcks)
	}
	report := func(what string, list []string) {
		if len(list) == 0 {
			return
		}
		const show = 20
		more := ""
		if len(list) > show {
			more = fmt.Sprintf("\n... and %d more", len(list)-show)
			list = list[:show]
		}
		t.Errorf("%s (%d), seed %d:\n%s%s", what, len(list), seed, strings.Join(list, "\n"), more)
	}
	report("acknowledged messages lost", v.losses)
	report("messages delivered again after their ack was confirmed", v.resurrections)
	report("redelivery count not increased by a return or a crash", v.redeliveryTooLow)
	report("per-sender order broken", v.reordered)
	report("delivered message differs from what was sent", v.mismatched)
	report("messages delivered that nobody sent", v.phantoms)
}

// crashRole is a running crash role process.
type crashRole struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been waited for
	err    error         // Wait's result, read after exited is closed
}

// startCrashRole starts a crash role process against socket. When t ends
// it is killed if still running, and waited for.
func startCrashRole(t *testing.T, bin, socket string, args ...string) *crashRole {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// GORACE: a race-enabled binary otherwise sleeps 1 s at exit.
	cmd.Env = append(os.Environ(), roleEnv+"=client", postbox.SocketEnv+"="+socket, "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &crashRole{cmd: cmd, exited: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			cmd.Process.Kill()
			<-r.exited
		}
	})
	return r
}

// wait waits (at most the hang guard) for the role to exit and returns
// its Wait error.
func (r *crashRole) wait() error {
	select {
	case <-r.exited:
		return r.err
	case <-time.After(hangGuard):
		r.cmd.Process.Kill()
		<-r.exited
		return fmt.Errorf("still running %v after the broker was killed", hangGuard)
	}
}

// running fails t if the role has already exited.
func (r *crashRole) running(t *testing.T, what string) {
	t.Helper()
	select {
	case <-r.exited:
		t.Fatalf("%s: role %q exited while the broker was up: %v", what, r.cmd.Args[1:], r.err)
	default:
	}
}

// appendGarbage appends 1 to 300 random bytes to the newest segment in
// dir, as a torn write of an unacknowledged batch would leave them.
func appendGarbage(t *testing.T, dir string, rng *rand.Rand) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segments in %s: %v", dir, err)
	}
	slices.Sort(segs)
	junk := make([]byte, 1+rng.IntN(300))
	for i := range junk {
		junk[i] = byte(rng.Uint32())
	}
	f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(junk)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// countLines counts the lines starting with prefix in files.
func countLines(files []string, prefix string) int {
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // not created yet
		}
		n += bytes.Count(b, []byte("\n"+prefix))
	}
	return n
}
