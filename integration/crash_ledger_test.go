package integration_test

// The crash harness's ledger: everything its sender and receiver
// processes recorded (see crash_roles_test.go), and the final drain, read
// back and checked against the durability promise. It is plain data: no
// processes, sockets or clocks, so what it checks can be read off the
// code.

import (
	"bufio"
	"cmp"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
)

// sent is what a sender recorded about one message.
type sent struct {
	mailbox  string
	priority uint8
	typ      int64
	pid      int32  // the sending process
	acked    bool   // Send returned nil
	id       uint64 // the id Send returned, if acked
}

// delivery is one delivery of a message, to a receiver process or to the
// final drain.
type delivery struct {
	cycle        int    // which broker run delivered it (the drain: cycles+1)
	stream       string // the receiver's record file, or "drain"
	mailbox      string
	body         string
	priority     uint8
	typ          int64
	redeliveries uint32
	id           uint64
	senderPID    int32
}

// ledger is everything recorded across all cycles.
type ledger struct {
	sent       map[string]*sent      // by body
	deliveries map[string][]delivery // by body, in record order
	streams    map[string][]delivery // by stream, in delivery order
	// confirmed is the first delivery whose Ack returned nil, by body.
	confirmed map[string]delivery
	// maybeAcked: an Ack was attempted but not confirmed, or AckNoWait
	// was used. The message may be gone without a confirmation.
	maybeAcked map[string]bool
	pids       map[string]int32 // sender id → its process
	streamList []string         // streams in the order they were added
}

func newLedger() *ledger {
	return &ledger{
		sent: map[string]*sent{}, deliveries: map[string][]delivery{}, streams: map[string][]delivery{},
		confirmed: map[string]delivery{}, maybeAcked: map[string]bool{}, pids: map[string]int32{},
	}
}

// readSender adds a sender's record file.
func (l *ledger) readSender(path, senderID string) error {
	return readRecord(path, func(f []string) error {
		switch f[0] {
		case "P":
			pid, err := strconv.ParseInt(f[1], 10, 32)
			l.pids[senderID] = int32(pid)
			return err
		case "T":
			prio, _ := strconv.ParseUint(f[3], 10, 8)
			typ, _ := strconv.ParseInt(f[4], 10, 64)
			l.sent[f[2]] = &sent{mailbox: f[1], priority: uint8(prio), typ: typ, pid: l.pids[senderID]}
		case "S":
			s := l.sent[f[2]]
			if s == nil {
				return fmt.Errorf("S before T for %s", f[2])
			}
			s.acked = true
			s.id, _ = strconv.ParseUint(f[5], 10, 64)
		default:
			return fmt.Errorf("unknown sender record %q", f)
		}
		return nil
	})
}

// readReceiver adds a receiver's record file, written during cycle.
func (l *ledger) readReceiver(path, stream string, cycle int) error {
	l.streamList = append(l.streamList, stream)
	return readRecord(path, func(f []string) error {
		switch f[0] {
		case "P", "N", "H":
		case "R":
			if len(f) != 8 {
				return fmt.Errorf("short R record %q", f)
			}
			prio, _ := strconv.ParseUint(f[3], 10, 8)
			typ, _ := strconv.ParseInt(f[4], 10, 64)
			red, _ := strconv.ParseUint(f[5], 10, 32)
			id, _ := strconv.ParseUint(f[6], 10, 64)
			pid, _ := strconv.ParseInt(f[7], 10, 32)
			l.deliver(delivery{cycle: cycle, stream: stream, mailbox: f[1], body: f[2], priority: uint8(prio),
				typ: typ, redeliveries: uint32(red), id: id, senderPID: int32(pid)})
		case "a", "K":
			l.maybeAcked[f[2]] = true
		case "A":
			ds := l.streams[stream]
			if len(ds) == 0 || ds[len(ds)-1].body != f[2] {
				return fmt.Errorf("A %s does not follow its R", f[2])
			}
			l.confirm(ds[len(ds)-1])
		default:
			return fmt.Errorf("unknown receiver record %q", f)
		}
		return nil
	})
}

func (l *ledger) deliver(d delivery) {
	l.deliveries[d.body] = append(l.deliveries[d.body], d)
	l.streams[d.stream] = append(l.streams[d.stream], d)
}

// confirm records a confirmed ack. The first one counts: a message acked
// again later was resurrected in between, which check reports.
func (l *ledger) confirm(d delivery) {
	if _, ok := l.confirmed[d.body]; !ok {
		l.confirmed[d.body] = d
	}
}

// readRecord calls fn with the fields of every line of path. A role
// killed mid-write cannot leave a partial line (each is one write), but a
// missing file is a role that never started: nothing to read.
func readRecord(path string, fn func([]string) error) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			return fmt.Errorf("%s:%d: malformed line %q", path, n, sc.Text())
		}
		if err := fn(fields); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}

// verdict is the outcome of checking a ledger.
type verdict struct {
	attempted, acked int // sends made, sends the broker acknowledged
	delivered        int // deliveries in all
	confirmedAcks    int
	drained          int
	duplicates       int // messages delivered more than once (allowed)
	unackedDelivered int // delivered although their Send never returned nil (allowed)
	ambiguous        int // acknowledged, gone, but only an unconfirmed ack explains it (allowed)
	losses           []string
	resurrections    []string
	reordered        []string
	mismatched       []string
	redeliveryTooLow []string
	phantoms         []string
	orderChecked     int // pairs of deliveries checked for sender order
}

