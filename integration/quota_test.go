package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// Per-uid quotas against a real broker, with clients running as uids
// 65534 (the offender) and 65533 (a bystander) beside root.

// bystander is a second non-root uid.
var bystander = &syscall.Credential{Uid: 65533, Gid: 65533, NoSetGroups: false, Groups: []uint32{}}

// quotaRole runs the roles the quota tests add to runRole. Each reports
// out.ID how many it did before the first error, and returns that error
// (a holding role reports it itself). It reports false for a command it
// does not know.
//
//	flood NAME SIZE    send SIZE-byte messages until a send fails
//	hoard NAME         receive without acking until a receive fails, then
//	                   hold the leases until stdin closes
//	consume NAME       consume with a prefetch of 100, not acking, and
//	                   hold until stdin closes
//	conns N            open up to N more connections until one fails,
//	                   then hold them until stdin closes
//	mkboxes PREFIX N   create PREFIX0.. until one fails
func quotaRole(ctx context.Context, c *postbox.Client, args []string, out *roleResult) (bool, error) {
	n := func(i int) int {
		v, _ := strconv.Atoi(args[i])
		return v
	}
	var err error
	var count uint64
	hold := false
	switch args[0] {
	case "flood":
		mb, body := c.Mailbox(args[1]), make([]byte, n(2))
		for err == nil && count < 1<<20 {
			if _, err = mb.Send(ctx, body); err == nil {
				count++
			}
		}
	case "hoard":
		mb := c.Mailbox(args[1])
		for err == nil {
			if _, err = mb.Receive(ctx, postbox.NoWait()); err == nil {
				count++
			}
		}
		hold = true
	case "consume":
		var cons *postbox.Consumer
		if cons, err = c.Mailbox(args[1]).Consume(ctx, postbox.Prefetch(100)); err == nil {
			defer cons.Close(context.Background())
		}
		hold = true
	case "conns":
		for range n(1) {
			var more *postbox.Client
			if more, err = postbox.Dial(ctx, postbox.WithName("role-conns")); err != nil {
				break
			}
			defer more.Close()
			count++
		}
		hold = true
	case "mkboxes":
		for i := range n(2) {
			if _, err = c.Create(ctx, fmt.Sprintf("%s%d", args[1], i), postbox.Mode(0o666)); err != nil {
				break
			}
			count++
		}
	default:
		return false, nil
	}
	out.ID = count
	if hold {
		if out.Err = errName(err); err != nil {
			out.ErrText = err.Error()
		}
		// Report now, hold until the parent closes stdin.
		json.NewEncoder(os.Stdout).Encode(out)
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	return true, err
}

// quotaConfig: small per-uid quotas, a broker-wide byte limit 16 times
// the per-uid one.
func quotaConfig() *broker.Config {
	return limits(func(c *broker.Config) {
		c.MaxQueuedBytes, c.MaxMessage = 1<<20, 64<<10
		c.Quotas = broker.Quotas{QuotaLimits: broker.QuotaLimits{Connections: 3, Mailboxes: 2, QueuedBytes: 64 << 10, Leases: 4}}
	})
}

func usageOf(t *testing.T, b *testbroker.Broker, uid uint32) broker.UsageEntry {
	t.Helper()
	for _, e := range b.Usage() {
		if !e.Anonymous && e.UID == uid {
			return e
		}
	}
	return broker.UsageEntry{UID: uid}
}

func TestQuotaFloodByOneUIDIsLimitWhileOtherUIDsStillSend(t *testing.T) {
	needRoot(t)
	b := start(t, quotaConfig())
	root := b.Dial(t)
	shared := create(t, root, "shared", postbox.Mode(0o666))
	other := create(t, root, "other", postbox.Mode(0o666))

	// 4 KiB messages: the 17th would pass uid 65534's 64 KiB.
	r := asNobody(t, b.Socket, "flood", "shared", "4096")
	wantRoleErr(t, r, "ErrLimit", "flooding past the byte quota")
	if r.ID != 16 || !strings.Contains(r.ErrText, "uid 65534 holds 65536 bytes of queued messages, its quota") {
		t.Fatalf("flood: %d sent, then %q; want 16, then the quota named", r.ID, r.ErrText)
	}
	// Its messages stay queued, and charged, after it left (which the
	// broker notices asynchronously).
	waitFor(t, "uid 65534's connection released", func() bool { return usageOf(t, b, 65534).Used.Connections == 0 })
	if u := usageOf(t, b, 65534); u.Used.QueuedBytes != 65536 {
		t.Fatalf("uid 65534 usage %+v", u.Used)
	}

	// Everyone else still sends, to the same mailbox and another.
	send(t, shared, "root, same mailbox")
	send(t, other, "root, other mailbox")
	wantRoleErr(t, runChild(t, b.Socket, bystander, "send", "shared", "65533, same mailbox"), "", "bystander send to the flooded mailbox")
	wantRoleErr(t, runChild(t, b.Socket, bystander, "send", "other", "65533, other mailbox"), "", "bystander send elsewhere")
	if u := usageOf(t, b, 65533); u.Used.QueuedBytes != int64(len("65533, same mailbox")+len("65533, other mailbox")) {
		t.Fatalf("uid 65533 usage %+v", u.Used)
	}
	// The broker-wide limit was never the one that refused.
	var held int64
	for _, e := range b.Usage() {
		held += e.Used.QueuedBytes
	}
	if held >= b.Limits().MaxQueuedBytes/2 {
		t.Fatalf("%d bytes held, near the broker-wide %d", held, b.Limits().MaxQueuedBytes)
	}

	// Taking the offender's messages out releases its quota.
	for range 17 {
		recvAck(t, shared)
	}
	if u := usageOf(t, b, 65534); u.Used.QueuedBytes != 0 {
		t.Fatalf("after its messages were acked uid 65534 holds %d bytes", u.Used.QueuedBytes)
	}
	wantRoleErr(t, asNobody(t, b.Socket, "send", "shared", "again"), "", "send after release")
}

func TestQuotaLeaseHoarderStallsAtItsQuotaWhileOthersReceive(t *testing.T) {
	needRoot(t)
	b := start(t, quotaConfig())
	root := b.Dial(t)
	work := create(t, root, "work", postbox.Mode(0o666))
	for i := range 10 {
		send(t, work, "job "+strconv.Itoa(i))
	}
	hoarder := startChild(t, b.Socket, nobody, "hoard", "work")
	r := hoarder.result(t)
	wantRoleErr(t, r, "ErrLimit", "receiving past the lease quota")
	if r.ID != 4 || !strings.Contains(r.ErrText, "uid 65534 holds 4 leases, its quota") {
		t.Fatalf("hoard: %d leases, then %q; want 4, then the quota named", r.ID, r.ErrText)
	}
	if u := usageOf(t, b, 65534); u.Used.Leases != 4 {
		t.Fatalf("uid 65534 usage %+v", u.Used)
	}
	// Another uid, and root, still receive from the same mailbox.
	got := runChild(t, b.Socket, bystander, "recv", "work")
	wantRoleErr(t, got, "", "bystander receive")
	if !strings.HasPrefix(got.Body, "job ") {
		t.Fatalf("bystander got %q", got.Body)
	}
	recvAck(t, work)
	// The hoarder's leases end with its connection.
	hoarder.stdin.Close()
	if err := hoarder.wait(t); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "uid 65534's leases released", func() bool { return usageOf(t, b, 65534).Used.Leases == 0 })
	waitStat(t, work, "the hoarded jobs back in the queue", func(i postbox.Info) bool { return i.Depth == 8 && i.InFlight == 0 })
}

