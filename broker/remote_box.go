package broker

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// remotes is the broker's side of its RemoteBackend: the definitions it
// has looked up, and each connection's leases and receivers on cluster
// mailboxes. nil without Config.Remote; its methods then do nothing.
type remotes struct {
	b    *Broker
	be   RemoteBackend
	host string

	mu    sync.Mutex            // guards specs and conns
	specs map[string]*remoteBox // definitions looked up, by name
	conns map[*conn]*remoteConn // per connection: leases, receivers
}

// remoteConn is what one connection holds on cluster mailboxes.
type remoteConn struct {
	leases map[uint64]RemoteLease
	recvs  map[uint64]*remoteRecv // by request id
}

// remoteKeepAlive is how often held leases are kept alive (InProgress)
// by default: well under the backend's redelivery time (package
// cluster: 30 s).
const remoteKeepAlive = 10 * time.Second

func newRemotes(b *Broker) *remotes {
	if b.cfg.Remote == nil {
		return nil
	}
	host := b.cfg.HostID
	if host == "" {
		host, _ = os.Hostname()
	}
	rm := &remotes{b: b, be: b.cfg.Remote, host: host, specs: make(map[string]*remoteBox), conns: make(map[*conn]*remoteConn)}
	b.wg.Add(1)
	go rm.keepAlive()
	return rm
}

// keepAlive sends InProgress for every held lease until the broker stops.
func (rm *remotes) keepAlive() {
	defer rm.b.wg.Done()
	every := rm.b.cfg.RemoteKeepAlive
	if every <= 0 {
		every = remoteKeepAlive
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-rm.b.done:
			return
		case <-t.C:
		}
		rm.mu.Lock()
		var ls []RemoteLease
		for _, rc := range rm.conns {
			for _, l := range rc.leases {
				ls = append(ls, l)
			}
		}
		rm.mu.Unlock()
		for _, l := range ls {
			l.InProgress()
		}
	}
}

