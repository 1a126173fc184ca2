package postbox_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/internal/testbroker"
)

func TestInfoNamesTheBrokerProcessAndItsListeners(t *testing.T) {
	b := testbroker.Start(t, nil)
	tcp := b.ServeTCP(t)
	c := b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Create(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	in, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if in.PID != uint32(os.Getpid()) || in.Mailboxes != 1 || in.Connections != 1 {
		t.Errorf("pid %d mailboxes %d connections %d; want %d 1 1", in.PID, in.Mailboxes, in.Connections, os.Getpid())
	}
	if len(in.Listeners) != 2 || in.Listeners[0].Network != "unix" || in.Listeners[0].Address != b.Socket ||
		in.Listeners[1].Network != "tcp" || in.Listeners[1].Address != tcp {
		t.Errorf("listeners %+v, want unix %s then tcp %s", in.Listeners, b.Socket, tcp)
	}
	if in.DataDir != "" || in.StoreBytes != -1 {
		t.Errorf("a broker without a data directory: %q, %d", in.DataDir, in.StoreBytes)
	}
	if in.Limits.MaxConnections != int64(b.Limits().MaxConnections) || in.Limits.MaxFrame <= in.Limits.MaxMessage {
		t.Errorf("limits %+v", in.Limits)
	}
	if in.Started.After(time.Now()) || in.Uptime <= 0 || in.Version == "" || in.HeapBytes <= 0 {
		t.Errorf("started %v uptime %v version %q heap %d", in.Started, in.Uptime, in.Version, in.HeapBytes)
	}
}
