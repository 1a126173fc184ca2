package broker

import (
	"errors"
	"net"
	"os"

	"github.com/postbox-ipc/postbox/wire"
)

// Who a connection is, and what it may do.
//
// Each listener has a credential function (Credentials) that says who is
// at the other end of a connection it accepted: a Principal. The broker
// asks it once, at HELLO, and stamps the principal on everything the
// connection sends. Every operation on a mailbox is then put to the
// broker's Authorizer (Config.Authorizer; ModeAuthorizer by default) as
// (principal, object, action). The Authorizer is called holding no
// mailbox lock, with a snapshot of the object; a CHMOD racing with a
// request is ordered before or after it.

// PrincipalKind says how a principal was established. The values are
// the protocol's (wire.PrincipalNone, PrincipalUnix, PrincipalTLS).
type PrincipalKind uint8

const (
	// KindNone: nothing is known about the peer (a TCP connection
	// without TLS). UID, GID and PID are meaningless.
	KindNone PrincipalKind = PrincipalKind(wire.PrincipalNone)
	// KindUnix: the kernel's peer credentials of a Unix socket.
	KindUnix PrincipalKind = PrincipalKind(wire.PrincipalUnix)
	// KindTLS: a verified client certificate (reserved: Subject).
	KindTLS PrincipalKind = PrincipalKind(wire.PrincipalTLS)
)

// Principal is who is at the other end of a connection.
type Principal struct {
	Kind PrincipalKind
	// UID, GID and PID are the peer's, for KindUnix (SO_PEERCRED).
	UID, GID uint32
	PID      int32
	// PIDFD is a pidfd of the peer process (SO_PEERPIDFD), or nil. The
	// broker owns it once the credential function returns: it ends the
	// connection when that process exits, and closes it. An Authorizer
	// may look at it but must not close it.
	PIDFD *os.File
	// Subject is a TLS client certificate's subject (KindTLS; reserved).
	Subject string
	// Endpoint is the connection's endpoint id, set by the broker.
	Endpoint uint64
}

// Credentials says who is at the other end of nc. An error refuses the
// connection (its HELLO is answered INTERNAL).
type Credentials func(nc net.Conn) (Principal, error)

// PeerCredentials is the default Credentials: the kernel's peer
// credentials for a Unix socket (with a pidfd where the kernel has
// SO_PEERPIDFD), KindNone for any other connection.
func PeerCredentials(nc net.Conn) (Principal, error) {
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		return Principal{Kind: KindNone}, nil
	}
	return peerCredentials(uc)
}

// Action is what a principal asks to do to an object.
type Action uint8

const (
	ActSend    Action = iota + 1 // SEND, CHANNEL; being a dead-letter mailbox's source (CREATE)
	ActReceive                   // RECV, CONSUME
	ActDestroy                   // DESTROY
	ActChmod                     // CHMOD
	ActCreate                    // CREATE (the object is the mailbox to be)
	ActStat                      // STAT
	ActList                      // LIST (the object is empty)
)

var actionNames = [...]string{ActSend: "send", ActReceive: "receive", ActDestroy: "destroy",
	ActChmod: "chmod", ActCreate: "create", ActStat: "stat", ActList: "list"}

func (a Action) String() string {
	if int(a) < len(actionNames) && actionNames[a] != "" {
		return actionNames[a]
	}
	return "action?"
}

// Object is what an action applies to: a mailbox or an endpoint's inbox.
type Object struct {
	Name string
	// Inbox is the owning endpoint of an endpoint's inbox, else 0.
	Inbox uint64
	// Owner and Mode: a mailbox's creator and its permission bits.
	OwnerUID, OwnerGID uint32
	Mode               uint32
}

// Authorizer decides whether a principal may do an action on an object.
// A non-nil error denies it: the request fails with PERMISSION. It is
// called concurrently, holding no broker lock, and must not block for
// long: requests wait for it.
type Authorizer interface {
	Authorize(p Principal, obj Object, act Action) error
}

// ErrPermission is ModeAuthorizer's refusal.
var ErrPermission = errors.New("broker: permission denied")

// ModeAuthorizer is the default Authorizer: file-like mode bits.
//
//   - An inbox: anyone may send to it; only its endpoint may receive from
//     it; nobody may destroy or chmod it.
//   - A mailbox: the mode's owner, group or other triple applies (as for
//     a file: owner if the principal's uid is the owner, else group if
//     its gid is the group, else other); w allows send, r receive. Only
//     the owner may destroy or chmod it. Root (uid 0) may do anything.
//   - Principals that are not KindUnix have no uid: the other triple
//     applies to them, they own nothing and there is no root bypass.
//   - Anyone may create, stat and list.
type ModeAuthorizer struct{}

// Authorize implements Authorizer.
func (ModeAuthorizer) Authorize(p Principal, obj Object, act Action) error {
	switch act {
	case ActCreate, ActStat, ActList:
		return nil
	}
	unix := p.Kind == KindUnix
	if obj.Inbox != 0 {
		if act == ActSend || act == ActReceive && p.Endpoint == obj.Inbox {
			return nil
		}
		return ErrPermission
	}
	if unix && p.UID == 0 {
		return nil
	}
	switch act {
	case ActDestroy, ActChmod:
		if unix && p.UID == obj.OwnerUID {
			return nil
		}
		return ErrPermission
	}
	perm := uint32(permWrite)
	if act == ActReceive {
		perm = permRead
	}
	bits := obj.Mode
	switch {
	case unix && p.UID == obj.OwnerUID:
		bits = obj.Mode >> 6
	case unix && p.GID == obj.OwnerGID:
		bits = obj.Mode >> 3
	}
	if bits&perm == perm {
		return nil
	}
	return ErrPermission
}

// Permission bits, as for files.
const (
	permRead  = 4 // may receive
	permWrite = 2 // may send
)
