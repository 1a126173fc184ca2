package postbox_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
)

// The intended combinations of options compile: each option is accepted
// by exactly the calls it means something for. This file compiling is the
// test; the assertions below only keep the variables used.
//
// These must NOT compile (each is a mistake the typed options catch):
//
//	mb.Send(ctx, b, postbox.Durable())          // Durable is a CreateOption
//	mb.Send(ctx, b, postbox.AutoAck())          // AutoAck is for Receive, Consume
//	mb.Send(ctx, b, postbox.Prefetch(8))        // Prefetch is a ConsumeOption
//	mb.Receive(ctx, postbox.Priority(3))        // Priority is for Send, Publisher
//	mb.Receive(ctx, postbox.WithReceipt())      // WithReceipt is for Send, Publisher
//	mb.Receive(ctx, postbox.ReplyTo("x"))       // headers are for Send, Publisher
//	mb.Consume(ctx, postbox.NoWait())           // NoWait is for Send, Receive
//	c.Create(ctx, "q", postbox.Type(2))         // Type is no CreateOption
//	mb.Publisher(8, postbox.NoWait())           // a Publisher's sends always wait
//	mb.Publisher(8, postbox.Capacity(1))        // Capacity is a CreateOption
var (
	createOpts = []postbox.CreateOption{
		postbox.Capacity(10), postbox.Unbounded(), postbox.Rendezvous(), postbox.Mode(0o660),
		postbox.Durable(), postbox.MaxBytes(1 << 20), postbox.TTL(time.Minute),
		postbox.MaxDeliveries(3), postbox.DeadLetter("dlq"),
	}
	sendOpts = []postbox.SendOption{
		postbox.Type(2), postbox.Priority(3), postbox.WithReceipt(), postbox.NoWait(),
		postbox.ReplyTo("replies"), postbox.CorrelationID([]byte("c")), postbox.ContentType("text/plain"),
		postbox.MessageDeadline(time.Now()), postbox.WithHeader("k", "v"),
	}
	receiveOpts = []postbox.ReceiveOption{postbox.Type(-3), postbox.NoWait(), postbox.AutoAck()}
	consumeOpts = []postbox.ConsumeOption{postbox.Type(0), postbox.AutoAck(), postbox.Prefetch(64)}
	publishOpts = []postbox.PublisherOption{
		postbox.Type(2), postbox.Priority(3), postbox.WithReceipt(),
		postbox.ReplyTo("replies"), postbox.CorrelationID([]byte("c")), postbox.ContentType("text/plain"),
		postbox.MessageDeadline(time.Now()), postbox.WithHeader("k", "v"),
	}
	// An option valid for several calls is one value usable in each.
	typ                              = postbox.Type(5)
	_   postbox.SendOption           = typ
	_   postbox.ReceiveOption        = typ
	_   postbox.ConsumeOption        = typ
	_   postbox.PublisherOption      = typ
	_   postbox.SendReceiveOption    = postbox.NoWait()
	_   postbox.ReceiveConsumeOption = postbox.AutoAck()
	_   postbox.SendPublisherOption  = postbox.ContentType("a/b")
)

func TestOptionsCompileWhereTheyApply(t *testing.T) {
	if len(createOpts) != 9 || len(sendOpts) != 9 || len(receiveOpts) != 3 || len(consumeOpts) != 3 || len(publishOpts) != 8 {
		t.Fatal("option lists changed")
	}
}

// TestOptionsDoNotCompileWhereTheyDoNotApply compiles the lines of the
// comment above (through a build overlay, so no file is written into the
// package) and checks that each one is refused.
func TestOptionsDoNotCompileWhereTheyDoNotApply(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the compiler")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	bad := []string{
		`mb.Send(ctx, b, postbox.Durable())`, `mb.Send(ctx, b, postbox.AutoAck())`, `mb.Send(ctx, b, postbox.Prefetch(8))`,
		`mb.Receive(ctx, postbox.Priority(3))`, `mb.Receive(ctx, postbox.WithReceipt())`, `mb.Receive(ctx, postbox.ReplyTo("x"))`,
		`mb.Consume(ctx, postbox.NoWait())`, `c.Create(ctx, "q", postbox.Type(2))`,
		`mb.Publisher(8, postbox.NoWait())`, `mb.Publisher(8, postbox.Capacity(1))`,
	}
	src := "package postbox_test\n\nimport (\n\t\"context\"\n\n\t\"github.com/postbox-ipc/postbox\"\n)\n\n" +
		"func mustNotCompile(ctx context.Context, c *postbox.Client, mb *postbox.Mailbox, b []byte) {\n\t" +
		strings.Join(bad, "\n\t") + "\n}\n"
	dir := t.TempDir()
	file := filepath.Join(dir, "bad_test.go")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{filepath.Join(wd, "zz_options_bad_test.go"): file}})
	ov := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(ov, overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(goBin, "test", "-overlay", ov, "-gcflags=-e", "-count=1", "-run", "^$", ".").CombinedOutput()
	if err == nil {
		t.Fatalf("the misuses compiled:\n%s", out)
	}
	for i := range bad {
		if !strings.Contains(string(out), fmt.Sprintf("bad_test.go:%d:", 10+i)) {
			t.Errorf("line %q was not refused:\n%s", bad[i], out)
		}
	}
}
