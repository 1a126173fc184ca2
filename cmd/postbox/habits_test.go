package main

// Tests of the CLI's Unix habits (issue 13.5): exit codes and the one
// error format, run as the real binary against a real broker; version,
// man pages, -o yaml, --no-headers, create --exist-ok; completion
// through cobra's __complete against a real in-process broker.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// errorLine is the one error format: `postbox: VERB "NAME": cause` (or
// `postbox: VERB: cause` for a command that takes no name).
var errorLine = regexp.MustCompile(`^postbox: [a-z][a-z -]*("[^"]*"[^:]*)?: \S.*\n$`)

// goWords must never reach a user: Go package prefixes and error texts.
var goWords = []string{"wire:", "topic:", "bufio", "strconv", "context deadline", "context canceled", "postbox: postbox", "dial unix"}

func TestCLIExitCodesAndErrorFormat(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "jobs")
	ok(t, p, "", "create", "full", "--capacity", "1")
	ok(t, p, "", "send", "full", "x")
	ok(t, p, "", "create", "private", "--mode", "0600")
	missing := filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		name string
		code int
		args []string
		want string // in stderr
	}{
		{"stat missing", exitNotFound, []string{"stat", "nosuch"}, `stat "nosuch": no such mailbox`},
		{"send missing", exitNotFound, []string{"send", "nosuch", "x"}, `send to "nosuch": no such mailbox`},
		{"recv missing", exitNotFound, []string{"recv", "nosuch", "--nowait"}, `receive from "nosuch": no such mailbox`},
		{"rm missing", exitNotFound, []string{"rm", "nosuch"}, `"nosuch": no such mailbox`},
		{"chmod missing", exitNotFound, []string{"chmod", "0600", "nosuch"}, `chmod "nosuch": no such mailbox`},
		{"cancel missing", exitNotFound, []string{"cancel", "nosuch", "--id", "1"}, `"nosuch": no such mailbox`},
		{"req missing", exitNotFound, []string{"req", "nosuch", "x"}, `"nosuch": no such mailbox`},
		{"call missing", exitNotFound, []string{"call", "nosuch", "M", "{}"}, `call "nosuch" M: no such service`},
		{"unbind missing", exitNotFound, []string{"bind", "a.b", "jobs", "--unbind"}, "no such binding"},
		{"bad name", exitUsage, []string{"create", "bad name"}, `create "bad name": a mailbox name is`},
		{"empty name", exitUsage, []string{"create", ""}, `create "": a mailbox name is`},
		{"send --type 0", exitUsage, []string{"send", "jobs", "x", "--type", "0"}, "type must be at least 1"},
		{"bad capacity", exitUsage, []string{"create", "x", "--capacity", "-5"}, `create "x": capacity`},
		{"bad number", exitUsage, []string{"recv", "jobs", "--count", "x"}, `receive from "jobs": --count "x": not a number`},
		{"bad output", exitUsage, []string{"ls", "-o", "xml"}, `ls: --output "xml"`},
		{"unknown flag", exitUsage, []string{"serve", "--data-dir", "x"}, "serve: unknown flag: --data-dir"},
		{"missing argument", exitUsage, []string{"pipe", "read"}, "pipe read: want NAME"},
		{"too few arguments", exitUsage, []string{"chmod", "0600"}, "chmod: want MODE NAME"},
		{"no command", exitUsage, []string{"reply", "q", "cat"}, "reply: want MAILBOX -- CMD"},
		{"bad URL", exitUsage, []string{"ls", "--url", "bogus://x"}, `ls: broker URL "bogus://x": scheme must be`},
		{"bad pattern", exitUsage, []string{"sub", "a..b"}, `subscribe "a..b": invalid pattern`},
		{"timeout", exitWouldBlock, []string{"recv", "jobs", "--timeout", "100ms"}, `receive from "jobs": timed out`},
		{"send timeout", exitWouldBlock, []string{"send", "full", "y", "--timeout", "100ms"}, `send to "full": timed out`},
		{"empty", exitWouldBlock, []string{"recv", "jobs", "--nowait"}, `receive from "jobs": mailbox is empty`},
		{"exists", exitError, []string{"create", "jobs"}, `create "jobs": a mailbox with that name exists`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := exits(t, p, tc.code, tc.args...)
			checkErrorLine(t, r.stderr, tc.want)
		})
	}
	t.Run("too large", func(t *testing.T) {
		for _, n := range []int{5 << 20, 17 << 20} { // the message limit, the frame limit
			r := run(t, p, strings.Repeat("x", n), "send", "jobs")
			if r.code != exitError {
				t.Fatalf("send of %d bytes: exit %d; stderr %q", n, r.code, r.stderr)
			}
			checkErrorLine(t, r.stderr, `send to "jobs": `)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		for _, args := range [][]string{{"ls"}, {"send", "jobs", "x"}, {"recv", "jobs"}, {"stat", "jobs"}} {
			r := run(t, nil, "", append(args, "--socket", missing)...)
			if r.code != exitUnavailable {
				t.Fatalf("postbox %v with no broker: exit %d, want %d; stderr %q", args, r.code, exitUnavailable, r.stderr)
			}
			checkErrorLine(t, r.stderr, `connect "`+missing+`": no broker is listening`)
		}
	})
	t.Run("permission denied", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("needs root to run a client as another uid")
		}
		for _, args := range [][]string{{"send", "private", "x"}, {"recv", "private", "--nowait"}, {"rm", "private"}} {
			r := startCLI(t, p, nil, false, &syscall.Credential{Uid: 65534, Gid: 65534}, args...)
			if code := r.wait(); code != exitPermission {
				t.Fatalf("postbox %v as nobody: exit %d, want %d; stderr %q", args, code, exitPermission, r.stderr.String())
			}
			checkErrorLine(t, r.stderr.String(), `"private": permission denied`)
		}
	})
}

