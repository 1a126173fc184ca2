package main

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestRunWithoutSocketIsRefused(t *testing.T) {
	if err := run("", "", "", "", ""); !errors.Is(err, errNoSocket) {
		t.Fatalf("got %v, want errNoSocket", err)
	}
}

// TestRunWritesProfilesAtSignal serves, is signalled, and leaves the
// profiles it was asked for.
func TestRunWritesProfilesAtSignal(t *testing.T) {
	dir := t.TempDir()
	sock, cpu, block := filepath.Join(dir, "s.sock"), filepath.Join(dir, "cpu"), filepath.Join(dir, "block")
	done := make(chan error, 1)
	go func() { done <- run(sock, "", cpu, block, "") }()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no socket")
		}
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM) // run's signal.Notify takes it
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("run did not return after SIGTERM")
	}
	for _, f := range []string{cpu, block} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}
