package postbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// TestAfterInterruptRunsOnInterruptUnlessStopped: a registered function
// runs when the caller cancels; a stopped one does not; one registered
// after the interrupt runs at once.
func TestAfterInterruptRunsOnInterruptUnlessStopped(t *testing.T) {
	b := testbroker.Start(t, nil)
	caller, server := b.Dial(t), b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := server.Create(ctx, "svc", postbox.Mode(0o622))
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := caller.Mailbox("svc").Call(cctx, []byte("slow"))
		errc <- err
	}()
	m, err := svc.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fired, stoppedFired := make(chan struct{}), make(chan struct{}, 1)
	m.AfterInterrupt(func() { close(fired) })
	stop := m.AfterInterrupt(func() { stoppedFired <- struct{}{} })
	if !stop() {
		t.Fatal("stop before the interrupt: false")
	}
	ccancel()
	<-errc
	select {
	case <-fired:
	case <-ctx.Done():
		t.Fatal("AfterInterrupt's function never ran")
	}
	late := make(chan struct{})
	if m.AfterInterrupt(func() { close(late) })() {
		t.Fatal("stop after the interrupt: true")
	}
	select {
	case <-late:
	case <-ctx.Done():
		t.Fatal("a function registered after the interrupt never ran")
	}
	select {
	case <-stoppedFired:
		t.Fatal("a stopped function ran")
	default:
	}
	if err := m.Ack(ctx); err != nil {
		t.Fatal(err)
	}
}
