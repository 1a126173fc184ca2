package integration_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
)

// multicast sends body to group and returns how many got it, or fails t.
func multicast(t *testing.T, c *postbox.Client, group, body string) int {
	t.Helper()
	n, err := c.Multicast(ctxT(t), group, []byte(body))
	if err != nil {
		t.Fatalf("multicast to %s: %v", group, err)
	}
	return n
}

// TestMulticastGivesEveryMemberACopy: endpoints and a mailbox join a
// group; a multicast reaches each, a member that left gets nothing, and
// a full member is skipped (counted in its DROPPED) without failing the
// send. A group without members is RECIPIENTS 0, no error.
func TestMulticastGivesEveryMemberACopy(t *testing.T) {
	b := start(t, nil)
	sender := b.Dial(t)
	if n := multicast(t, sender, "#team", "anyone?"); n != 0 {
		t.Fatalf("a group without members: %d recipients, want 0", n)
	}
	var members []*postbox.Client
	for range 3 {
		m := b.Dial(t)
		if err := m.Join(ctxT(t), "#team"); err != nil {
			t.Fatal(err)
		}
		members = append(members, m)
	}
	if err := members[0].Join(ctxT(t), "#team"); err != nil {
		t.Fatalf("joining twice: %v", err)
	}
	log := create(t, sender, "team-log")
	if err := sender.JoinMailbox(ctxT(t), "#team", "team-log"); err != nil {
		t.Fatal(err)
	}
	full := create(t, sender, "team-full", postbox.Capacity(1))
	send(t, full, "already here")
	if err := sender.JoinMailbox(ctxT(t), "#team", "team-full"); err != nil {
		t.Fatal(err)
	}

	if n := multicast(t, sender, "#team", "hello team"); n != 4 {
		t.Fatalf("multicast reached %d members, want 4 (3 endpoints and team-log; team-full is full)", n)
	}
	for i, m := range members {
		got := recv(t, m.Inbox())
		if string(got.Body) != "hello team" || got.Sender.Endpoint != sender.Identity().Endpoint {
			t.Fatalf("member %d got %q from %d", i, got.Body, got.Sender.Endpoint)
		}
	}
	if got := recv(t, log); string(got.Body) != "hello team" {
		t.Fatalf("team-log got %q", got.Body)
	}
	info := waitStat(t, full, "", func(postbox.Info) bool { return true })
	if info.Depth != 1 || info.Dropped != 1 {
		t.Fatalf("the full member: depth %d dropped %d, want 1 and 1", info.Depth, info.Dropped)
	}

	if err := members[1].Leave(ctxT(t), "#team"); err != nil {
		t.Fatal(err)
	}
	if err := sender.LeaveMailbox(ctxT(t), "#team", "team-full"); err != nil {
		t.Fatal(err)
	}
	if n := multicast(t, sender, "#team", "again"); n != 3 {
		t.Fatalf("after a leave: %d recipients, want 3", n)
	}
	if _, err := members[1].Inbox().Receive(ctxT(t), postbox.NoWait()); !errors.Is(err, postbox.ErrEmpty) {
		t.Fatalf("the member that left: %v, want ErrEmpty", err)
	}
	// A destroyed mailbox leaves its groups.
	if err := log.Destroy(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	create(t, sender, "team-log") // the same name, another mailbox: not a member
	if n := multicast(t, sender, "#team", "third"); n != 2 {
		t.Fatalf("after the mailbox member was destroyed: %d recipients, want 2", n)
	}

	for _, bad := range []string{"team", "#", "#no spaces"} {
		if _, err := sender.Multicast(ctxT(t), bad, []byte("x")); !errors.Is(err, postbox.ErrInvalid) {
			t.Fatalf("multicast to %q: %v, want ErrInvalid", bad, err)
		}
	}
	if err := sender.JoinMailbox(ctxT(t), "#team", "no-such-box"); !errors.Is(err, postbox.ErrNotFound) {
		t.Fatalf("joining a missing mailbox: %v, want ErrNotFound", err)
	}
	if _, err := sender.Mailbox("#team").Send(ctxT(t), []byte("x"), postbox.WithReceipt()); !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("a receipted send to a group: %v, want ErrInvalid", err)
	}
}

