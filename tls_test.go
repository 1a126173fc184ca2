package postbox_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"maps"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/internal/testcerts"
	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// tlsWorld is a broker on a Unix socket and a TLS listener on
// 127.0.0.1, with a CA, a server certificate and two clients: alice
// (a SPIFFE URI SAN) and bob (a subject only).
type tlsWorld struct {
	b               *testbroker.Broker
	url             string
	ca              *testcerts.CA
	srv, alice, bob *testcerts.Pair
}

const aliceName = "spiffe://example.org/alice"

func startTLS(t *testing.T, cfg *broker.Config) *tlsWorld {
	t.Helper()
	dir := t.TempDir()
	w := &tlsWorld{ca: testcerts.NewCA(t, dir, "test")}
	w.srv = w.ca.Server(t, "broker")
	w.alice = w.ca.Client(t, "alice", "Example", aliceName)
	w.bob = w.ca.Client(t, "bob", "Example", "")
	w.serve(t, testbroker.Start(t, cfg))
	return w
}

// serve makes b the world's broker, with a TLS listener of its own.
func (w *tlsWorld) serve(t *testing.T, b *testbroker.Broker) {
	t.Helper()
	w.b = b
	l, err := broker.ListenTLS("127.0.0.1:0", testcerts.ServerConfig(w.srv, w.ca))
	if err != nil {
		t.Fatal(err)
	}
	go w.b.Serve(l)
	w.url = "tls://" + l.Addr().String()
}

func (w *tlsWorld) dial(t *testing.T, p *testcerts.Pair) *postbox.Client {
	t.Helper()
	c, err := w.dialErr(p, w.ca)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (w *tlsWorld) dialErr(p *testcerts.Pair, trust *testcerts.CA) (*postbox.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	return postbox.Dial(ctx, postbox.WithURL(w.url), postbox.WithTLS(testcerts.ClientConfig(p, trust)))
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	t.Cleanup(cancel)
	return ctx
}

func TestTLSRefusesClientsWithoutAValidCertificateAndSaysWhy(t *testing.T) {
	testbroker.CheckGoroutines(t)
	w := startTLS(t, nil)
	other := testcerts.NewCA(t, t.TempDir(), "other")
	for _, tc := range []struct {
		name string
		cert *testcerts.Pair
		want string
	}{
		{"no certificate", nil, "sent none"},
		{"untrusted certificate", other.Client(t, "mallory", "", ""), "does not trust this client's certificate"},
		{"expired certificate", w.ca.ExpiredClient(t, "old"), "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := w.dialErr(tc.cert, w.ca)
			if err == nil {
				c.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, postbox.ErrTLS) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want ErrTLS saying %q", err, tc.want)
			}
		})
	}
	// A client that does not trust the broker's certificate says so too.
	_, err := w.dialErr(w.alice, other)
	if !errors.Is(err, postbox.ErrTLS) || !strings.Contains(err.Error(), "does not trust the broker's certificate") {
		t.Fatalf("untrusted broker: %v", err)
	}
}

