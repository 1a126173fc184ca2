package broker

import (
	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// Names resolve to targets.
//
// A request names a mailbox or an inbox; the broker resolves the name to
// a target and the operation handlers (send.go, receive.go, admin.go)
// call the target's methods: they check the address, ask the Authorizer
// about target.object(), and leave the rest to the target. The local
// queue, *box (a mailbox core under its lock, durable or not), is the
// only kind today; a topic or a remote cluster's mailbox will be another
// type behind the same interface, in its own file or package, not new
// cases in every handler.
//
// Leases are not behind the interface: a lease belongs to the local queue
// that handed it out (conn.leases maps each to its box), and ACK and NACK
// settle them there (box.settle).
type target interface {
	// object is the target as the Authorizer sees it.
	object() Object
	// send admits a SEND's messages, or a CHANNEL's offer, and answers
	// the request, now or when it completes. The request is authorized.
	send(r *sendRequest)
	// receive starts a RECV or CONSUME and answers it (the deliveries
	// and the final reply), now or later. The request is authorized.
	receive(r *receiveRequest)
	// dropped counts n best-effort messages the broker dropped on their
	// way to the target (besteffort.go).
	dropped(n int)
	// info reports the target's state (STAT, LIST).
	info() wire.MailboxInfo
	// destroy removes a named target (DESTROY, authorized), answering it.
	destroy(c *conn, hd wire.Header)
	// chmod changes a named target's mode (CHMOD, authorized), answering it.
	chmod(c *conn, hd wire.Header, mode uint32)
	// setAccess sets or removes an access entry of a named target (ACL,
	// authorized), answering it.
	setAccess(c *conn, hd wire.Header, action uint8, pattern string, perms uint8)
}

var _ target = (*box)(nil)

// sendRequest is a SEND (or CHANNEL) on its way to a target.
type sendRequest struct {
	c       *conn
	hd      wire.Header
	msgs    []*mailbox.Message // stamped with the sender and the time
	size    int64              // the messages' total size
	timeout int64
	now     int64     // when the frame was read
	off     *offer    // a CHANNEL's offer, else nil
	ids     *[]uint64 // the reader's scratch for the ids
	// bestEffort: a SEND with BEST_EFFORT (besteffort.go): no reply,
	// no wait, what is not admitted at once is dropped and counted.
	bestEffort bool
	// parked is set by the target when the request was left waiting in
	// the mailbox (its messages are then the core's: files.go).
	parked bool
}

// receiveRequest is a RECV or CONSUME on its way to a target.
type receiveRequest struct {
	c        *conn
	hd       wire.Header
	typ      int64
	timeout  int64 // -1 for a consumer
	consumer bool
	credit   uint32
}

// resolve returns the target name names, or the status and text to
// refuse the request with: INVALID for a name or address that is not
// well-formed, NOT_FOUND for one naming nothing.
func (b *Broker) resolve(name []byte) (target, wire.Code, string) {
	if !wire.ValidAddress(name) {
		return nil, wire.CodeInvalid, badName
	}
	bx := b.lookup(name)
	if bx == nil {
		return b.rm.resolve(name) // a cluster mailbox, or NOT_FOUND (remote_box.go)
	}
	return bx, wire.OK, ""
}
