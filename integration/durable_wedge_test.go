package integration_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// TestFullDiskRefusingAnAdmittedSenderDoesNotWedgeTheBroker: a receive
// from a full durable mailbox admits its blocked sender, whose message is
// then refused by the store (the disk is full). Withdrawing that message
// must not wait for the lock the receive's own step holds: the receive
// gets its message, the sender hears ErrStorage, and every other client
// is still answered.
//
// The broker runs as a separate `postbox serve` process, so that a
// regression (a wedged broker) fails the test within the hang guard and
// is then killed, instead of hanging the test binary.
func TestFullDiskRefusingAnAdmittedSenderDoesNotWedgeTheBroker(t *testing.T) {
	fs := testbroker.MountTmpfs(t, "2m")
	p := testbroker.StartProcess(t, cli(t), "--data", filepath.Join(fs, "data"))
	admin, sender, receiver, observer := p.Dial(t), p.Dial(t), p.Dial(t), p.Dial(t)

	dq := create(t, admin, "dq", postbox.Durable(), postbox.Capacity(1))
	other := create(t, admin, "other", postbox.Durable())
	send(t, dq, "first")
	blocked := async(func() (postbox.Receipt, error) {
		return sender.Mailbox("dq").Send(ctxT(t), []byte("second"))
	})
	waitStat(t, dq, "the second send blocked", func(i postbox.Info) bool { return i.BlockedSenders == 1 })

	fillDisk(t, fs)
	if _, err := other.Send(ctxT(t), []byte(strings.Repeat("x", 64<<10))); !errors.Is(err, postbox.ErrStorage) {
		t.Fatalf("durable send on a full disk: %v, want ErrStorage\n%s", err, p.Log())
	}

	// The receive admits "second", whose record the store refuses.
	got := await(t, async(func() (*postbox.Message, error) {
		return receiver.Mailbox("dq").Receive(ctxT(t))
	}), "receive from dq after the disk filled")
	if got.err != nil {
		t.Fatalf("receive from dq after the disk filled: %v\n%s", got.err, p.Log())
	}
	if string(got.v.Body) != "first" {
		t.Fatalf("received %q, want %q", got.v.Body, "first")
	}
	if r := await(t, blocked, "the admitted send"); !errors.Is(r.err, postbox.ErrStorage) {
		t.Fatalf("the admitted send whose record did not fit: %+v, want ErrStorage", r)
	}

	// Everyone else is still answered.
	info, err := observer.Mailbox("dq").Stat(ctxT(t))
	if err != nil {
		t.Fatalf("stat dq from another client: %v", err)
	}
	if info.InFlight != 1 || info.BlockedSenders != 0 {
		t.Errorf("dq after the refusal: %+v, want first in flight and no blocked sender", info)
	}
	list, err := observer.List(ctxT(t))
	if err != nil {
		t.Fatalf("list from another client: %v", err)
	}
	if len(list) < 2 {
		t.Errorf("list: %d mailboxes, want dq and other at least", len(list))
	}
	// An ack is what frees space: it is still recorded.
	ack(t, got.v)
}

// fillDisk writes a file on the file system at dir until it is full.
func fillDisk(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			return
		}
	}
}
