package broker_test

import (
	"crypto/tls"
	"errors"
	"testing"

	"github.com/postbox-ipc/postbox/broker"
)

func TestListenTCPOnlyOnLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0", "[::]:0"} {
		l, err := broker.ListenTCP(addr)
		if err == nil {
			l.Close()
		}
		if !errors.Is(err, broker.ErrInsecureListen) {
			t.Errorf("ListenTCP(%q): %v, want ErrInsecureListen", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		l, err := broker.ListenTCP(addr)
		if err != nil {
			t.Errorf("ListenTCP(%q): %v", addr, err)
			continue
		}
		l.Close()
	}
}

func TestListenTLSRequiresVerifiedClientCertificates(t *testing.T) {
	for name, cfg := range map[string]*tls.Config{
		"nil":                  nil,
		"no client auth":       {ClientCAs: nil},
		"client cert if given": {ClientAuth: tls.VerifyClientCertIfGiven},
		"no client CAs":        {ClientAuth: tls.RequireAndVerifyClientCert},
	} {
		if l, err := broker.ListenTLS("127.0.0.1:0", cfg); !errors.Is(err, broker.ErrConfig) {
			if l != nil {
				l.Close()
			}
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
	if _, err := broker.ServerTLSConfig("", "", ""); !errors.Is(err, broker.ErrConfig) {
		t.Errorf("ServerTLSConfig without files: %v", err)
	}
}

// The default authorizer's rules for TLS principals, Unix peers and
// mailboxes whose owner has no uid.
func TestModeAuthorizerRemotePrincipals(t *testing.T) {
	alice := broker.Principal{Kind: broker.KindTLS, Subject: "CN=alice", URI: "spiffe://example.org/alice"}
	bob := broker.Principal{Kind: broker.KindTLS, Subject: "CN=bob,O=Example"}
	rootGroup := broker.Principal{Kind: broker.KindUnix, UID: 1000, GID: 0}
	anon := broker.Principal{Kind: broker.KindNone}
	owned := broker.Object{Name: "a", OwnerKind: broker.KindTLS, OwnerName: "spiffe://example.org/alice",
		Mode: 0o670, Access: []broker.AccessEntry{{Pattern: "CN=bob,*", Perms: broker.PermRead}}}
	unixOwned := broker.Object{Name: "u", OwnerKind: broker.KindUnix, OwnerUID: 1000, OwnerGID: 1000, Mode: 0o606}
	az := broker.ModeAuthorizer{}
	for _, tc := range []struct {
		who  string
		p    broker.Principal
		obj  broker.Object
		act  broker.Action
		want bool
	}{
		{"owner sends", alice, owned, broker.ActSend, true},
		{"owner receives", alice, owned, broker.ActReceive, true},
		{"owner sets entries", alice, owned, broker.ActACL, true},
		{"owner destroys", alice, owned, broker.ActDestroy, true},
		{"bob's entry reads", bob, owned, broker.ActReceive, true},
		{"bob's entry does not write", bob, owned, broker.ActSend, false},
		{"bob may not set entries", bob, owned, broker.ActACL, false},
		{"gid 0 is not the group of a remote-owned mailbox", rootGroup, owned, broker.ActSend, false},
		{"the other triple for local users", rootGroup, owned, broker.ActReceive, false},
		{"mode's other bits are not for TLS", bob, unixOwned, broker.ActReceive, false},
		{"kind none is other", anon, unixOwned, broker.ActReceive, true},
		{"kind none owns nothing", anon, broker.Object{OwnerKind: broker.KindNone, Mode: 0o700}, broker.ActSend, false},
		{"unix owner sets entries", broker.Principal{Kind: broker.KindUnix, UID: 1000}, unixOwned, broker.ActACL, true},
	} {
		err := az.Authorize(tc.p, tc.obj, tc.act)
		if (err == nil) != tc.want {
			t.Errorf("%s: %v, want allowed %v", tc.who, err, tc.want)
		}
	}
}