// A consumer's credit does not take it past its uid's lease quota: the
// mailbox passes it over while others receive, and a waiting receive of
// the same uid stalls until leases are settled (here: by the consumer's
// end), then gets its message.
func TestQuotaConsumerStallsAtTheLeaseQuotaAndWakesWhenLeasesAreSettled(t *testing.T) {
	needRoot(t)
	b := start(t, quotaConfig())
	root := b.Dial(t)
	work := create(t, root, "work", postbox.Mode(0o666))
	for i := range 10 {
		send(t, work, "job "+strconv.Itoa(i))
	}
	hoarder := startChild(t, b.Socket, nobody, "consume", "work")
	wantRoleErr(t, hoarder.result(t), "", "consume")
	waitStat(t, work, "4 leased to the consumer", func(i postbox.Info) bool { return i.InFlight == 4 && i.Depth == 6 })
	time.Sleep(50 * time.Millisecond)
	if i := waitStat(t, work, "", func(postbox.Info) bool { return true }); i.InFlight != 4 || usageOf(t, b, 65534).Used.Leases != 4 {
		t.Fatalf("the consumer went past its quota of 4 leases: %+v, usage %+v", i, usageOf(t, b, 65534).Used)
	}
	wantRoleErr(t, runChild(t, b.Socket, bystander, "recv", "work"), "", "another uid receives meanwhile")

	waiter := startChild(t, b.Socket, nobody, "recv", "work")
	waitStat(t, work, "the same uid's receive waiting", func(i postbox.Info) bool { return i.Receivers == 1 })
	hoarder.stdin.Close()
	if err := hoarder.wait(t); err != nil {
		t.Fatal(err)
	}
	r := waiter.result(t)
	wantRoleErr(t, r, "", "the stalled receive once the consumer's leases were returned")
	if !strings.HasPrefix(r.Body, "job ") {
		t.Fatalf("stalled receive got %q", r.Body)
	}
}

