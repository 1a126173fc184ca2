package rpcfault_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Crash tests: real server processes, killed with SIGKILL while they run
// handlers, against an in-process broker. The broker sees the killed
// server's connection close and returns the requests it held to the
// service mailbox (with their redelivery count raised), where the other
// server takes them.
const (
	crashWorkers  = 8
	crashHandlers = 4
	// crashWork is how long the handler works on a call: long enough that
	// a kill lands while handlers run.
	crashWork        = 10 * time.Millisecond
	crashCallTimeout = 8 * time.Second
)

// TestCrashServersKilledMidCall runs two server processes on one service
// and makes -rpcfault.crash.calls calls per semantics from 8 goroutines,
// killing a server with SIGKILL -rpcfault.crash.kills times at points
// chosen by the seed (counted in executions, not time) and starting a
// replacement each time. Then, from the execution log:
//
//   - at-least-once: no call is lost: every call returns its reply
//     within its deadline, those that were running on a killed server
//     served by another;
//   - maybe: every handler ran at most once per call (a request the
//     broker redelivers after its server died is refused, not run
//     again), whatever the calls returned;
//   - exactly-once: every call returns its reply and runs at most once
//     on any one server. It may run again on another server: the reply
//     cache lives in one server's memory, so a call whose server died
//     runs again where it is redelivered, as package rpc documents (and
//     so may a retry that reaches the other server; the summary counts
//     those apart, as reruns among servers that stayed up).
func TestCrashServersKilledMidCall(t *testing.T) {
	for i, sem := range allSemantics {
		t.Run(string(sem), func(t *testing.T) { runCrash(t, sem, *seedFlag+100+uint64(i), 2) })
	}
}

// TestCrashServerMovedToNewProcessLosesNoCall runs one server process at
// a time: each kill leaves the service without a server until the
// replacement starts, so every call in flight or sent meanwhile must
// wait for the new process. Under at-least-once none is lost.
func TestCrashServerMovedToNewProcessLosesNoCall(t *testing.T) {
	runCrash(t, atLeastOnce, *seedFlag+200, 1)
}

func runCrash(t *testing.T, sem semantics, seed uint64, servers int) {
	b := start(t)
	service := "rpcfault.crash"
	logPath := filepath.Join(t.TempDir(), "exec.log")
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))

	procs := make([]*serverProc, servers)
	for i := range procs {
		procs[i] = startServerProc(t, b.Socket, service, logPath, crashHandlers)
	}
	cl := newCaller(b.Dial(t))

	n := *crashFlag
	kills := *killsFlag
	began := time.Now()
	var outs outcomes
	keys := make(chan string)
	var wg sync.WaitGroup
	for range crashWorkers {
		wg.Go(func() {
			for key := range keys {
				ctx, cancel := context.WithTimeout(context.Background(), crashCallTimeout)
				resp, err := cl.echo(ctx, service, sem, echoReq{Key: key, Sleep: crashWork})
				cancel()
				o := outcome{key: key, err: err, code: codeOf(err).String()}
				if err == nil {
					o.ok, o.pid, o.id = true, resp.PID, resp.ID
					if resp.Key != key {
						o.ok, o.err, o.code = false, fmt.Errorf("got the reply of %s", resp.Key), "crossed"
					}
				}
				outs.add(o)
			}
		})
	}
	feedDone, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(feedDone)
		defer close(keys)
		for i := range n {
			select {
			case keys <- fmt.Sprintf("%s-%d", sem, i):
			case <-quit: // the test failed early
				return
			}
		}
	}()
	t.Cleanup(func() { close(quit); <-feedDone; wg.Wait() })

	// Kill at points in the work: after a random number of executions in
	// each of kills+1 equal slices of the run.
	killed := map[int]bool{}
	slice := n / (kills + 1)
	for k := range kills {
		at := k*slice + slice/2 + rng.IntN(max(slice/2, 1))
		waitFor(t, crashCallTimeout, fmt.Sprintf("%d executions before kill %d", at, k+1), func() bool { return countLog(logPath) >= at })
		i := rng.IntN(servers)
		victim := procs[i]
		victim.kill(t)
		killed[victim.pid] = true
		procs[i] = startServerProc(t, b.Socket, service, logPath, crashHandlers)
	}
	<-feedDone
	wg.Wait()
	elapsed := time.Since(began)
	for _, p := range procs {
		p.stop(t) // its handlers have returned: the log is complete
	}
	tl, err := readExecLog(logPath)
	if err != nil {
		t.Fatal(err)
	}
	v := checkCalls(sem, outs.all(), tl, killed)
	t.Logf("%s, %d server(s), %d killed with SIGKILL: %d calls in %v: %d ok, %d failed (%s); %d executions, calls by executions %s; %d calls ran on a killed server and were answered by another, %d ran more than once (%d of them on more than one server that stayed up)",
		sem, servers, len(killed), v.calls, elapsed.Round(time.Millisecond), v.ok, v.failed, v.failureSummary(),
		v.executions, v.histogram(), v.rescued, v.reran, v.reranLive)
	v.report(t, string(sem))
	if n := v.failures["crossed"]; n > 0 {
		t.Errorf("%s: %d calls got the reply of another call:\n%s", sem, n, v.example["crossed"])
	}
	if sem != maybe && v.failed > 0 {
		t.Errorf("%s: %d of %d calls lost across %d server crashes (%s):\n%s", sem, v.failed, v.calls, len(killed), v.failureSummary(), v.failureExamples())
	}
	if sem != maybe && v.rescued == 0 {
		t.Errorf("no call was running on a killed server: the kills did not land mid-call")
	}
}
