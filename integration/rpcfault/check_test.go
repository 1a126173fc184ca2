package rpcfault_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// semantics names an invocation semantics the way the envelope's
// rpc-semantics header does.
type semantics string

const (
	maybe       semantics = "maybe"
	atLeastOnce semantics = "at-least-once"
	exactlyOnce semantics = "exactly-once"
)

var allSemantics = []semantics{maybe, atLeastOnce, exactlyOnce}

// verdict is what checkCalls found: counts for the summary and the
// violations of the semantics, if any.
type verdict struct {
	calls, ok, failed int
	executions        int
	perCall           map[int]int       // number of calls by how many times their handler ran
	rescued           int               // calls that ran on a server later killed and were answered by another
	reran             int               // calls that ran more than once
	reranLive         int               // of those, calls that ran on more than one server that stayed up
	failures          map[string]int    // failed calls by status code
	example           map[string]string // the first failed call's error, by status code
	violations        []string
}

// checkCalls checks the calls' outcomes against the execution log under
// sem. killed holds the pids of servers that were killed with SIGKILL
// during the run (nil when no server died): an execution on a killed
// server is one whose reply may have been lost with it.
func checkCalls(sem semantics, outs []outcome, tl *execTally, killed map[int]bool) verdict {
	v := verdict{calls: len(outs), perCall: map[int]int{}, failures: map[string]int{}, example: map[string]string{}}
	bad := func(format string, args ...any) { v.violations = append(v.violations, fmt.Sprintf(format, args...)) }
	seen := map[string]bool{}
	idOwner := map[string]string{} // request id -> call key
	for _, o := range outs {
		seen[o.key] = true
		runs := tl.runs[o.key]
		n := len(runs)
		v.executions += n
		v.perCall[n]++
		if n > 1 {
			v.reran++
		}
		if o.ok {
			v.ok++
		} else {
			v.failed++
			v.failures[o.code]++
			if _, ok := v.example[o.code]; !ok {
				v.example[o.code] = fmt.Sprintf("%s: %v", o.key, o.err)
			}
		}
		// Retries reuse the request id; different calls never share one.
		for _, r := range runs {
			if r.id != runs[0].id {
				bad("%s: executions carry different request ids %s and %s", o.key, runs[0].id, r.id)
			}
		}
		if n > 0 {
			if k, dup := idOwner[runs[0].id]; dup {
				bad("%s and %s share request id %s", k, o.key, runs[0].id)
			}
			idOwner[runs[0].id] = o.key
		}
		if o.ok && !slices.ContainsFunc(runs, func(r execution) bool { return r.pid == o.pid && r.id == o.id }) {
			bad("%s: reply from pid %d, request id %s, but the log shows no such execution: %v", o.key, o.pid, o.id, runs)
		}
		onKilled, perPID, movedFrom := 0, map[int]int{}, false
		for _, r := range runs {
			perPID[r.pid]++
			if killed[r.pid] {
				onKilled++
				movedFrom = movedFrom || r.pid != o.pid
			}
		}
		if o.ok && movedFrom {
			v.rescued++
		}
		switch sem {
		case maybe:
			if n > 1 {
				bad("%s (maybe): handler ran %d times: %v", o.key, n, runs)
			}
		case atLeastOnce:
			if o.ok && n == 0 {
				bad("%s (at-least-once): the call succeeded but its handler never ran", o.key)
			}
		case exactlyOnce:
			if o.ok && n == 0 {
				bad("%s (exactly-once): the call succeeded but its handler never ran", o.key)
			}
			// The reply cache is per server process: a call never runs
			// twice on one server. It may run again on another, when the
			// server that ran it was killed (its cache died with it) or
			// when a retry reached another server of the service (package
			// rpc's "What survives a server crash").
			for pid, k := range perPID {
				if k > 1 {
					bad("%s (exactly-once): handler ran %d times on server %d", o.key, k, pid)
				}
			}
			if n-onKilled > 1 {
				v.reranLive++
			}
		}
	}
	for key, runs := range tl.runs {
		if !seen[key] {
			bad("%s: executed %d times but no such call was made", key, len(runs))
		}
	}
	return v
}

// histogram renders perCall as "0:3 1:1990 2:7".
func (v verdict) histogram() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(v.perCall)) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d:%d", k, v.perCall[k])
	}
	return b.String()
}

// failureExamples lists one failed call per status code.
func (v verdict) failureExamples() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(v.example)) {
		parts = append(parts, v.example[k])
	}
	return strings.Join(parts, "\n")
}

func (v verdict) failureSummary() string {
	if len(v.failures) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(v.failures)) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, v.failures[k]))
	}
	return strings.Join(parts, " ")
}

// report fails t with v's violations (the first few of them).
func (v verdict) report(t *testing.T, what string) {
	t.Helper()
	if len(v.violations) == 0 {
		return
	}
	const show = 20
	list := v.violations
	more := ""
	if len(list) > show {
		more = fmt.Sprintf("\n... and %d more", len(list)-show)
		list = list[:show]
	}
	t.Errorf("%s: %d violations:\n%s%s", what, len(v.violations), strings.Join(list, "\n"), more)
}
