package postbox_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

func TestPipeRefusesWhatBreaksItsRules(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	c := b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	if err := c.CreatePipe(ctx, "p", 0); err != nil {
		t.Fatal(err)
	}
	mb := c.Mailbox("p")
	if _, err := mb.Send(ctx, []byte("x")); !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("send to a pipe not opened for writing: %v, want ErrInvalid", err)
	}
	if _, err := mb.Receive(ctx, postbox.NoWait()); !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("receive from a pipe not opened for reading: %v, want ErrInvalid", err)
	}
	if err := mb.CloseSend(ctx); !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("SHUT of a pipe: %v, want ErrInvalid", err)
	}
	if _, err := c.OpenPipeWriter(ctx, "nope"); !errors.Is(err, postbox.ErrNotFound) {
		t.Fatalf("open of no pipe: %v, want ErrNotFound", err)
	}
	if _, err := c.Create(ctx, "box"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenPipeReader(ctx, "box"); !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("open of a mailbox as a pipe: %v, want ErrInvalid", err)
	}
	w, err := c.OpenPipeWriter(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenPipeWriter(ctx, "p"); !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("second writer end on one connection: %v, want ErrInvalid", err)
	}
	if _, err := mb.Send(ctx, bytes.Repeat([]byte("x"), postbox.PipeAtomic+1)); !errors.Is(err, postbox.ErrTooLarge) {
		t.Fatalf("a chunk over PipeAtomic: %v, want ErrTooLarge", err)
	}
	if _, err := mb.Send(ctx, []byte("x"), postbox.Type(5)); !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("a chunk of type 5: %v, want ErrInvalid", err)
	}
	w.Close()
	info, err := mb.Stat(ctx)
	if err != nil || !info.Pipe || info.MaxBytes != 1<<20 {
		t.Fatalf("stat: pipe=%v max bytes=%d err=%v; want a pipe of the default 1 MiB", info.Pipe, info.MaxBytes, err)
	}
}

// TestPipeStandbyReaderTakesOverWhereTheFirstStopped: a second reader's
// open waits while the first reads; when the first closes with chunks
// delivered to it but unread, the second opens and reads them, in order.
func TestPipeStandbyReaderTakesOverWhereTheFirstStopped(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	wc, r1c, r2c := b.Dial(t), b.Dial(t), b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	if err := wc.CreatePipe(ctx, "p", 0); err != nil {
		t.Fatal(err)
	}
	r1, err := r1c.OpenPipeReader(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.OpenPipeWriter(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"a", "b", "c", "d"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	opened := make(chan *postbox.PipeReader, 1)
	go func() {
		r2, err := r2c.OpenPipeReader(ctx, "p")
		if err != nil {
			t.Error(err)
		}
		opened <- r2
	}()
	ch, err := r1.ReadChunk(ctx)
	if err != nil || string(ch.Data) != "a" || ch.Writer.Endpoint != wc.Identity().Endpoint {
		t.Fatalf("first chunk %q from endpoint %d, %v", ch.Data, ch.Writer.Endpoint, err)
	}
	select {
	case <-opened:
		t.Fatal("a second reader opened while the first was active")
	default:
	}
	r1.Close() // "a" was read whole: acknowledged; b, c, d (prefetched, unread) go back
	r2 := <-opened
	if r2 == nil {
		t.FailNow()
	}
	defer r2.Close()
	w.Close()
	got, err := io.ReadAll(r2)
	if err != nil || string(got) != "bcd" {
		t.Fatalf("next reader read %q, %v; want bcd", got, err)
	}
}

func TestPipeWriterGetsErrNoReaderAndWaitReaderWaits(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	wc, rc := b.Dial(t), b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	if err := wc.CreatePipe(ctx, "p", 0); err != nil {
		t.Fatal(err)
	}
	r, err := rc.OpenPipeReader(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.OpenPipeWriter(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	w.Write([]byte("lost reader"))
	if err := w.Close(); !errors.Is(err, postbox.ErrNoReader) {
		t.Fatalf("write after the reader left: %v, want ErrNoReader", err)
	}
	// WithWaitReader: the open waits for a reader; a CANCEL (ctx) withdraws it.
	short, stop := context.WithCancel(ctx)
	stop()
	if _, err := wc.OpenPipeWriter(short, "p", postbox.WithWaitReader()); err == nil {
		t.Fatal("a waiting open with its context ended succeeded")
	}
	opened := make(chan error, 1)
	go func() {
		w2, err := wc.OpenPipeWriter(ctx, "p", postbox.WithWaitReader())
		if err == nil {
			w2.Write([]byte("waited"))
			err = w2.Close()
		}
		opened <- err
	}()
	r2, err := rc.OpenPipeReader(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if err := <-opened; err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r2)
	if err != nil || !bytes.HasSuffix(got, []byte("waited")) {
		t.Fatalf("read %q, %v", got, err)
	}
}