// resolve finds a cluster mailbox by name (not an inbox).
func (rm *remotes) resolve(name []byte) (target, wire.Code, string) {
	if rm == nil || wire.IsInbox(name) {
		return nil, wire.CodeNotFound, "no such mailbox"
	}
	rm.mu.Lock()
	rb := rm.specs[string(name)]
	rm.mu.Unlock()
	if rb != nil && time.Since(rb.at) < remoteSpecAge {
		return rb, wire.OK, ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
	defer cancel()
	spec, err := rm.be.Lookup(ctx, string(name))
	if err != nil {
		if code := remoteCode(err); code != wire.CodeNotFound && rb != nil {
			return rb, wire.OK, "" // the definition known, the cluster not answering: the operation will say
		} else if code != wire.CodeNotFound {
			return nil, code, err.Error()
		}
		if rb != nil {
			rm.forget(string(name))
		}
		return nil, wire.CodeNotFound, "no such mailbox"
	}
	return rm.remember(spec), wire.OK, ""
}

func (rm *remotes) remember(spec RemoteSpec) *remoteBox {
	rb := &remoteBox{rm: rm, spec: spec, at: time.Now()}
	rm.mu.Lock()
	rm.specs[spec.Name] = rb
	rm.mu.Unlock()
	return rb
}

// forget drops a definition found to be gone.
func (rm *remotes) forget(name string) {
	rm.mu.Lock()
	delete(rm.specs, name)
	rm.mu.Unlock()
}

// check forgets rb when err says its mailbox is gone.
func (rb *remoteBox) check(err error) {
	if remoteCode(err) == wire.CodeNotFound {
		rb.rm.forget(rb.spec.Name)
	}
}

// create is CREATE with the CLUSTER option. It answers the request.
func (h *handler) createRemote(hd wire.Header, m *wire.Create) {
	c, b := h.c, h.c.b
	fail := func(code wire.Code, why string) {
		c.replyErr(hd, code, fmt.Sprintf("create %q: %s", m.Name, why))
	}
	switch {
	case b.rm == nil:
		fail(wire.CodeInvalid, ErrNoCluster.Error())
		return
	case !wire.ValidName(m.Name):
		fail(wire.CodeInvalid, badName)
		return
	case m.Capacity < -1:
		fail(wire.CodeInvalid, "capacity must be -1 (unbounded) or positive")
		return
	case m.Mode > 0o777:
		fail(wire.CodeInvalid, fmt.Sprintf("mode %#o has bits outside 0777", m.Mode))
		return
	case m.MaxBytes < 0 || m.TTL < 0:
		fail(wire.CodeInvalid, "limits must not be negative")
		return
	case b.lookup(m.Name) != nil:
		fail(wire.CodeExists, "a local mailbox with that name exists")
		return
	}
	if err := clusterCreateRule(m); err != nil {
		fail(wire.CodeInvalid, err.Error())
		return
	}
	spec := RemoteSpec{Name: string(m.Name), Capacity: m.Capacity, MaxBytes: m.MaxBytes, TTL: time.Duration(m.TTL),
		Mode: m.Mode, Replicas: int(m.Replicas), OwnerKind: PrincipalKind(c.ident.Kind), Created: time.Now()}
	if spec.OwnerKind == KindUnix {
		spec.OwnerUID, spec.OwnerGID = c.ident.UID, c.ident.GID
	} else {
		spec.OwnerUID, spec.OwnerGID, spec.OwnerName = wire.NoOwnerID, wire.NoOwnerID, c.ident.Name
	}
	rb := &remoteBox{rm: b.rm, spec: spec}
	if b.auth.Authorize(c.who, rb.object(), ActCreate) != nil {
		fail(wire.CodePermission, "permission denied")
		return
	}
	b.rm.async(func(ctx context.Context) {
		if err := b.rm.be.Create(ctx, spec); err != nil {
			fail(remoteCode(err), err.Error())
			return
		}
		b.rm.remember(spec)
		b.log.Info("cluster mailbox created", "mailbox", spec.Name, "replicas", spec.Replicas, "uid", c.ident.UID, "pid", c.ident.PID)
		c.replyEmpty(hd)
	})
}

// async runs f off the connection's reader, with the backend timeout.
func (rm *remotes) async(f func(ctx context.Context)) {
	rm.b.wg.Add(1)
	go func() {
		defer rm.b.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
		defer cancel()
		f(ctx)
	}()
}

// list returns the cluster mailboxes whose names sort after cursor and
// that no local mailbox shadows, sorted by name. Without a cluster, or
// when it cannot be reached, none (a LIST still lists local mailboxes).
func (rm *remotes) list(after string) []wire.MailboxInfo {
	if rm == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
	defer cancel()
	ris, err := rm.be.List(ctx)
	if err != nil {
		rm.b.log.Warn("list: cluster mailboxes left out", "err", err)
		return nil
	}
	infos := make([]wire.MailboxInfo, 0, len(ris))
	for i := range ris {
		if ris[i].Name > after && rm.b.lookup([]byte(ris[i].Name)) == nil {
			infos = append(infos, remoteInfo(&ris[i]))
		}
	}
	slices.SortFunc(infos, func(a, b wire.MailboxInfo) int { return strings.Compare(string(a.Name), string(b.Name)) })
	return infos
}

// remoteBox is a cluster mailbox as a target: its definition, as looked
// up at at. A definition older than remoteSpecAge is looked up again (a
// mailbox destroyed and made again through another broker).
type remoteBox struct {
	rm   *remotes
	spec RemoteSpec
	at   time.Time
}

const remoteSpecAge = 30 * time.Second

var _ target = (*remoteBox)(nil)

func (rb *remoteBox) object() Object {
	s := &rb.spec
	obj := Object{Name: s.Name, OwnerKind: s.OwnerKind, OwnerName: s.OwnerName, Mode: s.Mode}
	if s.OwnerKind == KindUnix {
		obj.OwnerUID, obj.OwnerGID = s.OwnerUID, s.OwnerGID
	}
	return obj
}

func (rb *remoteBox) dropped(int) {}

// send is target.send for a cluster mailbox: refuse what cannot hold,
// stamp the messages, and answer once the backend stored them all.
func (rb *remoteBox) send(sr *sendRequest) {
	c, hd := sr.c, sr.hd
	refuse := func(err error) {
		if !sr.bestEffort {
			c.sendErr(hd, []byte(rb.spec.Name), sr.off, 0, remoteCode(err), err.Error())
		}
	}
	switch {
	case sr.off != nil:
		refuse(ErrClusterDescriptors)
		return
	case hd.Op == wire.OpCall, hd.Flags&(wire.FlagReceipt|wire.FlagReply) != 0:
		refuse(ErrClusterReceipt)
		return
	}
	msgs := make([]RemoteMessage, len(sr.msgs))
	for i, m := range sr.msgs {
		switch {
		case m.Hold != nil:
			refuse(ErrClusterDescriptors)
			return
		case m.Urgent:
			refuse(ErrClusterUrgent)
			return
		case m.Priority != 0:
			refuse(ErrClusterPriority)
			return
		}
		msgs[i] = RemoteMessage{ID: msgID(c.session, hd.Request, i), Type: m.Type, Sender: m.Sender,
			Host: rb.rm.host, SentUnixNano: m.SentUnixNano, Headers: m.Headers, Body: m.Body}
	}
	name, bestEffort := []byte(rb.spec.Name), sr.bestEffort // sr is the reader's, reused
	rb.rm.be.Send(rb.spec.Name, msgs, func(ids []uint64, err error) {
		switch {
		case bestEffort:
		case err != nil:
			rb.check(err)
			c.sendErr(hd, name, nil, len(ids), remoteCode(err), err.Error())
		default:
			c.sendReply(hd, ids, false, mailbox.Identity{})
		}
	})
}

// msgID is a message's duplicate-removal id: the client's session, the
// SEND's request id and the message's place in it. A client that sends
// the same request again (same session and request id, on this broker
// or another, after a reconnect) gets it stored once.
func msgID(s wire.Session, req uint64, i int) string {
	b := make([]byte, 0, 56)
	b = hex.AppendEncode(b, s[:])
	b = append(b, '-')
	b = strconv.AppendUint(b, req, 10)
	b = append(b, '-')
	return string(strconv.AppendInt(b, int64(i), 10))
}

func (rb *remoteBox) info() wire.MailboxInfo {
	ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
	defer cancel()
	ri, err := rb.rm.be.Info(ctx, rb.spec.Name)
	if err != nil {
		rb.check(err)
		ri = RemoteInfo{RemoteSpec: rb.spec, StreamState: "unknown: " + err.Error(), Replicas: rb.spec.Replicas}
	}
	return remoteInfo(&ri)
}

// remoteInfo is ri as STAT and LIST report it.
func remoteInfo(ri *RemoteInfo) wire.MailboxInfo {
	info := wire.MailboxInfo{Name: []byte(ri.Name), UID: ri.OwnerUID, GID: ri.OwnerGID, Mode: ri.Mode,
		Capacity: ri.Capacity, Depth: ri.Depth, Bytes: ri.Bytes, Consumers: ri.Consumers,
		InFlight: uint32(min(ri.InFlight, 1<<32-1)), Redelivered: ri.Redelivered, CreatedUnix: ri.Created.UnixNano(),
		OldestUnix: ri.OldestUnix, MaxBytes: ri.MaxBytes, TTL: int64(ri.TTL)}
	info.Ext = wire.AppendClusterInfo(nil, wire.ClusterInfo{Cluster: ri.Cluster, Replicas: uint8(ri.Replicas),
		StreamState: ri.StreamState, Stream: ri.Stream})
	return info
}

func (rb *remoteBox) destroy(c *conn, hd wire.Header) {
	rb.rm.async(func(ctx context.Context) {
		err := rb.rm.be.Destroy(ctx, rb.spec.Name)
		rb.rm.forget(rb.spec.Name)
		if err != nil {
			c.replyErr(hd, remoteCode(err), fmt.Sprintf("destroy %q: %v", rb.spec.Name, err))
			return
		}
		c.b.log.Info("cluster mailbox destroyed", "mailbox", rb.spec.Name, "uid", c.ident.UID, "pid", c.ident.PID)
		c.replyEmpty(hd)
	})
}

func (rb *remoteBox) chmod(c *conn, hd wire.Header, _ uint32) {
	c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("chmod %q: %v", rb.spec.Name, ErrClusterChange))
}

func (rb *remoteBox) setAccess(c *conn, hd wire.Header, _ uint8, _ string, _ uint8) {
	c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("acl %q: %v", rb.spec.Name, ErrClusterChange))
}
