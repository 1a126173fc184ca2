package cluster_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/cluster"
)

// TestClusterMailboxSentThroughOneBrokerIsReceivedThroughTheOther is the
// core promise: one replicated mailbox, two brokers, the sender's
// identity stamped by the sending broker and read by the receiving one.
func TestClusterMailboxSentThroughOneBrokerIsReceivedThroughTheOther(t *testing.T) {
	_, a, b := sharedCluster(t)
	ctx := ctxT(t)
	ca, cb := dial(t, a), dial(t, b)
	if _, err := ca.Create(ctx, "core.jobs", postbox.Cluster(3), postbox.Mode(0o660)); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.Create(ctx, "core.jobs", postbox.Cluster(3)); !errors.Is(err, postbox.ErrExists) {
		t.Fatalf("second create through the other broker: %v, want ErrExists", err)
	}
	r, err := ca.Mailbox("core.jobs").Send(ctx, []byte("build #42"), postbox.Type(7), postbox.WithHeader("trace", "abc"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := cb.Mailbox("core.jobs").Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Body) != "build #42" || m.Type != 7 || m.ID != r.ID || m.Header().Get("trace") != "abc" {
		t.Fatalf("got %q type %d id %d (sent id %d) trace %q", m.Body, m.Type, m.ID, r.ID, m.Header().Get("trace"))
	}
	if m.Sender.PID != int32(os.Getpid()) || m.Sender.UID != uint32(os.Getuid()) || m.Sender.Kind != postbox.KindUnix {
		t.Fatalf("sender %+v, want this process (pid %d uid %d)", m.Sender, os.Getpid(), os.Getuid())
	}
	if m.SentAt.IsZero() || time.Since(m.SentAt) > hang {
		t.Fatalf("sent at %v", m.SentAt)
	}
	if err := m.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Ack(ctx); !errors.Is(err, postbox.ErrStaleLease) {
		t.Fatalf("second ack: %v, want ErrStaleLease", err)
	}
	// The stream removes an acked message a moment after the consumer
	// confirmed the ack: depth gets to 0 soon, not necessarily at once.
	var i postbox.Info
	for deadline := time.Now().Add(hang); ; time.Sleep(20 * time.Millisecond) {
		if i, err = cb.Mailbox("core.jobs").Stat(ctx); err != nil {
			t.Fatal(err)
		}
		if i.Depth == 0 || time.Now().After(deadline) {
			break
		}
	}
	if i.Cluster != "pbtest" || i.Replicas != 3 || i.Depth != 0 || i.Mode != 0o660 || i.UID != uint32(os.Getuid()) {
		t.Fatalf("stat: %+v", i)
	}
	if !strings.HasPrefix(i.StreamState, "leader ") {
		t.Fatalf("stream state %q", i.StreamState)
	}
	list, err := ca.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, li := range list {
		found = found || li.Name == "core.jobs" && li.Replicas == 3
	}
	if !found {
		t.Fatalf("list has no core.jobs R3: %+v", list)
	}
	// A consumer through one broker sees what is sent through the other.
	cn, err := cb.Mailbox("core.jobs").Consume(ctx, postbox.Prefetch(4))
	if err != nil {
		t.Fatal(err)
	}
	for k := range 10 {
		if _, err := ca.Mailbox("core.jobs").Send(ctx, fmt.Appendf(nil, "m%d", k)); err != nil {
			t.Fatal(err)
		}
	}
	for k := range 10 {
		m, err := cn.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("m%d", k); string(m.Body) != want {
			t.Fatalf("consumer got %q, want %q (one sender: its order holds)", m.Body, want)
		}
		m.Ack(ctx)
	}
	cn.Close(ctx)
	if err := ca.Mailbox("core.jobs").Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.Mailbox("core.jobs").Send(ctx, []byte("x")); !errors.Is(err, postbox.ErrNotFound) {
		t.Fatalf("send after destroy: %v, want ErrNotFound", err)
	}
}

// TestClusterMailboxRefusesWhatItCannotKeep: each option that cannot
// hold on a shared mailbox is refused, INVALID, saying why.
func TestClusterMailboxRefusesWhatItCannotKeep(t *testing.T) {
	_, a, b := sharedCluster(t)
	ctx := ctxT(t)
	ca, cb := dial(t, a), dial(t, b)
	refused := func(what string, err error, why error) {
		t.Helper()
		if !errors.Is(err, postbox.ErrInvalid) || !strings.Contains(err.Error(), strings.TrimPrefix(why.Error(), "broker: ")) {
			t.Errorf("%s: %v, want ErrInvalid saying %q", what, err, why)
		}
	}
	_, err := ca.Create(ctx, "refuse.r", postbox.Cluster(1), postbox.Rendezvous())
	refused("rendezvous", err, broker.ErrClusterRendezvous)
	_, err = ca.Create(ctx, "refuse.d", postbox.Cluster(1), postbox.Durable())
	refused("durable", err, broker.ErrClusterLocalOption)
	_, err = ca.Create(ctx, "refuse.m", postbox.Cluster(1), postbox.MaxDeliveries(3))
	refused("max deliveries", err, broker.ErrClusterLocalOption)
	_, err = ca.Create(ctx, "refuse.s", postbox.Cluster(1), postbox.Service())
	refused("service", err, broker.ErrClusterLocalOption)
	_, err = ca.Create(ctx, "refuse.six", postbox.Cluster(6))
	refused("replicas 6", err, broker.ErrClusterLocalOption)

	if _, err := ca.Create(ctx, "refuse.ok", postbox.Cluster(1)); err != nil {
		t.Fatal(err)
	}
	mb := ca.Mailbox("refuse.ok")
	_, err = mb.Send(ctx, []byte("p"), postbox.Priority(3))
	refused("priority", err, broker.ErrClusterPriority)
	_, err = mb.Send(ctx, []byte("r"), postbox.WithReceipt())
	refused("receipt", err, broker.ErrClusterReceipt)
	_, err = cb.Mailbox("refuse.ok").Receive(ctx, postbox.Type(-5))
	refused("negative type", err, broker.ErrClusterTypeRange)
	err = mb.Chmod(ctx, 0o666)
	refused("chmod", err, broker.ErrClusterChange)
	_, err = mb.Send(ctx, []byte("u"), postbox.Urgent())
	refused("urgent", err, broker.ErrClusterUrgent)
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	_, err = mb.Send(ctx, []byte("f"), postbox.WithFiles(f))
	f.Close()
	if !errors.Is(err, postbox.ErrInvalid) && !errors.Is(err, postbox.ErrNoDescriptors) || !strings.Contains(err.Error(), "descriptors") {
		t.Errorf("descriptors: %v, want a refusal naming descriptors", err)
	}

	// A bounded cluster mailbox is FULL at once: no sender waits.
	if _, err := ca.Create(ctx, "refuse.two", postbox.Cluster(1), postbox.Capacity(2)); err != nil {
		t.Fatal(err)
	}
	two := ca.Mailbox("refuse.two")
	for range 2 {
		if _, err := two.Send(ctx, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := two.Send(ctx, []byte("x")); !errors.Is(err, postbox.ErrFull) {
		t.Errorf("third send to capacity 2: %v, want ErrFull", err)
	}
	two.Destroy(ctx)

	// Typed receivers and any-type receivers cannot share the mailbox.
	if _, err := mb.Send(ctx, []byte("t5"), postbox.Type(5)); err != nil {
		t.Fatal(err)
	}
	m, err := cb.Mailbox("refuse.ok").Receive(ctx, postbox.Type(5))
	if err != nil || string(m.Body) != "t5" {
		t.Fatalf("typed receive: %v %v", m, err)
	}
	m.Ack(ctx)
	_, err = cb.Mailbox("refuse.ok").Receive(ctx, postbox.NoWait())
	refused("any type beside exact types", err, broker.ErrClusterTypeMix)

	// A broker without a cluster says so.
	cfg := broker.DefaultConfig()
	cfg.Logger = quietLog()
	local := &testBroker{}
	local.b = broker.New(cfg)
	dir, _ := os.MkdirTemp("", "pbcl-")
	defer os.RemoveAll(dir)
	local.socket = dir + "/s"
	l, err := broker.Listen(local.socket, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	go local.b.Serve(l)
	defer local.b.Close()
	_, err = dial(t, local).Create(ctx, "refuse.none", postbox.Cluster(1))
	refused("no cluster", err, broker.ErrNoCluster)
	mb.Destroy(ctx)
}

// TestConfigValidateNamesTheBadField checks cluster.Config.Validate.
func TestConfigValidateNamesTheBadField(t *testing.T) {
	for _, c := range []cluster.Config{
		{},
		{URLs: []string{"nats://x"}, Creds: "f", User: "u"},
		{URLs: []string{"nats://x"}, Password: "p"},
		{URLs: []string{"nats://x"}, AckWait: time.Millisecond},
	} {
		if err := c.Validate(); !errors.Is(err, cluster.ErrConfig) {
			t.Errorf("%+v: %v, want ErrConfig", c, err)
		}
	}
	if err := (&cluster.Config{URLs: []string{"nats://x"}}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestClusterHeldLeaseIsKeptAlive: a lease held longer than JetStream's
// ack wait is not redelivered, because its broker keeps it alive with
// in-progress acks (here: ack wait 3 s, kept alive every 500 ms).
func TestClusterHeldLeaseIsKeptAlive(t *testing.T) {
	nc, _, _ := sharedCluster(t)
	ctx := ctxT(t)
	fast := func(host string) *testBroker {
		return startBrokerWith(t, nc, host, 3*time.Second, 500*time.Millisecond)
	}
	c, d := dial(t, fast("host-c")), dial(t, fast("host-d"))
	if _, err := c.Create(ctx, "keepalive", postbox.Cluster(3)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Mailbox("keepalive").Send(ctx, []byte("long job")); err != nil {
		t.Fatal(err)
	}
	m, err := c.Mailbox("keepalive").Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(7 * time.Second) // more than twice the ack wait
	if got, err := d.Mailbox("keepalive").Receive(ctx, postbox.NoWait()); !errors.Is(err, postbox.ErrEmpty) {
		t.Fatalf("while the lease is held: %v %v, want ErrEmpty (the lease kept alive)", got, err)
	}
	if err := m.Ack(ctx); err != nil {
		t.Fatalf("ack after holding it: %v", err)
	}
	c.Mailbox("keepalive").Destroy(ctx)
}

// TestClusterConsumerRemovedIdleIsMadeAgain: JetStream removes a
// consumer nobody used for a while; the next receive makes it again, and
// a type selector of the other kind is then allowed.
func TestClusterConsumerRemovedIdleIsMadeAgain(t *testing.T) {
	_, a, _ := sharedCluster(t)
	ctx := ctxT(t)
	defer cluster.SetConsumerIdle(cluster.SetConsumerIdle(time.Second))
	c := dial(t, a)
	if _, err := c.Create(ctx, "idle", postbox.Cluster(1)); err != nil {
		t.Fatal(err)
	}
	mb := c.Mailbox("idle")
	roundTrip := func(opts ...postbox.ReceiveOption) {
		t.Helper()
		if _, err := mb.Send(ctx, []byte("x"), postbox.Type(4)); err != nil {
			t.Fatal(err)
		}
		m, err := mb.Receive(ctx, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	removed := func() {
		t.Helper()
		for deadline := time.Now().Add(hang); ; time.Sleep(200 * time.Millisecond) {
			i, err := mb.Stat(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if i.Consumers == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the idle consumer was not removed: %d consumers", i.Consumers)
			}
		}
	}
	roundTrip(postbox.Type(4))
	removed()
	roundTrip(postbox.Type(4)) // the broker's consumer is gone: made again
	removed()
	roundTrip() // any type: allowed now that the typed consumer is gone
	mb.Destroy(ctx)
}

// TestClusterRetriedSendIsStoredOnce: the same request (session and
// request id) sent again, here through the other broker as after a
// reconnect, is removed by its Nats-Msg-Id.
func TestClusterRetriedSendIsStoredOnce(t *testing.T) {
	_, a, b := sharedCluster(t)
	ctx := ctxT(t)
	if _, err := dial(t, a).Create(ctx, "dedup", postbox.Cluster(3)); err != nil {
		t.Fatal(err)
	}
	session := postbox.Session{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	send := func(tb *testBroker) uint64 {
		// A fresh client makes the same requests in the same order: the
		// SEND has the same request id on the same session.
		c := dial(t, tb, postbox.WithSession(session))
		r, err := c.Mailbox("dedup").Send(ctx, []byte("once"))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		return r.ID
	}
	id1, id2 := send(a), send(b)
	if id1 != id2 {
		t.Fatalf("retried send stored as %d and %d, want one message", id1, id2)
	}
	cb := dial(t, b)
	i, err := cb.Mailbox("dedup").Stat(ctx)
	if err != nil || i.Depth != 1 {
		t.Fatalf("depth %d (%v), want 1", i.Depth, err)
	}
	cb.Mailbox("dedup").Destroy(ctx)
}

// TestClusterClientsCannotForgeMessages: with the NATS config the docs
// give, a NATS client that is not a broker cannot publish on a mailbox's
// subjects, so the identity headers receivers read are brokers'.
func TestClusterClientsCannotForgeMessages(t *testing.T) {
	nc, a, _ := sharedCluster(t)
	ctx := ctxT(t)
	c := dial(t, a)
	if _, err := c.Create(ctx, "forge", postbox.Cluster(1)); err != nil {
		t.Fatal(err)
	}
	i, err := c.Mailbox("forge").Stat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	perm := make(chan error, 1)
	evil, err := nats.Connect(nc.urls()[0], nats.UserInfo(clientUser, clientPass),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case perm <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	subj := "postbox.mb." + strings.TrimPrefix(i.Stream, "PB_") + ".1"
	m := nats.NewMsg(subj)
	m.Header.Set("Postbox-Sender", "1 0 0 1 0") // claims to be root
	m.Data = []byte("forged")
	evil.PublishMsg(m)
	evil.Flush()
	select {
	case err := <-perm:
		if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("publish error %v, want a permissions violation", err)
		}
	case <-time.After(hang):
		t.Fatal("the server did not refuse the forged publish")
	}
	if _, err := c.Mailbox("forge").Receive(ctx, postbox.NoWait()); !errors.Is(err, postbox.ErrEmpty) {
		t.Fatalf("receive after a forged publish: %v, want ErrEmpty", err)
	}
	c.Mailbox("forge").Destroy(ctx)
}

// TestClusterLostNATSFailsClusterOpsNotLocalOnes: without the cluster,
// cluster operations fail UNAVAILABLE and local mailboxes work; once the
// cluster is back, so are cluster mailboxes, without a broker restart.
func TestClusterLostNATSFailsClusterOpsNotLocalOnes(t *testing.T) {
	nc, a, _ := sharedCluster(t)
	ctx := ctxT(t)
	c := dial(t, a)
	if _, err := c.Create(ctx, "outage", postbox.Cluster(3)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, "outage.local"); err != nil {
		t.Fatal(err)
	}
	for i := range nc.nodes {
		nc.kill(i)
	}
	deadline := time.Now().Add(hang)
	for a.be.Connected() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := c.Mailbox("outage").Send(ctx, []byte("x")); !errors.Is(err, postbox.ErrUnavailable) {
		t.Errorf("send without the cluster: %v, want ErrUnavailable", err)
	}
	if _, err := c.Mailbox("outage").Receive(ctx, postbox.NoWait()); !errors.Is(err, postbox.ErrUnavailable) {
		t.Errorf("receive without the cluster: %v, want ErrUnavailable", err)
	}
	if _, err := c.Create(ctx, "outage.new", postbox.Cluster(1)); !errors.Is(err, postbox.ErrUnavailable) {
		t.Errorf("create without the cluster: %v, want ErrUnavailable", err)
	}
	if _, err := c.Mailbox("outage.local").Send(ctx, []byte("local")); err != nil {
		t.Fatalf("local send without the cluster: %v", err)
	}
	if m, err := c.Mailbox("outage.local").Receive(ctx, postbox.AutoAck()); err != nil || string(m.Body) != "local" {
		t.Fatalf("local receive without the cluster: %v", err)
	}
	for i := range nc.nodes {
		if err := nc.start(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.waitReady(); err != nil {
		t.Fatal(err)
	}
	// The broker reconnects by itself; sends work again once the
	// stream has its leader back.
	var err error
	for deadline := time.Now().Add(hang); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, err = c.Mailbox("outage").Send(ctx, []byte("back")); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("send after the cluster came back: %v", err)
	}
	m, err := c.Mailbox("outage").Receive(ctx)
	if err != nil || string(m.Body) != "back" {
		t.Fatalf("receive after the cluster came back: %v %v", m, err)
	}
	m.Ack(ctx)
	c.Mailbox("outage").Destroy(ctx)
}

// TestClusterDeadReceiverRedeliversAtOnceThroughTheOtherBroker: a
// receiving process killed with SIGKILL on broker B holds a lease; B
// nacks it as the connection ends, so a receiver on broker A gets the
// message at once, well before JetStream's 30 s ack wait.
func TestClusterDeadReceiverRedeliversAtOnceThroughTheOtherBroker(t *testing.T) {
	_, a, b := sharedCluster(t)
	ctx := ctxT(t)
	ca := dial(t, a)
	if _, err := ca.Create(ctx, "redeliver", postbox.Cluster(3)); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Mailbox("redeliver").Send(ctx, []byte("job")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "POSTBOX_CLUSTER_HELPER=receive", "POSTBOX_SOCKET="+b.socket, "POSTBOX_MAILBOX=redeliver")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "got job\n" {
		cmd.Process.Kill()
		t.Fatalf("helper said %q (%v)", line, err)
	}
	killed := time.Now()
	cmd.Process.Signal(syscall.SIGKILL)
	m, err := ca.Mailbox("redeliver").Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(killed)
	if string(m.Body) != "job" || m.Redeliveries != 1 {
		t.Fatalf("got %q redeliveries %d", m.Body, m.Redeliveries)
	}
	// Not a timing assertion on speed: only that it was not JetStream's
	// ack wait (30 s) that brought it back.
	if took >= 25*time.Second {
		t.Fatalf("redelivered after %v: the dead receiver's lease was not nacked", took)
	}
	t.Logf("redelivered %v after the receiver's SIGKILL", took)
	m.Ack(ctx)
	ca.Mailbox("redeliver").Destroy(ctx)
}

// helperMain plays a client role in a child process.
func helperMain() int {
	ctx := context.Background()
	c, err := postbox.Dial(ctx, postbox.WithSocket(os.Getenv("POSTBOX_SOCKET")))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	switch os.Getenv("POSTBOX_CLUSTER_HELPER") {
	case "receive":
		m, err := c.Mailbox(os.Getenv("POSTBOX_MAILBOX")).Receive(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("got %s\n", m.Body)
		time.Sleep(time.Hour) // holding the lease until killed
	}
	return 0
}
