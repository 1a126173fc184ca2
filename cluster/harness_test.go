package cluster_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/cluster"
)

// A real NATS cluster for the tests: nats-server built from its module
// (a tool of this module: go.mod's tool directive), three nodes on
// loopback ports with JetStream in temporary directories. Brokers log in
// as user "broker"; user "client" may not publish on the mailbox
// subjects or the JetStream API, so it cannot forge a message.

const (
	brokerUser, brokerPass = "broker", "broker-secret"
	clientUser, clientPass = "client", "client-secret"
)

// natsBin is the nats-server binary TestMain built.
var natsBin string

// hang bounds every wait: a hang becomes a failure, never a timing rule.
const hang = 60 * time.Second

func TestMain(m *testing.M) {
	if os.Getenv("POSTBOX_CLUSTER_HELPER") != "" {
		os.Exit(helperMain())
	}
	dir, err := os.MkdirTemp("", "postbox-nats-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	natsBin = filepath.Join(dir, "nats-server")
	out, err := exec.Command("go", "build", "-o", natsBin, "github.com/nats-io/nats-server/v2").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building nats-server (go tool of this module): %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	for i := len(sharedCleanups) - 1; i >= 0; i-- {
		sharedCleanups[i]()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

type natsNode struct {
	name        string
	port, cport int
	conf        string
	cmd         *exec.Cmd
	exited      chan struct{}
}

type natsCluster struct {
	dir   string
	nodes []*natsNode
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startNATS starts an n-node cluster and waits until JetStream answers.
func startNATS(t testing.TB, n int) *natsCluster {
	dir, err := os.MkdirTemp("", "postbox-nats-")
	if err != nil {
		t.Fatal(err)
	}
	nc := &natsCluster{dir: dir}
	for i := range n {
		nc.nodes = append(nc.nodes, &natsNode{name: fmt.Sprintf("n%d", i+1), port: freePort(t), cport: freePort(t)})
	}
	for _, nd := range nc.nodes {
		var routes []string
		for _, o := range nc.nodes {
			if o != nd {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", o.cport))
			}
		}
		nd.conf = filepath.Join(dir, nd.name+".conf")
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream { store_dir: %q, max_memory_store: 64MB, max_file_store: 1GB }
accounts {
  PB {
    jetstream: enabled
    users: [
      { user: %s, password: %s }
      { user: %s, password: %s, permissions: { publish: { deny: ["postbox.mb.>", "$JS.API.>", "$JS.ACK.>"] } } }
    ]
  }
  SYS { users: [ { user: sys, password: sys } ] }
}
system_account: SYS
`, nd.name, nd.port, filepath.Join(dir, nd.name), brokerUser, brokerPass, clientUser, clientPass)
		if n > 1 {
			conf += fmt.Sprintf("cluster { name: pbtest, listen: 127.0.0.1:%d, routes: [%s] }\n", nd.cport, strings.Join(routes, ", "))
		}
		if err := os.WriteFile(nd.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(nc.stop)
	for i := range nc.nodes {
		if err := nc.start(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.waitReady(); err != nil {
		t.Fatal(err)
	}
	return nc
}

// start starts node i (again, after kill: same ports and directory).
func (nc *natsCluster) start(i int) error {
	nd := nc.nodes[i]
	cmd := exec.Command(natsBin, "-c", nd.conf)
	logf, err := os.OpenFile(filepath.Join(nc.dir, nd.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	nd.cmd, nd.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(nd.exited) }()
	return nil
}

// kill stops node i with SIGKILL.
func (nc *natsCluster) kill(i int) {
	nd := nc.nodes[i]
	if nd.cmd == nil {
		return
	}
	nd.cmd.Process.Signal(syscall.SIGKILL)
	<-nd.exited
	nd.cmd = nil
}

func (nc *natsCluster) stop() {
	for i := range nc.nodes {
		nc.kill(i)
	}
	os.RemoveAll(nc.dir)
}

// urls are the client URLs of every node.
func (nc *natsCluster) urls() []string {
	var u []string
	for _, nd := range nc.nodes {
		u = append(u, fmt.Sprintf("nats://127.0.0.1:%d", nd.port))
	}
	return u
}

// waitReady waits until JetStream has a meta leader (it answers account
// info through every node that runs).
func (nc *natsCluster) waitReady() error {
	deadline := time.Now().Add(hang)
	for _, nd := range nc.nodes {
		if nd.cmd == nil {
			continue
		}
		for {
			err := jsReady(fmt.Sprintf("nats://127.0.0.1:%d", nd.port))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("nats cluster not ready: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func jsReady(url string) error {
	c, err := nats.Connect(url, nats.UserInfo(brokerUser, brokerPass), nats.Timeout(time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	js, err := jetstream.New(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// testBroker is an in-process broker attached to the cluster.
type testBroker struct {
	b      *broker.Broker
	be     *cluster.Backend
	socket string
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startBroker(t testing.TB, nc *natsCluster, host string) *testBroker {
	return startBrokerWith(t, nc, host, 0, 0)
}

// startBrokerWith is startBroker with the backend's ack wait and the
// broker's keepalive (0: their defaults).
func startBrokerWith(t testing.TB, nc *natsCluster, host string, ackWait, keepAlive time.Duration) *testBroker {
	be, err := cluster.Open(cluster.Config{URLs: nc.urls(), User: brokerUser, Password: brokerPass, Logger: quietLog(), AckWait: ackWait})
	if err != nil {
		t.Fatal(err)
	}
	cfg := broker.DefaultConfig()
	cfg.Logger = quietLog()
	cfg.Remote, cfg.HostID, cfg.RemoteKeepAlive = be, host, keepAlive
	b, err := broker.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "pbcl-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s")
	l, err := broker.Listen(sock, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); b.Serve(l) }()
	t.Cleanup(func() {
		b.Close()
		wg.Wait()
		be.Close()
		os.RemoveAll(dir)
	})
	return &testBroker{b: b, be: be, socket: sock}
}

func dial(t testing.TB, tb *testBroker, opts ...postbox.DialOption) *postbox.Client {
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	c, err := postbox.Dial(ctx, append([]postbox.DialOption{postbox.WithSocket(tb.socket)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	t.Cleanup(cancel)
	return ctx
}

// shared is the cluster and brokers the tests share (started once, by
// the first test that needs them).
var shared struct {
	once sync.Once
	nc   *natsCluster
	a, b *testBroker
}

type tbNoCleanup struct {
	testing.TB
	cleanups *[]func()
}

func (t tbNoCleanup) Cleanup(f func()) { *t.cleanups = append(*t.cleanups, f) }

var sharedCleanups []func()

// sharedCluster returns the shared three-node cluster and two brokers
// attached to it ("host-a", "host-b").
func sharedCluster(t *testing.T) (*natsCluster, *testBroker, *testBroker) {
	shared.once.Do(func() {
		tt := tbNoCleanup{TB: t, cleanups: &sharedCleanups}
		shared.nc = startNATS(tt, 3)
		shared.a = startBroker(tt, shared.nc, "host-a")
		shared.b = startBroker(tt, shared.nc, "host-b")
	})
	if shared.nc == nil {
		t.Fatal("shared cluster failed to start")
	}
	return shared.nc, shared.a, shared.b
}
