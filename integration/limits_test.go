package integration_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/wire"
)

func TestMaxConnectionsRefusesExtraClient(t *testing.T) {
	b := start(t, limits(func(c *broker.Config) { c.MaxConnections = 2 }))
	first := b.Dial(t)
	b.Dial(t)
	ctx := ctxT(t)
	c, err := postbox.Dial(ctx, postbox.WithSocket(b.Socket))
	if err == nil {
		c.Close()
		t.Fatal("third client accepted with MaxConnections 2")
	}
	wantErr(t, err, postbox.ErrLimit, "dial past MaxConnections")

	// A slot frees when a client leaves (the broker notices asynchronously).
	first.Close()
	for {
		c, err := postbox.Dial(ctx, postbox.WithSocket(b.Socket))
		if err == nil {
			c.Close()
			break
		}
		if !errors.Is(err, postbox.ErrLimit) || ctx.Err() != nil {
			t.Fatalf("dial after a client left: %v", err)
		}
	}
}

func TestMaxMailboxesRefusesCreateBeyondLimit(t *testing.T) {
	b := start(t, limits(func(c *broker.Config) { c.MaxMailboxes = 4 }))
	c := b.Dial(t)
	var made []*postbox.Mailbox
	var err error
	for i := 0; ; i++ {
		var mb *postbox.Mailbox
		mb, err = c.Create(ctxT(t), fmt.Sprintf("mb%d", i))
		if err != nil {
			break
		}
		made = append(made, mb)
		if i > 4 {
			t.Fatalf("created %d mailboxes with MaxMailboxes 4", len(made))
		}
	}
	wantErr(t, err, postbox.ErrLimit, "create past MaxMailboxes")
	if len(made) == 0 {
		t.Fatal("no mailbox could be created at all")
	}
	if err := made[0].Destroy(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	create(t, c, "again")
}

// Endpoints' inboxes are not what an operator counts as mailboxes (`ls`
// hides them); max_mailboxes N must allow N named mailboxes however many
// clients happen to be connected.
func TestMaxMailboxesCountsNamedMailboxesNotInboxes(t *testing.T) {
	b := start(t, limits(func(c *broker.Config) { c.MaxMailboxes = 3 }))
	c := b.Dial(t)
	b.Dial(t)
	b.Dial(t)
	for i := range 3 {
		if _, err := c.Create(ctxT(t), fmt.Sprintf("mb%d", i)); err != nil {
			t.Fatalf("create mailbox %d of 3 with 3 clients connected: %v", i+1, err)
		}
	}
	_, err := c.Create(ctxT(t), "mb3")
	wantErr(t, err, postbox.ErrLimit, "create the 4th mailbox")
}

func TestMaxMessageRejectsLargerBody(t *testing.T) {
	b := start(t, limits(func(c *broker.Config) { c.MaxMessage = 1000; c.MaxFrame = 8192 }))
	c := b.Dial(t)
	if c.MaxMessage() != 1000 {
		t.Fatalf("client sees MaxMessage %d", c.MaxMessage())
	}
	mb := create(t, c, "q")
	_, err := mb.Send(ctxT(t), make([]byte, 1001))
	wantErr(t, err, postbox.ErrTooLarge, "send of MaxMessage+1 bytes")
	send(t, mb, strings.Repeat("x", 1000))
	if got := recvAck(t, mb); len(got) != 1000 {
		t.Fatalf("got %d bytes", len(got))
	}
}

func TestMaxQueuedBytesRefusesSendUntilMessagesAreAcked(t *testing.T) {
	// The limit also counts every connection's unwritten output (a reply
	// is counted until the broker's write of it returns, which can be
	// after the client has read it), so it is sized for four messages
	// plus room for those few bytes, not a fifth message.
	b := start(t, limits(func(c *broker.Config) { c.MaxMessage = 1024; c.MaxFrame = 4096; c.MaxQueuedBytes = 4096 + 512 }))
	c := b.Dial(t)
	a := create(t, c, "a") // unbounded
	other := create(t, c, "b")
	body := strings.Repeat("x", 1024)
	for range 4 {
		send(t, a, body)
	}
	_, err := a.Send(ctxT(t), []byte(body))
	wantErr(t, err, postbox.ErrLimit, "send past MaxQueuedBytes")
	_, err = other.Send(ctxT(t), []byte(strings.Repeat("y", 600))) // more than the room left for replies
	wantErr(t, err, postbox.ErrLimit, "send to another mailbox past the broker-wide MaxQueuedBytes")

	// A leased message still holds its bytes; an acked one does not.
	m := recv(t, a)
	_, err = a.Send(ctxT(t), []byte(body), postbox.NoWait())
	wantErr(t, err, postbox.ErrLimit, "send while the freed message is only leased")
	ack(t, m)
	send(t, a, body)
	send(t, other, "")
}

func TestBlockedSendersOnFullMailboxDoNotDelayAnotherMailbox(t *testing.T) {
	b := start(t, nil)
	flooder := b.Dial(t)
	full := create(t, flooder, "full", postbox.Capacity(1))
	send(t, full, "0")
	const blocked = 50
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	var sends []<-chan result[postbox.Receipt]
	for range blocked {
		sends = append(sends, async(func() (postbox.Receipt, error) { return full.Send(ctx, []byte("flood")) }))
	}
	waitStat(t, full, fmt.Sprint("BlockedSenders == ", blocked), func(i postbox.Info) bool { return i.BlockedSenders == blocked })

	pp := create(t, b.Dial(t), "pp")
	for i := range 100 {
		pingPong(t, pp, fmt.Sprint("ping ", i))
	}
	// A receiver on the flooded mailbox's own client is not stuck either.
	if got := recvAck(t, flooder.Mailbox("full")); got != "0" {
		t.Fatalf("got %q", got)
	}
	cancel()
	ok := 0
	for _, ch := range sends {
		if r := await(t, ch, "flood send"); r.err == nil {
			ok++
		} else if !errors.Is(r.err, context.Canceled) && !errors.Is(r.err, postbox.ErrCanceled) {
			t.Errorf("flood send: %v", r.err)
		}
	}
	if ok != 1 {
		t.Errorf("%d flood sends completed, want exactly the 1 that got the freed slot", ok)
	}
}

func TestStuckReceiverDoesNotDelayAnotherMailbox(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	stuck := create(t, c, "stuck", postbox.Mode(0o666))
	// A consumer that never reads its socket, with a large window: the
	// broker's writes to it fill the socket buffer and stall.
	rc := dialRaw(t, b.Socket)
	frame, _ := rc.frame(wire.OpConsume, 0, (&wire.Consume{Name: []byte("stuck"), Credit: 1 << 20}).Append(nil))
	rc.write(t, frame)
	waitStat(t, stuck, "Consumers == 1", func(i postbox.Info) bool { return i.Consumers == 1 })
	body := make([]byte, 32<<10)
	const n = 256 // 8 MiB: twice the default backlog bound, far beyond a socket buffer
	for range n {
		if _, err := stuck.Send(ctxT(t), body); err != nil {
			t.Fatal(err)
		}
	}
	// The broker hands it deliveries up to its connection's backlog bound
	// (max_conn_backlog), then stalls it: the rest stay queued.
	waitStat(t, stuck, "the stuck consumer stalled with the rest queued", func(i postbox.Info) bool {
		return i.InFlight > 0 && i.Depth > 0 && uint64(i.InFlight)+i.Depth == n
	})

	pp := create(t, b.Dial(t), "pp")
	start := time.Now()
	for i := range 100 {
		pingPong(t, pp, fmt.Sprint("ping ", i))
	}
	t.Logf("100 ping-pongs beside a stuck consumer: %v", time.Since(start))
}
