package rpcfault_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// faultWorkers is how many goroutines make the fault tests' calls.
const faultWorkers = 16

// callTimeout bounds one call of the fault tests. A maybe call has one
// attempt, so a lost frame costs it the whole timeout: keep it short. The
// retrying semantics get room for several attempts.
func callTimeout(sem semantics) time.Duration {
	if sem == maybe {
		return 500 * time.Millisecond
	}
	return 5 * time.Second
}

// TestFaultsHandlerExecutionsPerCallMatchSemantics makes -rpcfault.calls
// calls per semantics through the fault-injection layer (CALL requests
// dropped, duplicated, delayed and replayed after their reply, replies
// dropped and delayed; seed -rpcfault.seed) to an in-process server
// whose handler logs every
// execution, and counts the executions of each call: maybe at most one;
// at-least-once at least one for every call that succeeded (and every
// call succeeds: it retries until its deadline); exactly-once exactly
// one for every call, every call succeeds, and the reply cache stays
// within its bound.
func TestFaultsHandlerExecutionsPerCallMatchSemantics(t *testing.T) {
	for i, sem := range allSemantics {
		t.Run(string(sem), func(t *testing.T) { runFaults(t, sem, *seedFlag+uint64(i)) })
	}
}

func runFaults(t *testing.T, sem semantics, seed uint64) {
	const service = "rpcfault.faults"
	socket, logPath, srv := inProcess(t, service, serverConfig{handlers: 8})

	fc := dialFaulty(t, socket, seed)
	cl := newCaller(fc.client)

	// Sample the reply cache while the calls run.
	var peak cacheStats
	sampleDone, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			st := srv.cache()
			peak.maxEntries, peak.maxBytes = st.maxEntries, st.maxBytes
			peak.entries, peak.bytes = max(peak.entries, st.entries), max(peak.bytes, st.bytes)
			select {
			case <-sampleDone:
				return
			case <-tick.C:
			}
		}
	}()

	n := *callsFlag
	began := time.Now()
	var outs outcomes
	var crossed []string
	var crossedMu sync.Mutex
	keys := make(chan string)
	var wg sync.WaitGroup
	for range faultWorkers {
		wg.Go(func() {
			for key := range keys {
				ctx, cancel := context.WithTimeout(context.Background(), callTimeout(sem))
				resp, err := cl.echo(ctx, service, sem, echoReq{Key: key})
				cancel()
				o := outcome{key: key, err: err, code: codeOf(err).String()}
				if err == nil {
					o.ok, o.pid, o.id = true, resp.PID, resp.ID
					if resp.Key != key {
						crossedMu.Lock()
						crossed = append(crossed, fmt.Sprintf("call %s got the reply of %s", key, resp.Key))
						crossedMu.Unlock()
					}
				}
				outs.add(o)
			}
		})
	}
	for i := range n {
		keys <- fmt.Sprintf("%s-%d", sem, i)
	}
	close(keys)
	wg.Wait()
	elapsed := time.Since(began)
	close(sampleDone)
	<-sampled
	faults := fc.stats()
	srv.stop(t) // every handler has returned: the log is complete
	tl, err := readExecLog(logPath)
	if err != nil {
		t.Fatal(err)
	}
	v := checkCalls(sem, outs.all(), tl, nil)
	t.Logf("%s: seed %d, %d calls in %v: %d ok, %d failed (%s); %d executions, calls by executions %s; faults injected: %s; reply cache peak %d entries / %d bytes (bound %d / %d)",
		sem, seed, v.calls, elapsed.Round(time.Millisecond), v.ok, v.failed, v.failureSummary(), v.executions, v.histogram(),
		faults, peak.entries, peak.bytes, peak.maxEntries, peak.maxBytes)
	v.report(t, string(sem))
	for _, c := range crossed {
		t.Errorf("crossed reply: %s", c)
	}
	if faults.total() == 0 {
		t.Errorf("the fault-injection layer injected no fault in %d calls", n)
	}
	// Exactly once keeps a reply in a bounded cache: at its bound it
	// evicts a done entry whose caller may still retry (the session's
	// rpc-acked watermark names only the lowest reply it lacks), and that
	// retry is answered Aborted, "ran, but its reply was evicted", never
	// run again (rpc/doc.go). That is the stated outcome, not a loss,
	// when the cache reached its bound; a few such calls are logged.
	evictedAtBound := sem == exactlyOnce && peak.maxEntries > 0 && peak.entries >= peak.maxEntries &&
		v.failed > 0 && v.failed == v.failures["Aborted"] && v.failed*100 <= v.calls &&
		strings.Contains(v.failureExamples(), "evicted")
	if evictedAtBound {
		t.Logf("%s: %d of %d calls answered Aborted as their replies were evicted at the cache's bound:\n%s",
			sem, v.failed, v.calls, v.failureExamples())
	}
	if sem != maybe && v.failed > 0 && !evictedAtBound {
		t.Errorf("%s: %d of %d calls failed (%s); a retrying call must get its reply within %v when 1 frame in 50 is lost:\n%s",
			sem, v.failed, v.calls, v.failureSummary(), callTimeout(sem), v.failureExamples())
	}
	if sem == exactlyOnce {
		if peak.maxEntries > 0 && peak.entries > peak.maxEntries || peak.maxBytes > 0 && peak.bytes > peak.maxBytes {
			t.Errorf("reply cache peaked at %d entries / %d bytes, beyond its bound of %d / %d",
				peak.entries, peak.bytes, peak.maxEntries, peak.maxBytes)
		}
		if end := srv.cache(); end.entries > faultWorkers {
			t.Logf("reply cache holds %d entries after the run", end.entries)
		}
	}
}
