package store_test

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

var long = flag.Bool("store.long", false, "run longer soaks (more crash rounds)")

func TestSecondOpenIsLockedInProcess(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testOptions(dir, nil))
	_, err := storeOpen(dir)
	if err == nil || !isLocked(err) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), fmt.Sprint(os.Getpid())) {
		t.Fatalf("second Open = %v, want ErrLocked naming %s and pid %d", err, dir, os.Getpid())
	}
	s.Close()
	s2, err := storeOpen(dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

func TestSecondOpenIsLockedFromAnotherProcess(t *testing.T) {
	t.Parallel() // its own temp dir and child; it waits on the child most of the time
	dir := t.TempDir()
	s := mustOpen(t, testOptions(dir, nil))
	out := runChild(t, "open", dir)
	if !strings.Contains(out, "locked=true") || !strings.Contains(out, "pid "+fmt.Sprint(os.Getpid())) {
		t.Fatalf("child saw %q, want ErrLocked naming our pid", out)
	}
	s.Close()
	if out := runChild(t, "open", dir); strings.TrimSpace(out) != "ok" {
		t.Fatalf("child after Close saw %q", out)
	}
}

func runChild(t *testing.T, role, dir string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "STORE_TEST_CHILD="+role, "STORE_TEST_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	return string(out)
}

// TestSIGKILLLosesNoAcknowledgedRecord kills a writing child at a random
// moment, several times over the same directory, and checks after each
// kill that every Append the child saw acknowledged is present unless its
// Ack was also acknowledged, and that no acknowledged Ack is undone.
func TestSIGKILLLosesNoAcknowledgedRecord(t *testing.T) {
	t.Parallel() // its own temp dir; it kills only its own children
	rounds := 3
	if *long {
		rounds = 20
	}
	dir := t.TempDir()
	appended := map[string]bool{} // "mailbox seq" acknowledged appends
	acked := map[string]bool{}    // acknowledged acks
	ackSent := map[string]bool{}  // submitted acks: the message may be gone
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 7))
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "STORE_TEST_CHILD=crash", "STORE_TEST_DIR="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 200 + rng.IntN(3000) // lines, not time: the test does not depend on speed
		sc := bufio.NewScanner(stdout)
		lines := 0
		for sc.Scan() {
			record(t, sc.Text(), appended, acked, ackSent)
			if lines++; lines == killAfter {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("round %d: child ended by itself (%v): %s", round, err, stderr.String())
		}

		s := mustOpen(t, testOptions(dir, nil))
		r := s.Recovered()
		present := map[string]bool{}
		for name, msgs := range r.Messages {
			for _, m := range msgs {
				present[name+" "+strconv.FormatUint(m.Seq, 10)] = true
			}
		}
		for k := range appended {
			if !ackSent[k] && !present[k] {
				t.Fatalf("round %d: acknowledged append %q lost", round, k)
			}
		}
		for k := range acked {
			if present[k] {
				t.Fatalf("round %d: acknowledged ack %q undone", round, k)
			}
		}
		if len(r.Corrupt) != 0 {
			t.Fatalf("round %d: corruption after SIGKILL: %+v", round, r.Corrupt)
		}
		t.Logf("round %d: killed after %d lines; %d live messages, dropped %d bytes", round, lines, len(present), r.DroppedBytes)
		s.Close()
	}
}

func record(t *testing.T, line string, appended, acked, ackSent map[string]bool) {
	kind, key, ok := strings.Cut(line, " ")
	if !ok {
		t.Fatalf("bad child line %q", line)
	}
	switch kind {
	case "A":
		appended[key] = true
	case "K":
		acked[key] = true
	case "S":
		ackSent[key] = true
	default:
		t.Fatalf("bad child line %q", line)
	}
}