func TestCLIBrokerGoneExitsUnavailable(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "q")
	r := startCLI(t, p, nil, false, nil, "recv", "--follow", "q")
	c := p.Dial(t)
	waitFor(t, "the receiver to consume", func() bool {
		i, err := c.Mailbox("q").Stat(context.Background())
		return err == nil && i.Consumers > 0
	})
	p.Crash(t)
	if code := r.wait(); code != exitUnavailable {
		t.Fatalf("recv --follow when the broker died: exit %d, want %d; stderr %q", code, exitUnavailable, r.stderr.String())
	}
	checkErrorLine(t, r.stderr.String(), `receive from "q": the broker went away`)
}

func checkErrorLine(t *testing.T, stderr, want string) {
	t.Helper()
	if !errorLine.MatchString(stderr) {
		t.Errorf("stderr %q is not one line `postbox: VERB \"NAME\": cause`", stderr)
	}
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr %q, want %q in it", stderr, want)
	}
	for _, w := range goWords {
		if strings.Contains(stderr, w) {
			t.Errorf("stderr %q has Go-internal wording %q", stderr, w)
		}
	}
}

func TestCLIErrorTextTakesOutGoWording(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`postbox: withdraw from "q": postbox: withdraw from "q": no such mailbox`, `withdraw from "q": no such mailbox`},
		{`postbox: publish to "a": publish "a": topic: invalid subject "a": empty`, `publish to "a": invalid subject "a": empty`},
		{`postbox: wire: frame too large: 17000045 bytes, limit 16777216`, `send to "q": a message of 17000045 bytes (with its headers) is larger than the broker's limit of 16777216 bytes`},
		{`postbox: receive from "q": context deadline exceeded`, `receive from "q": timed out`},
		{`reading stdin: bufio.Scanner: token too long`, `send to "q": reading stdin: line too long`},
		{`postbox: invalid argument: send to "q": message type must be at least 1`, `send to "q": message type must be at least 1`},
	} {
		send := &cobra.Command{Use: "send NAME"}
		root := &cobra.Command{Use: "postbox"}
		root.AddCommand(send)
		send.Flags().Parse([]string{"q"})
		if got := errorText(send, errorString(tc.in)); got != tc.want {
			t.Errorf("errorText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestCLIInterruptExits130(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "jobs")
	ok(t, p, "", "pipe", "create", "p")
	c := p.Dial(t)
	for _, args := range [][]string{{"recv", "--follow", "jobs"}, {"recv", "--count", "2", "jobs"}, {"sub", "a.>"}, {"pipe", "read", "p"}} {
		r := startCLI(t, p, nil, false, nil, args...)
		waitFor(t, "the receiver to wait", func() bool {
			if args[0] == "sub" {
				ti, err := c.Topics(context.Background())
				return err == nil && len(ti.Subjects) > 0
			}
			i, err := c.Mailbox(args[len(args)-1]).Stat(context.Background())
			return err == nil && i.Receivers+i.Consumers > 0
		})
		r.cmd.Process.Signal(os.Interrupt)
		if code := r.wait(); code != exitInterrupted {
			t.Errorf("postbox %v after SIGINT: exit %d, want %d; stderr %q", args, code, exitInterrupted, r.stderr.String())
		}
		for _, w := range goWords {
			if strings.Contains(r.stderr.String(), w) {
				t.Errorf("postbox %v after SIGINT: stderr %q has %q", args, r.stderr.String(), w)
			}
		}
	}
}

func TestCLIVersion(t *testing.T) {
	line := ok(t, nil, "", "--version").stdout
	if !strings.HasPrefix(line, "postbox ") || !strings.Contains(line, "go1.") {
		t.Errorf("--version: %q", line)
	}
	if v := ok(t, nil, "", "version").stdout; v != line {
		t.Errorf("version %q, --version %q: want the same line", v, line)
	}
	var j buildVersion
	if err := json.Unmarshal([]byte(ok(t, nil, "", "version", "-o", "json").stdout), &j); err != nil {
		t.Fatal(err)
	}
	if j.Module != "github.com/postbox-ipc/postbox" || j.Version == "" || !strings.HasPrefix(j.Go, "go1.") {
		t.Errorf("version -o json: %+v", j)
	}
	var y map[string]any
	if err := yaml.Unmarshal([]byte(ok(t, nil, "", "version", "-o", "yaml").stdout), &y); err != nil || y["module"] != j.Module {
		t.Errorf("version -o yaml: %v %v", y, err)
	}
}

func TestVersionLineNamesRevisionAndModified(t *testing.T) {
	yes := true
	v := buildVersion{Version: "v0.0.0-20261202195511-f6e91f642c38", Revision: "f6e91f642c38a7ca6cda391893ebc8f1ca6be43b",
		Time: "2026-12-02T19:55:11Z", Modified: &yes, Go: "go1.26.8"}
	if got, want := v.String(), "v0.0.0-20261202195511-f6e91f642c38 f6e91f642c38+modified 2026-12-02T19:55:11Z go1.26.8"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if got := (buildVersion{Version: "(devel)", Go: "go1.26.8"}).String(); got != "(devel) go1.26.8" {
		t.Errorf("without VCS information: %q", got)
	}
}

func TestCLIManPages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man1")
	ok(t, nil, "", "man", "--dir", dir)
	for _, page := range []string{"postbox.1", "postbox-send.1", "postbox-recv.1", "postbox-pipe-read.1", "postbox-man.1"} {
		if _, err := os.Stat(filepath.Join(dir, page)); err != nil {
			t.Errorf("man --dir: %v", err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "postbox-send.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`.TH "POSTBOX" "1"`, "postbox-send", ".SH EXAMPLE", "seq 1 1000 | postbox send jobs --lines", "--priority"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("postbox-send.1 lacks %q:\n%s", want, b)
		}
	}
	root, err := os.ReadFile(filepath.Join(dir, "postbox.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Exit status", "66   not found", "69   broker unreachable", "77   permission denied"} {
		if !bytes.Contains(root, []byte(want)) {
			t.Errorf("postbox.1 lacks %q", want)
		}
	}
	if r := run(t, nil, "", "man"); r.code != exitUsage {
		t.Errorf("man without --dir: exit %d", r.code)
	}
}

func TestCLIEveryCommandHasAnExample(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.IsAvailableCommand() || c == c.Root() {
			if strings.TrimSpace(c.Example) == "" {
				t.Errorf("%s: no Example in its help", c.CommandPath())
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRoot())
}

func TestCLIOutputYAMLIsTheJSONRecords(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "a", "--capacity", "5", "--mode", "0640")
	ok(t, p, "", "create", "b", "--ttl", "1m")
	ok(t, p, "", "send", "a", "x")
	for _, args := range [][]string{{"ls"}, {"stat", "a"}, {"usage"}, {"version"}, {"info"}} {
		js := ok(t, p, "", append(args, "-o", "json")...).stdout
		ys := ok(t, p, "", append(args, "-o", "yaml")...).stdout
		var fromJSON []any
		for _, line := range strings.Split(strings.TrimSpace(js), "\n") {
			var v any
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Fatalf("%v -o json: %v", args, err)
			}
			fromJSON = append(fromJSON, dropVolatile(v))
		}
		var fromYAML []any
		dec := yaml.NewDecoder(strings.NewReader(ys))
		for {
			var v any
			if err := dec.Decode(&v); err != nil {
				break
			}
			// Through JSON, so numbers compare as JSON's float64.
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%v -o yaml: %v", args, err)
			}
			var w any
			json.Unmarshal(b, &w)
			fromYAML = append(fromYAML, dropVolatile(w))
		}
		if args[0] == "info" { // uptime, memory: two runs differ in values, not in fields
			fromJSON, fromYAML = keysOf(fromJSON), keysOf(fromYAML)
		}
		if !strings.HasPrefix(ys, "---\n") || !reflect.DeepEqual(fromJSON, fromYAML) {
			t.Errorf("%v: -o yaml is not the -o json records:\njson %v\nyaml %v\n%s", args, fromJSON, fromYAML, ys)
		}
	}
}

// keysOf is the top-level field names of each record.
func keysOf(records []any) []any {
	var ks []any
	for _, r := range records {
		m, _ := r.(map[string]any)
		var names []string
		for k := range m {
			names = append(names, k)
		}
		sort.Strings(names)
		ks = append(ks, names)
	}
	return ks
}

// dropVolatile takes out what changes between two runs (the connection
// count of usage, which counts the asking client).
func dropVolatile(v any) any {
	if m, ok := v.(map[string]any); ok {
		if u, ok := m["used"].(map[string]any); ok {
			delete(u, "connections")
		}
	}
	return v
}

func TestCLINoHeaders(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "a")
	ok(t, p, "", "create", "b")
	if got := ok(t, p, "", "ls").stdout; !strings.HasPrefix(got, "NAME") {
		t.Errorf("ls: %q, want a header row", got)
	}
	lines := strings.Split(strings.TrimSpace(ok(t, p, "", "ls", "--no-headers").stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "a ") || !strings.HasPrefix(lines[1], "b ") {
		t.Errorf("ls --no-headers: %q, want the two rows only", lines)
	}
	if got := ok(t, p, "", "usage", "--no-headers").stdout; strings.Contains(got, "UID") || got == "" {
		t.Errorf("usage --no-headers: %q", got)
	}
	ok(t, p, "", "bind", "x.>", "a")
	if got := ok(t, p, "", "ls", "--subjects", "--no-headers").stdout; strings.Contains(got, "PATTERN") || !strings.Contains(got, "x.>") {
		t.Errorf("ls --subjects --no-headers: %q", got)
	}
}

func TestCLICreateExistOK(t *testing.T) {
	p := startBroker(t)
	args := []string{"create", "jobs", "--capacity", "10", "--mode", "0660", "--exist-ok"}
	ok(t, p, "", args...)
	ok(t, p, "", args...) // again: the same settings
	r := exits(t, p, exitError, "create", "jobs", "--capacity", "20", "--mode", "0660", "--exist-ok")
	checkErrorLine(t, r.stderr, `create "jobs": exists with other settings: capacity 10 (asked 20)`)
	r = exits(t, p, exitError, "create", "jobs")
	checkErrorLine(t, r.stderr, "exists")
	ok(t, p, "", "pipe", "create", "p")
	r = exits(t, p, exitError, "create", "p", "--exist-ok")
	checkErrorLine(t, r.stderr, `create "p": exists as a pipe, not a mailbox`)
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another uid")
	}
	// The same name and settings, another user's: not yours, so not ok.
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	ok(t, p, "", "create", "shared", "--mode", "0666")
	c := startCLI(t, p, nil, false, nobody, "create", "shared", "--mode", "0666", "--exist-ok")
	if code := c.wait(); code != exitError {
		t.Fatalf("create --exist-ok of root's mailbox as nobody: exit %d, want %d; stderr %q", code, exitError, c.stderr.String())
	}
	checkErrorLine(t, c.stderr.String(), `create "shared": exists with other settings: owner uid 0, gid 0 (you are uid 65534, gid 65534)`)
}