func TestTLSPrincipalIsTheCertificateNameStampedOnItsMessages(t *testing.T) {
	testbroker.CheckGoroutines(t)
	w := startTLS(t, nil)
	ctx := tctx(t)
	alice, bob, local := w.dial(t, w.alice), w.dial(t, w.bob), w.b.Dial(t)
	if id := alice.Identity(); id.Kind != postbox.KindTLS || id.Name != aliceName || id.UID != 0 || id.PID != 0 {
		t.Fatalf("alice is %+v", id)
	}
	if id := bob.Identity(); id.Kind != postbox.KindTLS || id.Name != "CN=bob,O=Example" {
		t.Fatalf("bob is %+v", id)
	}
	mb, err := local.Create(ctx, "jobs", postbox.Capacity(10), postbox.Mode(0o600))
	if err != nil {
		t.Fatal(err)
	}
	if err := mb.SetAccess(ctx, "*", true, true); err != nil { // every subject DN (no "/")
		t.Fatal(err)
	}
	if err := mb.SetAccess(ctx, "spiffe://example.org/*", false, true); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Mailbox("jobs").Send(ctx, []byte("from alice")); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Mailbox("jobs").Send(ctx, []byte("from bob")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{aliceName, "CN=bob,O=Example"} {
		m, err := mb.Receive(ctx, postbox.AutoAck())
		if err != nil {
			t.Fatal(err)
		}
		if m.Sender.Kind != postbox.KindTLS || m.Sender.Name != want {
			t.Fatalf("message %q from %+v, want %q", m.Body, m.Sender, want)
		}
	}
	// A local receiver is named to a remote sender by its receipt, and
	// a remote receiver to a local one.
	go func() {
		if m, err := bob.Mailbox("jobs").Receive(ctx); err == nil {
			m.Ack(ctx)
		}
	}()
	r, err := local.Mailbox("jobs").Send(ctx, []byte("to bob"), postbox.WithReceipt())
	if err != nil || r.By.Name != "CN=bob,O=Example" || r.By.Kind != postbox.KindTLS {
		t.Fatalf("receipt %+v, %v", r, err)
	}
}

// TestTLSIdentityCannotBeForged: a TLS client writes frames by hand and
// claims another principal's name in every ext tail it can; what the
// receiver sees is its certificate's name. CHANNEL is refused, saying
// why.
func TestTLSIdentityCannotBeForged(t *testing.T) {
	testbroker.CheckGoroutines(t)
	w := startTLS(t, nil)
	ctx := tctx(t)
	local := w.b.Dial(t)
	mb, err := local.Create(ctx, "inbox", postbox.Capacity(10), postbox.Mode(0o600))
	if err != nil {
		t.Fatal(err)
	}
	if err := mb.SetAccess(ctx, "*", false, true); err != nil {
		t.Fatal(err)
	}
	tc, err := tls.Dial("tcp", strings.TrimPrefix(w.url, "tls://"), testcerts.ClientConfig(w.bob, w.ca))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	forged := wire.AppendPrincipalName(nil, aliceName)
	write := func(op wire.Op, req uint64, p []byte) {
		if _, err := tc.Write(append(wire.AppendHeader(nil, wire.Header{Op: op, Request: req}, len(p)), p...)); err != nil {
			t.Fatal(err)
		}
	}
	r := wire.NewReader(tc, wire.DefaultMaxFrame, 64<<10)
	read := func() (wire.Header, []byte) {
		tc.SetReadDeadline(time.Now().Add(testbroker.HangGuard))
		hd, p, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		return hd, p
	}
	write(wire.OpHello, 1, (&wire.Hello{MinVersion: 2, MaxVersion: 2, Caps: wire.CapDescriptors, Ext: forged}).Append(nil))
	hd, p := read()
	var hr wire.HelloReply
	if err := hr.Decode(p); err != nil || hd.Status != wire.OK {
		t.Fatalf("HELLO: %s %v", hd.Status, err)
	}
	if name, _ := wire.PrincipalName(hr.Ext); hr.Principal.Kind != wire.PrincipalTLS || name != "CN=bob,O=Example" || hr.Caps != 0 {
		t.Fatalf("HELLO reply principal %+v %q caps %#x", hr.Principal, name, hr.Caps)
	}
	send := wire.Send{Target: []byte("inbox"), Msgs: []wire.SendMsg{{Type: 1, Body: []byte("forged?")}}, Ext: forged}
	write(wire.OpSend, 2, send.Append(nil))
	if hd, p = read(); hd.Status != wire.OK {
		t.Fatalf("SEND: %s %q", hd.Status, p)
	}
	m, err := mb.Receive(ctx, postbox.AutoAck())
	if err != nil {
		t.Fatal(err)
	}
	if m.Sender.Name != "CN=bob,O=Example" || m.Sender.Kind != postbox.KindTLS || m.Sender.UID != 0 {
		t.Fatalf("sender %+v, want bob's certificate", m.Sender)
	}
	write(wire.OpChannel, 3, (&wire.Channel{Target: []byte("inbox"), Type: 1}).Append(nil))
	hd, p = read()
	var e wire.ErrorReply
	e.Decode(p)
	if hd.Status != wire.CodeInvalid || !strings.Contains(string(e.Message), "need a local Unix socket") {
		t.Fatalf("CHANNEL over TLS: %s %q", hd.Status, e.Message)
	}
	// The Go client refuses it before asking.
	alice := w.dial(t, w.alice)
	if _, _, err := alice.OfferChannel(ctx, "inbox", 0); !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("OfferChannel over TLS: %v", err)
	}
	tc.Close()
	io.Copy(io.Discard, tc)
}

