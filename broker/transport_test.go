package broker_test

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/wire"
)

// serveTCP serves b on a TCP loopback listener and returns its address.
func serveTCP(t *testing.T, b *testBroker, creds broker.Credentials) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.ServeWith(l, creds) }()
	b.alsoServed = append(b.alsoServed, done) // stop waits for it
	return l.Addr().String()
}

func dialTCP(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rc := newRaw(t, nc)
	rc.handshake(t, wire.CapDescriptors)
	return rc
}

func TestV2ServeOverTCPHasNoPrincipalAndNoDescriptors(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialTCP(t, serveTCP(t, b, nil))
	h := rc.hello
	if h.Principal != (wire.Identity{Kind: wire.PrincipalNone, Endpoint: h.Endpoint}) {
		t.Fatalf("principal over TCP %+v, want kind none", h.Principal)
	}
	if h.Caps != 0 {
		t.Fatalf("caps %#x over TCP, want none (no descriptor passing)", h.Caps)
	}
	if h.Endpoint>>32 != b.Epoch() {
		t.Fatalf("endpoint %#x", h.Endpoint)
	}
	rc.ping(t)
	hd, p := rc.roundTrip(t, wire.OpChannel, 0, (&wire.Channel{Target: []byte("x"), Type: 1}).Append(nil))
	must(t, "CHANNEL over TCP", hd, p, wire.CodeInvalid)
	hd, p = rc.roundTrip(t, wire.OpAttach, 0, (&wire.Attach{}).Append(nil))
	must(t, "ATTACH over TCP", hd, p, wire.CodeInvalid)

	// A message sent over TCP says so on delivery, and crosses to a Unix
	// client: one broker, two transports.
	local := dialRaw(t, b.socket)
	local.create(t, wire.Create{Name: []byte("shared"), Capacity: -1, Mode: 0o666})
	rc.sendOK(t, "shared", "over tcp")
	d := local.recv(t, "shared", wire.FlagAutoAck)
	if d.Sender != (wire.Identity{Kind: wire.PrincipalNone, Endpoint: h.Endpoint}) || string(d.Body) != "over tcp" {
		t.Fatalf("delivery from TCP: sender %+v body %q", d.Sender, d.Body)
	}
	local.sendOK(t, "shared", "over unix")
	if d := rc.recv(t, "shared", wire.FlagAutoAck); d.Sender.Kind != wire.PrincipalUnix {
		t.Fatalf("delivery over TCP from a Unix sender: %+v", d.Sender)
	}
}

// A principal of kind none is "other" to the default authorizer, with no
// root bypass even though its uid field is 0.
func TestV2DefaultAuthorizerTreatsKindNoneAsOther(t *testing.T) {
	b := startBroker(t, nil)
	remote := dialTCP(t, serveTCP(t, b, nil))
	local := dialRaw(t, b.socket)
	local.create(t, wire.Create{Name: []byte("private"), Capacity: -1, Mode: 0o660})
	local.create(t, wire.Create{Name: []byte("dropbox"), Capacity: -1, Mode: 0o602})
	hd, p := remote.send(t, 0, wire.Send{Target: []byte("private"), Msgs: []wire.SendMsg{{Type: 1}}})
	must(t, "SEND to 0660 from kind none", hd, p, wire.CodePermission)
	remote.sendOK(t, "dropbox", "ok")
	hd, p = remote.roundTrip(t, wire.OpRecv, 0, (&wire.Recv{Name: []byte("dropbox")}).Append(nil))
	must(t, "RECV from 0602 from kind none", hd, p, wire.CodePermission)
	hd, p = remote.roundTrip(t, wire.OpDestroy, 0, (&wire.Name{Name: []byte("dropbox")}).Append(nil))
	must(t, "DESTROY from kind none", hd, p, wire.CodePermission)
	// Its own inbox is its own.
	inbox := wire.AppendInbox(nil, remote.hello.Endpoint)
	local.sendOK(t, string(inbox), "hi")
	if d := remote.recv(t, string(inbox), wire.FlagAutoAck); string(d.Body) != "hi" {
		t.Fatalf("inbox: %q", d.Body)
	}
}

// tagCredentials names every TCP peer "tls" with a fixed subject, as a
// TLS listener's credential function will.
func tagCredentials(nc net.Conn) (broker.Principal, error) {
	return broker.Principal{Kind: broker.KindTLS, Subject: "CN=test"}, nil
}

// prefixAuthorizer allows TLS principals only under "tls/", and defers to
// the mode bits otherwise.
type prefixAuthorizer struct{ asked chan broker.Action }

var errNotYours = errors.New("not under tls/")

func (a prefixAuthorizer) Authorize(p broker.Principal, obj broker.Object, act broker.Action) error {
	select {
	case a.asked <- act:
	default:
	}
	if p.Kind == broker.KindTLS {
		if act == broker.ActList || act == broker.ActCreate && strings.HasPrefix(obj.Name, "tls/") ||
			strings.HasPrefix(obj.Name, "tls/") || obj.Inbox != 0 && obj.Inbox == p.Endpoint {
			return nil
		}
		return errNotYours
	}
	return broker.ModeAuthorizer{}.Authorize(p, obj, act)
}

func TestV2ConfigAuthorizerAndCredentialsReplaceTheDefaults(t *testing.T) {
	az := prefixAuthorizer{asked: make(chan broker.Action, 64)}
	b := startBroker(t, func(c *broker.Config) { c.Authorizer = az })
	rc := dialTCP(t, serveTCP(t, b, tagCredentials))
	if rc.hello.Principal.Kind != wire.PrincipalTLS {
		t.Fatalf("principal %+v, want the credential function's kind", rc.hello.Principal)
	}
	rc.create(t, wire.Create{Name: []byte("tls/jobs"), Capacity: -1, Mode: 0o600})
	hd, p := rc.roundTrip(t, wire.OpCreate, 0, (&wire.Create{Name: []byte("other"), Mode: 0o666}).Append(nil))
	must(t, "CREATE outside tls/", hd, p, wire.CodePermission)
	rc.sendOK(t, "tls/jobs", "x")
	if d := rc.recv(t, "tls/jobs", wire.FlagAutoAck); d.Sender.Kind != wire.PrincipalTLS {
		t.Fatalf("sender %+v", d.Sender)
	}
	local := dialRaw(t, b.socket)
	local.create(t, wire.Create{Name: []byte("open"), Capacity: -1, Mode: 0o666})
	hd, p = rc.send(t, 0, wire.Send{Target: []byte("open"), Msgs: []wire.SendMsg{{Type: 1}}})
	must(t, "SEND outside tls/", hd, p, wire.CodePermission)
	local.sendOK(t, "open", "unix is mode bits")
	if len(az.asked) == 0 {
		t.Fatal("the configured Authorizer was never asked")
	}
}
