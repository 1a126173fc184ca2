package broker

import (
	"crypto/tls"
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
	// KindTLS: a verified client certificate: Subject and URI (tls.go).
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
	// Subject is a TLS client certificate's subject DN (RFC 2253 form)
	// and URI its first URI SAN (a spiffe:// one if any), for KindTLS;
	// Name says which one names the principal.
	Subject, URI string
	// Endpoint is the connection's endpoint id, set by the broker.
	Endpoint uint64
}

// Name is a TLS principal's name: its URI SAN if it has one, else its
// subject; "" for other kinds. It is what access entries match, what
// owns the mailboxes the principal creates, and what is stamped on its
// messages (wire.TagPrincipalName).
func (p Principal) Name() string {
	if p.Kind != KindTLS {
		return ""
	}
	if p.URI != "" {
		return p.URI
	}
	return p.Subject
}

// Credentials says who is at the other end of nc. An error refuses the
// connection (its HELLO is answered INTERNAL).
type Credentials func(nc net.Conn) (Principal, error)

// PeerCredentials is the default Credentials: the kernel's peer
// credentials for a Unix socket (with a pidfd where the kernel has
// SO_PEERPIDFD), the verified client certificate of a *tls.Conn
// (KindTLS, tls.go), KindNone for any other connection.
func PeerCredentials(nc net.Conn) (Principal, error) {
	switch c := nc.(type) {
	case *net.UnixConn:
		return peerCredentials(c)
	case *tls.Conn:
		return tlsCredentials(c)
	}
	return Principal{Kind: KindNone}, nil
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
	ActACL                       // ACL: set or remove access entries
)

// ActWithdraw: WITHDRAW anybody's messages, not only one's own (withdraw.go).
const ActWithdraw = ActACL + 1

var actionNames = [...]string{ActSend: "send", ActReceive: "receive", ActDestroy: "destroy",
	ActChmod: "chmod", ActCreate: "create", ActStat: "stat", ActList: "list", ActACL: "acl",
	ActWithdraw: "withdraw"}

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
	// OwnerKind is the kind of the mailbox's creator: OwnerUID and
	// OwnerGID are its uid and gid for KindUnix (0 otherwise), OwnerName
	// its name for KindTLS. Mode is the mailbox's permission bits.
	OwnerKind          PrincipalKind
	OwnerUID, OwnerGID uint32
	OwnerName          string
	Mode               uint32
	// Access is the mailbox's access entries for TLS principals (ACL).
	// The slice is shared: an Authorizer must not change it.
	Access []AccessEntry
}

// AccessEntry grants TLS principals whose name matches Pattern
// (path.Match syntax, or an exact name) the permission bits Perms
// (PermRead, PermWrite: the mode's r and w).
type AccessEntry struct {
	Pattern string
	Perms   uint8
}

// Access permission bits.
const (
	PermRead  = wire.PermRead  // receive (RECV, CONSUME, BROWSE)
	PermWrite = wire.PermWrite // send (SEND, CALL, CHANNEL)
)

// accessOf is what the entries that match name grant together.
func accessOf(entries []AccessEntry, name string) uint32 {
	var perms uint8
	for _, e := range entries {
		if e.Pattern == name || wire.MatchPattern(e.Pattern, name) {
			perms |= e.Perms
		}
	}
	return uint32(perms)
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
//   - A KindTLS principal owns the mailboxes it created (their
//     OwnerName is its Name): the owner triple applies to it there, and
//     it may destroy, chmod and set access entries. On any other
//     mailbox its access entries decide: the entries whose pattern
//     matches its name grant their perms, and none matching grants
//     nothing (the mode's other triple is for local users only).
//   - KindNone principals (plain TCP) have no uid: the other triple
//     applies to them, they own nothing and there is no root bypass.
//   - A mailbox whose owner is not KindUnix has no owning uid or gid:
//     for Unix principals only the other triple applies (and root).
//   - Only the owner may set access entries (ActACL).
//   - Only the owner (and root, and an inbox's endpoint) may withdraw
//     anybody's messages (ActWithdraw); everyone may withdraw their own.
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
		if act == ActSend || (act == ActReceive || act == ActWithdraw) && p.Endpoint == obj.Inbox {
			return nil
		}
		return ErrPermission
	}
	if unix && p.UID == 0 {
		return nil
	}
	unixOwned := obj.OwnerKind == KindUnix
	owner := unix && unixOwned && p.UID == obj.OwnerUID ||
		p.Kind == KindTLS && obj.OwnerKind == KindTLS && p.Name() != "" && p.Name() == obj.OwnerName
	switch act {
	case ActDestroy, ActChmod, ActACL, ActWithdraw:
		if owner {
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
	case owner:
		bits = obj.Mode >> 6
	case unix && unixOwned && p.GID == obj.OwnerGID:
		bits = obj.Mode >> 3
	case p.Kind == KindTLS:
		bits = accessOf(obj.Access, p.Name())
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