func TestQuotaConnectionsRefuseTheNextHelloOfThatUIDOnly(t *testing.T) {
	needRoot(t)
	b := start(t, quotaConfig())
	ch := startChild(t, b.Socket, nobody, "conns", "5")
	r := ch.result(t)
	// The role's own connection and 2 more make 3, its quota.
	wantRoleErr(t, r, "ErrLimit", "the 4th connection")
	if r.ID != 2 || !strings.Contains(r.ErrText, "uid 65534 holds 3 connections, its quota") {
		t.Fatalf("conns: %d more, then %q; want 2, then the quota named", r.ID, r.ErrText)
	}
	wantRoleErr(t, runChild(t, b.Socket, bystander, "hello"), "", "another uid's HELLO")
	for range 4 {
		b.Dial(t) // root: unlimited
	}
	ch.stdin.Close()
	ch.wait(t)
	waitFor(t, "uid 65534's connections released", func() bool { return usageOf(t, b, 65534).Used.Connections == 0 })
	wantRoleErr(t, asNobody(t, b.Socket, "hello"), "", "HELLO once the others closed")
}

func TestQuotaMailboxesRefuseCreateOfThatUIDOnly(t *testing.T) {
	needRoot(t)
	b := start(t, quotaConfig())
	r := asNobody(t, b.Socket, "mkboxes", "nb", "5")
	wantRoleErr(t, r, "ErrLimit", "the 3rd mailbox")
	if r.ID != 2 || !strings.Contains(r.ErrText, "uid 65534 holds 2 mailboxes, its quota") {
		t.Fatalf("mkboxes: %d, then %q", r.ID, r.ErrText)
	}
	root := b.Dial(t)
	for i := range 3 {
		create(t, root, "root"+strconv.Itoa(i))
	}
	wantRoleErr(t, runChild(t, b.Socket, bystander, "mkboxes", "by", "2"), "", "another uid's creates")
	// Destroying one gives the quota back.
	wantRoleErr(t, asNobody(t, b.Socket, "rm", "nb0"), "", "rm")
	if r := asNobody(t, b.Socket, "mkboxes", "again", "1"); r.Err != "" || r.ID != 1 {
		t.Fatalf("create after destroy: %+v", r)
	}
}

func TestCLIUsageShowsPerUIDNumbers(t *testing.T) {
	needRoot(t)
	testbroker.CheckGoroutines(t)
	p := testbroker.StartProcess(t, cli(t), "--memory")
	owner := p.Dial(t)
	mb := create(t, owner, "u", postbox.Mode(0o666))
	send(t, mb, "hello")
	run := func(cred *syscall.Credential, args ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli(t), append([]string{"usage", "--socket", p.Socket}, args...)...)
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			cmd.Dir = "/"
		}
		out, err := cmd.CombinedOutput()
		return string(out), testbroker.ExitCode(err)
	}
	// Root sees every uid: itself (this test's client and the CLI's own
	// connection; one mailbox; 5 queued bytes), unlimited.
	out, code := run(nil)
	if code != 0 {
		t.Fatalf("postbox usage: exit %d: %s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "UID") ||
		strings.Join(strings.Fields(lines[1]), " ") != "0 2/unlimited 1/unlimited 5/unlimited 0/unlimited" {
		t.Fatalf("postbox usage as root:\n%s", out)
	}
	// Another uid sees only its own, with the default quotas.
	out, code = run(nobody, "-o", "json")
	if code != 0 {
		t.Fatalf("postbox usage -o json as 65534: exit %d: %s", code, out)
	}
	var u struct {
		UID         *uint32          `json:"uid"`
		Used, Quota map[string]int64 `json:"-"`
		RawUsed     json.RawMessage  `json:"used"`
		RawQuota    json.RawMessage  `json:"quota"`
	}
	if strings.Count(strings.TrimSpace(out), "\n") != 0 || json.Unmarshal([]byte(out), &u) != nil || u.UID == nil || *u.UID != 65534 {
		t.Fatalf("postbox usage -o json as 65534: %s", out)
	}
	json.Unmarshal(u.RawUsed, &u.Used)
	json.Unmarshal(u.RawQuota, &u.Quota)
	wantUsed := map[string]int64{"connections": 1, "mailboxes": 0, "queued_bytes": 0, "leases": 0}
	wantQuota := map[string]int64{"connections": 256, "mailboxes": 1024, "queued_bytes": 1 << 28, "leases": 65536}
	if fmt.Sprint(u.Used) != fmt.Sprint(wantUsed) || fmt.Sprint(u.Quota) != fmt.Sprint(wantQuota) {
		t.Fatalf("as 65534: used %v quota %v, want %v %v", u.Used, u.Quota, wantUsed, wantQuota)
	}
	if out, code := run(nobody, "--uid", "0"); code != 77 || !strings.Contains(out, "permission denied") {
		t.Fatalf("postbox usage --uid 0 as 65534: exit %d: %s", code, out)
	}
	// stat shows the owner's usage line (root may see it).
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	st, err := exec.CommandContext(ctx, cli(t), "stat", "u", "--socket", p.Socket).CombinedOutput()
	if err != nil || !strings.Contains(string(st), "owner's usage:") || !strings.Contains(string(st), "5/unlimited queued bytes") {
		t.Fatalf("postbox stat: %v\n%s", err, st)
	}
}
