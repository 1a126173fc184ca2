package broker

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/topic"
	"github.com/postbox-ipc/postbox/wire"
)

// Bindings (BIND) route publications into mailboxes, and what survives a
// restart (bindings of durable mailboxes, and claims).
//
// A binding is an engine subscription whose Owner is the binding: the
// engine matches it like any other; each publication it is handed goes
// into the mailbox after pubsub.mu is released, exactly as a best-effort
// SEND from the publisher would (admitted at once or dropped and counted
// in the mailbox's DROPPED; durably recorded in a durable mailbox), and
// is credited back at once, so a binding never holds a publisher.
//
// The bindings of durable mailboxes and every claim are kept in
// pubsubFile in the data directory, rewritten whole (a temporary file,
// fsync, rename, fsync of the directory) on every change, and read back
// when the broker opens: the mailboxes are recovered first, and a
// binding whose mailbox is gone is dropped.

const pubsubFile = "pubsub.json"

// bindBuffer is a binding's engine buffer; it is credited back as each
// publication is handed to the mailbox, so it never fills.
const bindBuffer = 1024

type bindKey struct{ pattern, mailbox string }

type binding struct {
	key bindKey
	sub *subscription
	bx  *box
}

// pubsubState is pubsubFile's content.
type pubsubState struct {
	Bindings []stateBinding `json:"bindings"`
	Claims   []stateClaim   `json:"claims"`
}

type stateBinding struct {
	Pattern string `json:"pattern"`
	Mailbox string `json:"mailbox"`
}

type stateClaim struct {
	Pattern string `json:"pattern"`
	UID     uint32 `json:"uid"`
	GID     uint32 `json:"gid"`
	Mode    uint32 `json:"mode"`
}

func (h *handler) doBind(hd wire.Header, p []byte) {
	c := h.c
	ps := c.b.ps
	var m wire.Bind
	if !h.decode(hd, p, &m) {
		return
	}
	unbind := hd.Flags&wire.FlagUnbind != 0
	pattern, name := string(m.Pattern), string(m.Mailbox)
	verb := "bind"
	if unbind {
		verb = "unbind"
	}
	fail := func(code wire.Code, format string, args ...any) {
		c.replyErr(hd, code, fmt.Sprintf("%s %q to %q: ", verb, pattern, name)+fmt.Sprintf(format, args...))
	}
	switch {
	case topic.ValidPattern(pattern) != nil:
		fail(wire.CodeInvalid, "%v", topic.ValidPattern(pattern))
		return
	case ps.engineFor(pattern) == ps.sys:
		fail(wire.CodeInvalid, "$SYS. subjects cannot be bound to a mailbox")
		return
	case !wire.ValidName(m.Mailbox):
		fail(wire.CodeInvalid, "%s (a named mailbox, not an inbox)", badName)
		return
	}
	bx := c.b.lookup(m.Mailbox)
	if bx == nil {
		fail(wire.CodeNotFound, "no such mailbox")
		return
	}
	if !c.authorize(bx, ActSend) {
		fail(wire.CodePermission, "permission denied (binding needs w on the mailbox)")
		return
	}
	uid, gids := principalIDs(c)
	key := bindKey{pattern, name}
	ps.mu.Lock()
	if !ps.claims.Allowed(pattern, uid, gids, topic.PermRead) {
		ps.mu.Unlock()
		fail(wire.CodePermission, "permission denied (a claim the pattern reaches denies r)")
		return
	}
	bd := ps.binds[key]
	switch {
	case unbind && bd == nil:
		ps.mu.Unlock()
		fail(wire.CodeNotFound, "no such binding")
		return
	case unbind:
		ps.removeBindingLocked(bd)
	case bd == nil || bd.bx != bx:
		if bd != nil { // of a mailbox of the same name, since destroyed
			ps.removeBindingLocked(bd)
		}
		if err := ps.addBindingLocked(key, bx); err != nil {
			ps.unlock()
			fail(wire.CodeInvalid, "%v", err)
			return
		}
	}
	ps.unlock()
	if bx.durable {
		if err := ps.save(); err != nil {
			code, text := storageError(fmt.Sprintf("%s %q to %q", verb, pattern, name), err)
			c.replyErr(hd, code, text)
			return
		}
	}
	c.replyEmpty(hd)
}

// addBindingLocked binds key's pattern to bx. mu is held.
func (ps *pubsub) addBindingLocked(key bindKey, bx *box) error {
	ps.nextID++
	bd := &binding{key: key, bx: bx}
	bd.sub = &subscription{id: ps.nextID, eng: ps.eng, pattern: key.pattern, bind: bd}
	err := ps.eng.Subscribe(topic.Sub{ID: bd.sub.id, Pattern: key.pattern, Buffer: bindBuffer,
		Policy: topic.DropNewest, Owner: bd.sub})
	if err != nil {
		return err
	}
	ps.binds[key] = bd
	return nil
}

