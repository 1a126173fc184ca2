package rpcfault_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The checker itself, on hand-made logs: each semantics' rule catches
// what it must and passes what it may.

func tallyOf(t *testing.T, lines ...string) *execTally {
	t.Helper()
	path := filepath.Join(t.TempDir(), "exec.log")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tl, err := readExecLog(path)
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

func TestCheckerMaybeAllowsNoRunButNotTwo(t *testing.T) {
	outs := []outcome{{key: "a", err: errors.New("lost")}, {key: "b", ok: true, pid: 1, id: "i"}}
	if v := checkCalls(maybe, outs, tallyOf(t, "E b i 1"), nil); len(v.violations) != 0 {
		t.Errorf("violations: %v", v.violations)
	}
	if v := checkCalls(maybe, outs, tallyOf(t, "E b i 1", "E b i 1"), nil); len(v.violations) != 1 {
		t.Errorf("ran twice: violations %v, want one", v.violations)
	}
}

func TestCheckerAtLeastOnceNeedsARunForASuccess(t *testing.T) {
	outs := []outcome{{key: "a", ok: true, pid: 1, id: "i"}, {key: "b", err: errors.New("deadline")}}
	if v := checkCalls(atLeastOnce, outs, tallyOf(t, "E a i 1", "E a i 2"), nil); len(v.violations) != 0 {
		t.Errorf("violations: %v", v.violations)
	}
	if v := checkCalls(atLeastOnce, outs, tallyOf(t, "E z j 1"), nil); len(v.violations) != 3 {
		// a has no run (twice: no run, and its reply names no run); z was never called
		t.Errorf("violations %v, want 3", v.violations)
	}
}

func TestCheckerExactlyOnceNeverRunsTwiceOnOneServer(t *testing.T) {
	outs := []outcome{{key: "a", ok: true, pid: 2, id: "i"}}
	if v := checkCalls(exactlyOnce, outs, tallyOf(t, "E a i 1", "E a i 2"), map[int]bool{1: true}); len(v.violations) != 0 || v.rescued != 1 {
		t.Errorf("rerun after kill: violations %v, rescued %d", v.violations, v.rescued)
	}
	if v := checkCalls(exactlyOnce, outs, tallyOf(t, "E a i 1", "E a i 2"), nil); len(v.violations) != 0 || v.reranLive != 1 {
		t.Errorf("rerun on another living server (allowed: the cache is per server): violations %v, reranLive %d", v.violations, v.reranLive)
	}
	if v := checkCalls(exactlyOnce, outs, tallyOf(t, "E a i 2", "E a i 2"), map[int]bool{1: true}); len(v.violations) != 1 {
		t.Errorf("twice on one live server: violations %v, want one", v.violations)
	}
}

func TestCheckerRequestIDsAreOnePerCall(t *testing.T) {
	outs := []outcome{{key: "a", ok: true, pid: 1, id: "i"}, {key: "b", ok: true, pid: 1, id: "i"}}
	v := checkCalls(atLeastOnce, outs, tallyOf(t, "E a i 1", "E b i 1", "E a j 1"), nil)
	if len(v.violations) != 2 {
		t.Errorf("violations %v, want a's two ids and a and b sharing one", v.violations)
	}
}

func TestExecLogRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exec.log")
	os.WriteFile(path, []byte("E a i 1\nE a i\n"), 0o644)
	if _, err := readExecLog(path); err == nil {
		t.Error("a torn line was accepted")
	}
}