// complete runs cobra's hidden __complete in this process, as a shell's
// completion script does, and returns the offered words.
func complete(t *testing.T, args ...string) []string {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(new(bytes.Buffer))
	root.SetArgs(append([]string{cobra.ShellCompRequestCmd}, args...))
	socketFlag, urlFlag = "", ""
	t.Cleanup(func() { socketFlag = "" })
	if err := root.Execute(); err != nil {
		t.Fatalf("__complete %v: %v", args, err)
	}
	var words []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l != "" && !strings.HasPrefix(l, ":") {
			words = append(words, strings.SplitN(l, "\t", 2)[0])
		}
	}
	return words
}

func TestCLICompletionOffersMailboxesAndOutputs(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	c := b.Dial(t)
	ctx := context.Background()
	for _, name := range []string{"jobs", "jobs-dead", "logs"} {
		if _, err := c.Create(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	sock := "--socket=" + b.Socket
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"stat", sock, ""}, []string{"jobs", "jobs-dead", "logs"}},
		{[]string{"recv", sock, "jo"}, []string{"jobs", "jobs-dead"}},
		{[]string{"send", sock, "jobs", ""}, nil},                         // BODY: nothing to offer
		{[]string{"chmod", sock, "0600", "l"}, []string{"logs"}},          // the second argument
		{[]string{"rm", sock, "jobs", ""}, []string{"jobs-dead", "logs"}}, // each, once
		{[]string{"create", sock, ""}, nil},                               // a new name
		{[]string{"create", sock, "x", "--dead-letter", "jobs-"}, []string{"jobs-dead"}},
		{[]string{"ls", "-o", ""}, []string{"table", "json", "yaml"}},
		{[]string{"recv", "jobs", "-o", ""}, []string{"text", "raw", "json"}},
		{[]string{"pipe", "read", "p", "-o", ""}, []string{"raw", "json"}},
		{[]string{"stat", "--socket=" + filepath.Join(t.TempDir(), "none.sock"), ""}, nil}, // no broker: quietly nothing
	} {
		start := time.Now()
		got := complete(t, tc.args...)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("__complete %q: %q, want %q", tc.args, got, tc.want)
		}
		if d := time.Since(start); d > time.Minute {
			t.Errorf("__complete %q took %v", tc.args, d)
		}
	}
}