// removeBindingLocked removes bd. mu is held.
func (ps *pubsub) removeBindingLocked(bd *binding) {
	if ps.binds[bd.key] == bd {
		delete(ps.binds, bd.key)
	}
	ps.eng.Unsubscribe(bd.sub.id)
	ps.effects(ps.eng)
}

// deliverBound queues pub's sending into bd's mailbox for after mu.
func (ps *pubsub) deliverBound(bd *binding, pub *publication) {
	if pub.from == nil {
		return
	}
	ps.after = append(ps.after, func() { ps.sendBound(bd, pub) })
}

// sendBound sends pub into bd's mailbox as a best-effort SEND from its
// publisher. A binding whose mailbox is gone is removed.
func (ps *pubsub) sendBound(bd *binding, pub *publication) {
	c := pub.from
	if ps.b.lookup([]byte(bd.key.mailbox)) != bd.bx {
		ps.mu.Lock()
		ps.removeBindingLocked(bd)
		ps.unlock()
		return
	}
	msg := newMessage(pub.body, pub.headers)
	msg.Type, msg.Sender, msg.SentUnixNano = pub.typ, pub.sender, pub.sent
	var ids []uint64
	msgs := [1]*mailbox.Message{msg}
	sr := sendRequest{c: c, hd: wire.Header{Op: wire.OpSend, Flags: wire.FlagBestEffort}, msgs: msgs[:],
		size: int64(len(pub.body) + len(pub.headers)), now: pub.sent, ids: &ids, bestEffort: true}
	bd.bx.send(&sr)
}

// mailboxGone drops the bindings of a destroyed mailbox (and rewrites
// the state file if it was durable), and publishes the event.
func (ps *pubsub) mailboxGone(bx *box) {
	if ps == nil {
		return // a mailbox destroyed while the broker opens
	}
	ps.mu.Lock()
	n := 0
	for _, bd := range ps.binds {
		if bd.bx == bx {
			ps.removeBindingLocked(bd)
			n++
		}
	}
	ps.unlock()
	if n > 0 && bx.durable {
		if err := ps.save(); err != nil {
			ps.b.log.Warn("pubsub: cannot record the bindings", "err", err)
		}
	}
	if bx.inbox == 0 {
		ps.sysEvent("$SYS.mailbox.destroyed", map[string]any{"name": bx.name, "durable": bx.durable})
	}
}

// snapshot is the state to keep. mu is held.
func (ps *pubsub) snapshotLocked() pubsubState {
	st := pubsubState{Bindings: []stateBinding{}, Claims: []stateClaim{}}
	for _, bd := range ps.binds {
		if bd.bx.durable {
			st.Bindings = append(st.Bindings, stateBinding{bd.key.pattern, bd.key.mailbox})
		}
	}
	slices.SortFunc(st.Bindings, func(a, b stateBinding) int {
		return strings.Compare(a.Pattern+"\x00"+a.Mailbox, b.Pattern+"\x00"+b.Mailbox)
	})
	for _, cl := range ps.claims.List() {
		st.Claims = append(st.Claims, stateClaim{cl.Pattern, cl.Owner, cl.GID, cl.Mode})
	}
	return st
}

// save rewrites the state file (without a data directory, nothing).
func (ps *pubsub) save() error {
	dir := ps.b.cfg.DataDir
	if dir == "" {
		return nil
	}
	if _, err := ps.b.needStore(); err != nil { // the directory may not exist yet (lazystore.go)
		return err
	}
	ps.saveMu.Lock()
	defer ps.saveMu.Unlock()
	ps.mu.Lock()
	st := ps.snapshotLocked()
	ps.mu.Unlock()
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, pubsubFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, pubsubFile))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// load reads the state file back (at Open, before any connection).
func (ps *pubsub) load() {
	dir := ps.b.cfg.DataDir
	if dir == "" {
		return
	}
	data, err := os.ReadFile(filepath.Join(dir, pubsubFile))
	if os.IsNotExist(err) {
		return
	}
	var st pubsubState
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err != nil {
		ps.b.log.Warn("pubsub: cannot read the bindings and claims; starting without them", "file", filepath.Join(dir, pubsubFile), "err", err)
		return
	}
	ps.mu.Lock()
	for _, cl := range st.Claims {
		if err := ps.claims.ClaimBy(0, cl.Pattern, cl.UID, cl.GID, cl.Mode); err != nil {
			ps.b.log.Warn("pubsub: claim not restored", "pattern", cl.Pattern, "err", err)
		}
	}
	restored := 0
	for _, sb := range st.Bindings {
		bx := ps.b.lookup([]byte(sb.Mailbox))
		if bx == nil || !bx.durable || topic.ValidPattern(sb.Pattern) != nil {
			continue
		}
		if ps.addBindingLocked(bindKey{sb.Pattern, sb.Mailbox}, bx) == nil {
			restored++
		}
	}
	ps.unlock()
	ps.b.log.Info("pubsub: restored", "bindings", restored, "claims", len(st.Claims))
}