// TestTLSAccessEntriesDecideForRemotePrincipals: mode bits (0666 here)
// say nothing to a TLS peer; the entries matching its name do.
func TestTLSAccessEntriesDecideForRemotePrincipals(t *testing.T) {
	testbroker.CheckGoroutines(t)
	w := startTLS(t, nil)
	ctx := tctx(t)
	local, alice := w.b.Dial(t), w.dial(t, w.alice)
	type entry struct {
		pattern     string
		read, write bool
	}
	for _, tc := range []struct {
		name             string
		entries          []entry
		mayRecv, maySend bool
	}{
		{"exact rw", []entry{{aliceName, true, true}}, true, true},
		{"pattern rw", []entry{{"spiffe://example.org/*", true, true}}, true, true},
		{"pattern in another trust domain", []entry{{"spiffe://other.org/*", true, true}}, false, false},
		{"read only", []entry{{aliceName, true, false}}, true, false},
		{"write only", []entry{{aliceName, false, true}}, false, true},
		{"entries add up", []entry{{aliceName, true, false}, {"spiffe://*/alice", false, true}}, true, true},
		{"another principals entry", []entry{{"CN=bob,O=Example", true, true}}, false, false},
		{"no entries", nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "acl-" + strings.ReplaceAll(tc.name, " ", "-")
			mb, err := local.Create(ctx, name, postbox.Capacity(10), postbox.Mode(0o666))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range tc.entries {
				if err := mb.SetAccess(ctx, e.pattern, e.read, e.write); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := mb.Send(ctx, []byte("queued")); err != nil {
				t.Fatal(err)
			}
			info, err := alice.Mailbox(name).Stat(ctx)
			if err != nil || len(info.Access) != len(tc.entries) {
				t.Fatalf("stat: %+v, %v", info.Access, err)
			}
			for i, e := range tc.entries {
				if got := info.Access[i]; got != (postbox.AccessEntry{Pattern: e.pattern, Read: e.read, Write: e.write}) {
					t.Fatalf("entry %d: %+v, want %+v", i, got, e)
				}
			}
			_, err = alice.Mailbox(name).Send(ctx, []byte("x"), postbox.NoWait())
			if denied := errors.Is(err, postbox.ErrPermission); denied == tc.maySend || err != nil && !denied {
				t.Fatalf("send: %v, may send %v", err, tc.maySend)
			}
			_, err = alice.Mailbox(name).Receive(ctx, postbox.NoWait(), postbox.AutoAck())
			if denied := errors.Is(err, postbox.ErrPermission); denied == tc.mayRecv || err != nil && !denied {
				t.Fatalf("receive: %v, may receive %v", err, tc.mayRecv)
			}
			// Only the owner changes entries.
			if err := alice.Mailbox(name).SetAccess(ctx, "*", true, true); !errors.Is(err, postbox.ErrPermission) {
				t.Fatalf("alice setting an entry on a mailbox she does not own: %v", err)
			}
		})
	}
	mb := local.Mailbox("acl-exact-rw")
	if err := mb.RemoveAccess(ctx, aliceName); err != nil {
		t.Fatal(err)
	}
	if err := mb.RemoveAccess(ctx, aliceName); !errors.Is(err, postbox.ErrNotFound) {
		t.Fatalf("second removal: %v", err)
	}
	if _, err := alice.Mailbox("acl-exact-rw").Send(ctx, nil, postbox.NoWait()); !errors.Is(err, postbox.ErrPermission) {
		t.Fatalf("send after the entry went: %v", err)
	}
	if err := mb.SetAccess(ctx, "[bad", true, false); !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("bad pattern: %v", err)
	}
}

