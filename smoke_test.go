package postbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

func TestSmoke(t *testing.T) {
	b := testbroker.Start(t, nil)
	c := b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	mb, err := c.Create(ctx, "jobs", postbox.Capacity(10), postbox.Mode(0o660))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Send(ctx, []byte("hello"), postbox.Type(3), postbox.Priority(2)); err != nil {
		t.Fatal(err)
	}
	msg, err := mb.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", msg)
	if err := msg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if err := msg.Ack(ctx); err == nil {
		t.Fatal("double ack accepted")
	} else {
		t.Log(err)
	}
	info, err := mb.Stat(ctx)
	t.Logf("%+v %v", info, err)
	cons, err := mb.Consume(ctx, postbox.Prefetch(4))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := mb.Send(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		m, err := cons.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m.AckNoWait()
	}
	cons.Close()
}