// TestGroupMemberKilledWithSIGKILLLeavesTheGroup: member processes join
// a group, one a client role and one the postbox CLI (which prints what
// the group is sent); killed with SIGKILL they leave by themselves.
func TestGroupMemberKilledWithSIGKILLLeavesTheGroup(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	role := startChild(t, b.Socket, nil, "join", "#crew")
	if r := role.result(t); r.Err != "" {
		t.Fatalf("join role: %+v", r)
	}
	cmd := exec.Command(cli(t), "--socket", b.Socket, "join", "#crew", "-o", "json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	t.Cleanup(func() {
		if !waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	if line, err := bufio.NewReader(stderr).ReadString('\n'); err != nil || !strings.HasPrefix(line, "joined #crew") {
		t.Fatalf("postbox join said %q (%v)", line, err)
	}
	if n := multicast(t, c, "#crew", "all hands"); n != 2 {
		t.Fatalf("%d recipients, want 2", n)
	}
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	var m struct{ Body string }
	if err != nil || json.Unmarshal([]byte(line), &m) != nil || m.Body != "all hands" {
		t.Fatalf("postbox join printed %q (%v)", line, err)
	}

	if err := role.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	role.wait(t)
	waitFor(t, "the killed role leaves #crew", func() bool { return multicast(t, c, "#crew", "count off") == 1 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	waited = true
	waitFor(t, "the killed CLI leaves #crew", func() bool { return multicast(t, c, "#crew", "anyone left?") == 0 })
}

// TestBroadcastIsForRootOrTheBroadcastOwner: root reaches every other
// endpoint; uid 65534 may only when it is the broker's broadcast owner.
func TestBroadcastIsForRootOrTheBroadcastOwner(t *testing.T) {
	needRoot(t)
	for _, owner := range []uint32{0, 65534} {
		b := start(t, limits(func(c *broker.Config) { c.BroadcastOwner = owner }))
		root := b.Dial(t)
		others := []*postbox.Client{b.Dial(t), b.Dial(t)}
		n, err := root.Broadcast(ctxT(t), []byte("from root"))
		if err != nil || n != 2 {
			t.Fatalf("root broadcast: %d recipients, %v; want 2", n, err)
		}
		for _, o := range others {
			if got := recv(t, o.Inbox()); string(got.Body) != "from root" {
				t.Fatalf("got %q", got.Body)
			}
		}
		r := asNobody(t, b.Socket, "broadcast", "from nobody")
		if owner == 65534 {
			if r.Err != "" || r.ID != 3 { // root and the two others
				t.Fatalf("the broadcast owner: %+v, want 3 recipients", r)
			}
			for _, o := range others {
				if got := recv(t, o.Inbox()); string(got.Body) != "from nobody" {
					t.Fatalf("got %q", got.Body)
				}
			}
			continue
		}
		wantRoleErr(t, r, "ErrPermission", "broadcast without being the owner")
		for _, o := range others {
			if _, err := o.Inbox().Receive(ctxT(t), postbox.NoWait()); !errors.Is(err, postbox.ErrEmpty) {
				t.Fatalf("a refused broadcast arrived: %v", err)
			}
		}
	}
}

// nextNotice returns w's next notice or fails t.
func nextNotice(t *testing.T, w *postbox.Watcher) postbox.Notice {
	t.Helper()
	n, err := w.Next(ctxT(t))
	if err != nil {
		t.Fatalf("watch %s: %v", w.Armed().Target, err)
	}
	return n
}

// wantEnded checks that w has nothing more and ended as want says.
func wantEnded(t *testing.T, w *postbox.Watcher, also error) {
	t.Helper()
	_, err := w.Next(ctxT(t))
	if !errors.Is(err, postbox.ErrWatchEnded) || (also != nil && !errors.Is(err, also)) {
		t.Fatalf("after the last notice: %v, want ErrWatchEnded (%v)", err, also)
	}
}

// TestMulticastToADurableMemberIsOnDiskBeforeTheReply: a durable mailbox
// member counts once its copy's record is written, and the copy is there
// after a restart; a BEST_EFFORT send to the group reaches the members
// with no reply.
func TestMulticastToADurableMemberIsOnDiskBeforeTheReply(t *testing.T) {
	dir := t.TempDir()
	b := start(t, limits(func(c *broker.Config) { c.DataDir = dir }))
	c := b.Dial(t)
	create(t, c, "kept", postbox.Durable())
	if err := c.JoinMailbox(ctxT(t), "#d", "kept"); err != nil {
		t.Fatal(err)
	}
	member := b.Dial(t)
	if err := member.Join(ctxT(t), "#d"); err != nil {
		t.Fatal(err)
	}
	if n := multicast(t, c, "#d", "durable copy"); n != 2 {
		t.Fatalf("%d recipients, want 2", n)
	}
	if err := c.Mailbox("#d").SendBestEffort([]byte("maybe")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"durable copy", "maybe"} {
		if got := recv(t, member.Inbox()); string(got.Body) != want {
			t.Fatalf("the endpoint member got %q, want %q", got.Body, want)
		}
	}
	b.Stop(t)
	b2 := start(t, limits(func(c *broker.Config) { c.DataDir = dir }))
	c2 := b2.Dial(t)
	for _, want := range []string{"durable copy", "maybe"} {
		if got := recv(t, c2.Mailbox("kept")); string(got.Body) != want {
			t.Fatalf("after a restart kept holds %q, want %q", got.Body, want)
		}
	}
}