func (v *verdict) failures() []string {
	var all []string
	for _, l := range [][]string{v.losses, v.resurrections, v.reordered, v.mismatched, v.redeliveryTooLow, v.phantoms} {
		all = append(all, l...)
	}
	return all
}

// check verifies the ledger:
//
//   - zero loss: every message whose Send returned nil was acked with a
//     confirmation, or is delivered by the final drain, or an ack of it
//     was at least attempted (a crash between the ack's fdatasync and its
//     reply removes it without a confirmation: counted as ambiguous);
//   - no resurrection: a message whose ack was confirmed is never
//     delivered again afterwards: not by a later broker run, not with a
//     higher redelivery count in the same run;
//   - exact redelivery counts: a message is never delivered twice with
//     the same count, and its count never goes backwards, across crashes
//     too (a delivery is sent only after its Lease record is durable, so
//     a crash always returns it with one more);
//   - order: in each receiver's stream and in the drain, the first
//     deliveries (no redeliveries) of one sender's messages at one
//     priority in one mailbox come in the order they were sent;
//   - identity: every delivery is of a message some sender tried to
//     send, with its mailbox, priority, type, sender pid, and the id its
//     Send returned.
func (l *ledger) check() verdict {
	var v verdict
	for _, s := range l.sent {
		v.attempted++
		if s.acked {
			v.acked++
		}
	}
	for _, body := range slices.Sorted(maps.Keys(l.deliveries)) {
		ds := l.deliveries[body]
		v.delivered += len(ds)
		if len(ds) > 1 {
			v.duplicates++
		}
		s := l.sent[body]
		if s == nil {
			v.phantoms = append(v.phantoms, fmt.Sprintf("%s delivered (%s) but never sent", body, ds[0].stream))
			continue
		}
		if !s.acked {
			v.unackedDelivered++
		}
		for _, d := range ds {
			if d.stream == "drain" {
				v.drained++
			}
			if d.mailbox != s.mailbox || d.priority != s.priority || d.typ != s.typ || d.senderPID != s.pid || s.acked && d.id != s.id {
				v.mismatched = append(v.mismatched, fmt.Sprintf("%s delivered to %s as mailbox %s priority %d type %d id %d sender pid %d; sent to %s priority %d type %d id %d by pid %d",
					body, d.stream, d.mailbox, d.priority, d.typ, d.id, d.senderPID, s.mailbox, s.priority, s.typ, s.id, s.pid))
			}
		}
		byRun := slices.SortedFunc(slices.Values(ds), func(a, b delivery) int {
			return cmp.Or(cmp.Compare(a.cycle, b.cycle), cmp.Compare(a.redeliveries, b.redeliveries))
		})
		for i := 1; i < len(byRun); i++ {
			if byRun[i].redeliveries <= byRun[i-1].redeliveries {
				a, b := byRun[i-1], byRun[i]
				v.redeliveryTooLow = append(v.redeliveryTooLow, fmt.Sprintf("%s delivered in run %d (%s) with redeliveries %d, again in run %d (%s) with %d",
					body, a.cycle, a.stream, a.redeliveries, b.cycle, b.stream, b.redeliveries))
			}
		}
		if c, ok := l.confirmed[body]; ok {
			v.confirmedAcks++
			for _, d := range ds {
				if d.cycle > c.cycle || d.cycle == c.cycle && d.redeliveries > c.redeliveries {
					v.resurrections = append(v.resurrections, fmt.Sprintf("%s: ack confirmed to %s in run %d (redeliveries %d), delivered again to %s in run %d (redeliveries %d)",
						body, c.stream, c.cycle, c.redeliveries, d.stream, d.cycle, d.redeliveries))
				}
			}
		}
	}
	for _, body := range slices.Sorted(maps.Keys(l.sent)) {
		s := l.sent[body]
		if !s.acked {
			continue
		}
		_, confirmed := l.confirmed[body]
		drained := slices.ContainsFunc(l.deliveries[body], func(d delivery) bool { return d.stream == "drain" })
		switch {
		case confirmed || drained:
		case l.maybeAcked[body]:
			v.ambiguous++
		default:
			v.losses = append(v.losses, fmt.Sprintf("%s (mailbox %s, priority %d, id %d): Send returned nil, delivered %d times, never acked, not in the final drain",
				body, s.mailbox, s.priority, s.id, len(l.deliveries[body])))
		}
	}
	for _, stream := range l.streamList {
		v.reordered = append(v.reordered, l.checkOrder(stream, &v.orderChecked)...)
	}
	return v
}

// checkOrder checks one stream's first deliveries for per-sender order.
func (l *ledger) checkOrder(stream string, checked *int) []string {
	type key struct {
		mailbox, sender string
		priority        uint8
	}
	last := map[key]int{}
	var bad []string
	for _, d := range l.streams[stream] {
		if d.redeliveries != 0 {
			continue
		}
		sender, seqText, _ := strings.Cut(d.body, ":")
		seq, _ := strconv.Atoi(seqText)
		k := key{d.mailbox, sender, d.priority}
		if prev, ok := last[k]; ok {
			*checked++
			if seq <= prev {
				bad = append(bad, fmt.Sprintf("%s: %s:%d (priority %d, mailbox %s) delivered after %s:%d", stream, sender, seq, d.priority, d.mailbox, sender, prev))
			}
		}
		last[k] = seq
	}
	return bad
}
