package integration_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// TestDurableSendFailsWithErrStorageWhenTheDiskIsFull fills a 2 MiB tmpfs
// with durable sends. The send that does not fit fails with ErrStorage;
// everything else goes on: memory mailboxes, receives and acks of what is
// on disk, and a restart on the same full file system finds every
// acknowledged message.
func TestDurableSendFailsWithErrStorageWhenTheDiskIsFull(t *testing.T) {
	fs := testbroker.MountTmpfs(t, "2m")
	cfg := durableConfig(filepath.Join(fs, "data"))
	b := start(t, cfg)
	c := b.Dial(t)
	mb := create(t, c, "full", postbox.Durable())
	body := strings.Repeat("x", 16<<10)
	var acked []uint64
	var sendErr error
	for i := 0; i < 1000 && sendErr == nil; i++ { // 2 MiB holds ~128 of them
		var r postbox.Receipt
		r, sendErr = mb.Send(ctxT(t), []byte(fmt.Sprintf("%04d%s", i, body)))
		if sendErr == nil {
			acked = append(acked, r.ID)
		}
	}
	if !errors.Is(sendErr, postbox.ErrStorage) {
		t.Fatalf("after %d durable sends on a full disk: %v, want ErrStorage", len(acked), sendErr)
	}
	if len(acked) < 10 {
		t.Fatalf("only %d sends fitted on 2 MiB", len(acked))
	}
	t.Logf("%d sends of 16 KiB acknowledged, then: %v", len(acked), sendErr)
	info, err := mb.Stat(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	// The failed send is not in the mailbox: Depth counts what was
	// acknowledged. (At least once allows it to be, but then it must
	// also survive a restart; see below.)
	depth := info.Depth
	if depth < uint64(len(acked)) {
		t.Fatalf("depth %d after %d acknowledged sends", depth, len(acked))
	}

	// Memory mailboxes do not need the disk.
	mem := create(t, c, "mem")
	send(t, mem, "in memory")
	if got := recvAck(t, mem); got != "in memory" {
		t.Fatalf("memory mailbox on a full disk: %q", got)
	}

	// Receiving and acking durable messages still works: an ack record is
	// small, and acking is how space comes back.
	first := recv(t, mb)
	if first.ID != acked[0] {
		t.Fatalf("first message id %d, want %d", first.ID, acked[0])
	}
	if err := first.Ack(ctxT(t)); err != nil {
		t.Errorf("ack on a full disk: %v", err)
	} else {
		acked = acked[1:]
		depth--
	}

	// Restart on the same (still full) file system: everything
	// acknowledged is there, in order.
	b = restart(t, b, cfg)
	c = b.Dial(t)
	mb = c.Mailbox("full")
	info, err = mb.Stat(ctxT(t))
	if err != nil {
		t.Fatalf("durable mailbox after a restart on a full disk: %v", err)
	}
	if info.Depth != depth {
		t.Errorf("depth after restart %d, want %d", info.Depth, depth)
	}
	for i, id := range acked {
		m, err := mb.Receive(ctxT(t), postbox.NoWait())
		if err != nil {
			t.Fatalf("acknowledged message %d of %d (id %d) after restart: %v", i, len(acked), id, err)
		}
		if m.ID != id || len(m.Body) != 4+len(body) {
			t.Fatalf("message %d after restart: id %d (%d bytes), want id %d", i, m.ID, len(m.Body), id)
		}
		if err := m.Ack(ctxT(t)); err != nil {
			t.Fatalf("ack after restart: %v", err)
		}
	}
	// With the messages acked the space is reclaimable: durable sends
	// work again.
	waitFor(t, "a durable send to succeed once the disk has room", func() bool {
		_, err := mb.Send(ctxT(t), []byte("room again"))
		if err != nil && !errors.Is(err, postbox.ErrStorage) {
			t.Fatalf("send after freeing space: %v", err)
		}
		return err == nil
	})
	// Sends that failed with ErrStorage may still be delivered (at least
	// once); "room again" comes after them.
	for {
		m := recv(t, mb)
		ack(t, m)
		if string(m.Body) == "room again" {
			break
		}
	}
}