// The shells' scripts come from cobra; check they are there and name us.
func TestCLICompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if r := ok(t, nil, "", "completion", sh); !strings.Contains(r.stdout, "postbox") || !strings.Contains(r.stdout, "__complete") {
			t.Errorf("completion %s: %.200q", sh, r.stdout)
		}
	}
}

func TestCLIErrorsMatchTheirSentinels(t *testing.T) {
	refused := &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}
	if err := dialError(refused); !errors.Is(err, errUnreachable) || !errors.Is(err, syscall.ECONNREFUSED) || exitCodeOf(err) != exitUnavailable {
		t.Errorf("dialError(%v) = %v: want errUnreachable, the cause, exit %d", refused, err, exitUnavailable)
	}
	if err := dialError(postbox.ErrUnsafeSocket); errors.Is(err, errUnreachable) || exitCodeOf(err) != exitPermission {
		t.Errorf("an unsafe socket is not an unreachable broker: %v", err)
	}
	if !errors.Is(errExistsOther, postbox.ErrExists) {
		t.Errorf("errExistsOther does not match postbox.ErrExists")
	}
	for err, code := range map[error]int{
		postbox.ErrNotFound: exitNotFound, postbox.ErrPermission: exitPermission, postbox.ErrInvalid: exitUsage,
		postbox.ErrTimeout: exitWouldBlock, postbox.ErrClosed: exitUnavailable, postbox.ErrExists: exitError,
		postbox.ErrUnavailable: exitUnavailable,
		fmt.Errorf("call: %w: %w", postbox.ErrTimeout, postbox.ErrNotFound): exitNotFound,
	} {
		if got := exitCodeOf(err); got != code {
			t.Errorf("exitCodeOf(%v) = %d, want %d", err, got, code)
		}
	}
}