// TestTLSRemotePrincipalOwnsWhatItCreates: the owner is the creator's
// name (not uid 0); its owner bits apply to it, and only it may destroy,
// chmod or set entries.
func TestTLSRemotePrincipalOwnsWhatItCreates(t *testing.T) {
	testbroker.CheckGoroutines(t)
	w := startTLS(t, nil)
	ctx := tctx(t)
	alice, bob := w.dial(t, w.alice), w.dial(t, w.bob)
	mb, err := alice.Create(ctx, "alice/work", postbox.Capacity(10), postbox.Mode(0o600))
	if err != nil {
		t.Fatal(err)
	}
	info, err := bob.Mailbox("alice/work").Stat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.OwnerKind != postbox.KindTLS || info.OwnerName != aliceName || info.UID != wire.NoOwnerID || info.GID != wire.NoOwnerID {
		t.Fatalf("owner: kind %v name %q uid %d gid %d", info.OwnerKind, info.OwnerName, info.UID, info.GID)
	}
	if _, err := mb.Send(ctx, []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if m, err := mb.Receive(ctx, postbox.AutoAck()); err != nil || string(m.Body) != "mine" {
		t.Fatalf("owner receive: %v", err)
	}
	bobs := bob.Mailbox("alice/work")
	if _, err := bobs.Send(ctx, nil, postbox.NoWait()); !errors.Is(err, postbox.ErrPermission) {
		t.Fatalf("bob send before an entry: %v", err)
	}
	if err := mb.SetAccess(ctx, "CN=bob,*", false, true); err != nil {
		t.Fatal(err)
	}
	if _, err := bobs.Send(ctx, []byte("hi"), postbox.NoWait()); err != nil {
		t.Fatalf("bob send with w: %v", err)
	}
	for what, err := range map[string]error{
		"destroy":    bobs.Destroy(ctx),
		"chmod":      bobs.Chmod(ctx, 0o666),
		"set access": bobs.SetAccess(ctx, "*", true, true),
	} {
		if !errors.Is(err, postbox.ErrPermission) || !strings.Contains(err.Error(), aliceName) {
			t.Fatalf("bob's %s: %v, want a refusal naming the owner", what, err)
		}
	}
	if err := mb.Chmod(ctx, 0o660); err != nil {
		t.Fatal(err)
	}
	if err := mb.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestTLSPrincipalsHaveTheirOwnQuotas: one principal at its mailbox
// quota does not stop another.
func TestTLSPrincipalsHaveTheirOwnQuotas(t *testing.T) {
	testbroker.CheckGoroutines(t)
	cfg := broker.DefaultConfig()
	cfg.Quotas.Principal = map[string]broker.QuotaLimits{aliceName: {Mailboxes: 1}}
	w := startTLS(t, &cfg)
	ctx := tctx(t)
	alice, bob := w.dial(t, w.alice), w.dial(t, w.bob)
	if _, err := alice.Create(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	_, err := alice.Create(ctx, "a2")
	if !errors.Is(err, postbox.ErrLimit) || !strings.Contains(err.Error(), `principal "`+aliceName+`"`) {
		t.Fatalf("alice's second mailbox: %v", err)
	}
	for _, n := range []string{"b1", "b2"} {
		if _, err := bob.Create(ctx, n); err != nil {
			t.Fatalf("bob %s: %v", n, err)
		}
	}
	u := w.b.UsageOf(mailboxIdentity(aliceName))
	if u.Principal != aliceName || u.Used.Mailboxes != 1 || u.Quota.Mailboxes != 1 {
		t.Fatalf("alice's usage %+v", u)
	}
	// USAGE: alice sees her own bucket; root sees every principal's
	// after the uids.
	us, err := alice.Usage(ctx)
	if err != nil || len(us) != 1 || us[0].Principal != aliceName || us[0].Used.Mailboxes != 1 || us[0].Quota.Mailboxes != 1 {
		t.Fatalf("alice's USAGE: %+v, %v", us, err)
	}
	if _, err := alice.UsageOf(ctx, 0); !errors.Is(err, postbox.ErrPermission) {
		t.Fatalf("alice asking for uid 0: %v", err)
	}
	all, err := w.b.Dial(t).Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range all {
		if u.Principal != "" {
			names = append(names, u.Principal)
		}
	}
	if len(names) != 2 || names[0] != "CN=bob,O=Example" || names[1] != aliceName {
		t.Fatalf("root's USAGE principals: %q", names)
	}
}

func mailboxIdentity(name string) mailbox.Identity {
	return mailbox.Identity{Kind: wire.PrincipalTLS, Name: name}
}

// TestTLSRemoteOwnerEntriesAndSenderNameSurviveARestart: a durable
// mailbox a TLS principal created keeps its owner and access entries,
// and its messages their sender's name, across a broker restart.
func TestTLSRemoteOwnerEntriesAndSenderNameSurviveARestart(t *testing.T) {
	testbroker.CheckGoroutines(t)
	cfg := broker.DefaultConfig()
	cfg.DataDir, cfg.NoSync = t.TempDir(), true
	w := startTLS(t, &cfg)
	ctx := tctx(t)
	alice := w.dial(t, w.alice)
	mb, err := alice.Create(ctx, "alice/keep", postbox.Durable(), postbox.Mode(0o600))
	if err != nil {
		t.Fatal(err)
	}
	if err := mb.SetAccess(ctx, "CN=bob,*", true, false); err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Send(ctx, []byte("kept")); err != nil {
		t.Fatal(err)
	}
	alice.Close()
	w.b.Stop(t)
	b, err := testbroker.Open(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.serve(t, b)
	bob := w.dial(t, w.bob)
	info, err := bob.Mailbox("alice/keep").Stat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.OwnerKind != postbox.KindTLS || info.OwnerName != aliceName ||
		len(info.Access) != 1 || info.Access[0] != (postbox.AccessEntry{Pattern: "CN=bob,*", Read: true}) {
		t.Fatalf("after the restart: owner %v %q, access %+v", info.OwnerKind, info.OwnerName, info.Access)
	}
	m, err := bob.Mailbox("alice/keep").Receive(ctx, postbox.AutoAck())
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Body) != "kept" || m.Sender.Kind != postbox.KindTLS || m.Sender.Name != aliceName {
		t.Fatalf("after the restart: %q from %+v", m.Body, m.Sender)
	}
	if _, err := bob.Mailbox("alice/keep").Send(ctx, nil, postbox.NoWait()); !errors.Is(err, postbox.ErrPermission) {
		t.Fatalf("bob may only read: %v", err)
	}
	if err := bob.Mailbox("alice/keep").Destroy(ctx); !errors.Is(err, postbox.ErrPermission) {
		t.Fatalf("bob destroying alice's mailbox: %v", err)
	}
}

// TestDialURLForms: unix:// is a socket path; $POSTBOX_URL is used when
// no socket is named, and a named socket wins over it; a URL that is
// not one of the three forms is ErrInvalid.
func TestDialURLForms(t *testing.T) {
	testbroker.CheckGoroutines(t)
	w := startTLS(t, nil)
	ctx := tctx(t)
	t.Setenv(postbox.SocketEnv, "")
	c, err := postbox.Dial(ctx, postbox.WithURL("unix://"+w.b.Socket))
	if err != nil {
		t.Fatal(err)
	}
	if c.Identity().Kind != postbox.KindUnix {
		t.Fatalf("over unix:// the client is %+v", c.Identity())
	}
	c.Close()
	t.Setenv(postbox.URLEnv, w.url)
	t.Setenv(postbox.TLSCertEnv, w.bob.CertFile)
	t.Setenv(postbox.TLSKeyEnv, w.bob.KeyFile)
	t.Setenv(postbox.TLSCAEnv, w.ca.CertFile)
	c, err = postbox.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if id := c.Identity(); id.Kind != postbox.KindTLS || id.Name != "CN=bob,O=Example" {
		t.Fatalf("with $POSTBOX_URL the client is %+v", id)
	}
	c.Close()
	c, err = postbox.Dial(ctx, postbox.WithSocket(w.b.Socket))
	if err != nil {
		t.Fatal(err)
	}
	if c.Identity().Kind != postbox.KindUnix {
		t.Fatalf("WithSocket beside $POSTBOX_URL: %+v", c.Identity())
	}
	c.Close()
	for _, bad := range []string{"http://x:1", "tls://nohost", "unix://relative", "tcp://h:1/path"} {
		if c, err := postbox.Dial(ctx, postbox.WithURL(bad)); !errors.Is(err, postbox.ErrInvalid) {
			if c != nil {
				c.Close()
			}
			t.Errorf("WithURL(%q): %v, want ErrInvalid", bad, err)
		}
	}
}

// TestTLSCallOutcomeNamesARemoteReceiver: a CALL cancelled while a TLS
// server holds its request names that server, certificate name and all.
func TestTLSCallOutcomeNamesARemoteReceiver(t *testing.T) {
	testbroker.CheckGoroutines(t)
	w := startTLS(t, nil)
	ctx := tctx(t)
	caller, server := w.dial(t, w.alice), w.dial(t, w.bob)
	svc, err := server.Create(ctx, "svc", postbox.Service(), postbox.Mode(0o600))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.SetAccess(ctx, aliceName, false, true); err != nil {
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
	if m.Sender.Name != aliceName {
		t.Fatalf("request from %+v", m.Sender)
	}
	ccancel()
	err = <-errc
	var ce *postbox.CallError
	if !errors.As(err, &ce) || ce.Outcome != postbox.OutcomeInProgress || ce.Receiver != server.Identity() || ce.Receiver.Name != "CN=bob,O=Example" {
		t.Fatalf("cancelled call: %v (%+v), want in progress at %+v", err, ce, server.Identity())
	}
	if err := m.Ack(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestTLSHandshakeSlotsAreCountedPerRemoteIP: connections from one host
// that never finish their TLS handshake take that host's handshake slots
// only; a client from another address still gets in.
func TestTLSHandshakeSlotsAreCountedPerRemoteIP(t *testing.T) {
	testbroker.CheckGoroutines(t)
	cfg := broker.DefaultConfig()
	cfg.MaxHandshakingPerUID, cfg.HandshakeTimeout = 2, 5*time.Second
	w := startTLS(t, &cfg)
	ctx := tctx(t)
	addr := strings.TrimPrefix(w.url, "tls://")
	dialFrom := func(ip string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return d.DialContext(ctx, "tcp", addr)
	}
	for range 2 { // silent: they hold 127.0.0.1's two slots
		nc, err := dialFrom("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
	}
	// The broker counts at accept; give it a moment to have accepted both.
	deadline := time.Now().Add(testbroker.HangGuard)
	for {
		nc, err := dialFrom("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, rerr := nc.Read(make([]byte, 1))
		nc.Close()
		if errors.Is(rerr, io.EOF) {
			break // closed at accept: 127.0.0.1 is at its bound
		}
		if time.Now().After(deadline) {
			t.Fatalf("a third silent connection from 127.0.0.1 was not closed at accept: %v", rerr)
		}
	}
	nc, err := dialFrom("127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	cfgTLS := testcerts.ClientConfig(w.alice, w.ca)
	cfgTLS.ServerName = "127.0.0.1"
	c, err := postbox.NewClient(ctx, tls.Client(nc, cfgTLS))
	if err != nil {
		t.Fatalf("a client from 127.0.0.2 while 127.0.0.1 holds its slots: %v", err)
	}
	defer c.Close()
	if c.Identity().Name != aliceName {
		t.Fatalf("client is %+v", c.Identity())
	}
}

// TestInfoNamesTLSListenersApart: INFO lists the Unix socket, a plain
// TCP listener as "tcp" and the TLS one as "tls", each with its address,
// and a TLS client reads the same list.
func TestInfoNamesTLSListenersApart(t *testing.T) {
	w := startTLS(t, nil)
	tl, err := broker.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go w.b.Serve(tl)
	want := map[string]string{"unix": w.b.Socket, "tcp": tl.Addr().String(), "tls": strings.TrimPrefix(w.url, "tls://")}
	for _, c := range []*postbox.Client{w.b.Dial(t), w.dial(t, w.alice)} {
		in, err := c.Info(tctx(t))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, l := range in.Listeners {
			got[l.Network] = l.Address
		}
		if len(in.Listeners) != 3 || !maps.Equal(got, want) {
			t.Fatalf("listeners %+v, want %v", in.Listeners, want)
		}
		if in.Listeners[0].Network != "unix" {
			t.Errorf("first listener %+v, want the Unix socket", in.Listeners[0])
		}
	}
}
