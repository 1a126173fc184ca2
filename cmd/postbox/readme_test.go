package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// readyAfter says, for a command the README runs in the background, how
// the test waits until it is ready before the next line (a person typing
// the next line gives it that time): the shell loop to run, by a pattern
// of the line.
// inBackground matches a line run with &, a comment after it or not.
var inBackground = regexp.MustCompile(`&\s*(#.*)?$`)

var readyAfter = []struct {
	line  *regexp.Regexp
	until string
}{
	{regexp.MustCompile(`postbox reply (\S+)`), `postbox stat $1 -o json 2>/dev/null | grep -q '"consumers":[1-9]'`},
	{regexp.MustCompile(`postbox sub `), `postbox ls --subjects --no-headers | grep -q .`},
}

// TestREADMEQuickStartRunsAsWritten runs the Quick start's shell blocks
// after the install and serve ones, line by line as written, with the
// binary under test on PATH and a real broker, and checks what they say
// they print.
func TestREADMEQuickStartRunsAsWritten(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash")
	}
	if _, err := os.Stat("/etc/hostname"); err != nil {
		t.Skip("the pipe example archives /etc/hostname")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	start := strings.Index(s, "## Quick start\n")
	end := start + 1 + strings.Index(s[start+1:], "\n## ")
	if start < 0 || end <= start {
		t.Fatal("README.md has no Quick start section")
	}
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(s[start:end], -1)
	if len(blocks) < 4 || !strings.Contains(blocks[0][1], "go install ./cmd/postbox") || strings.TrimSpace(blocks[1][1]) != "postbox serve" {
		t.Fatalf("the Quick start's blocks are not install, serve, then examples: %q", blocks)
	}
	var script strings.Builder
	script.WriteString("set -e -o pipefail\n")
	for _, b := range blocks[2:] {
		for _, line := range strings.Split(b[1], "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			script.WriteString(line + "\n")
			if !inBackground.MatchString(line) {
				continue
			}
			script.WriteString("pids+=($!)\n")
			if strings.Contains(line, "postbox sub ") {
				script.WriteString("sub=$!\n")
			}
			for _, r := range readyAfter {
				if r.line.MatchString(line) {
					until := r.line.ReplaceAllString(r.line.FindString(line), r.until)
					script.WriteString("until " + until + "; do sleep 0.05; done\n")
				}
			}
		}
	}
	script.WriteString("wait $sub\n")                               // the subscriber ends after its one event
	script.WriteString("kill \"${pids[@]}\" 2>/dev/null || true\n") // the replier

	p := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"), "POSTBOX_SOCKET="+p.Socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = testbroker.HangGuard // a child left holding stdout does not hang the test
	err = cmd.Run()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // whatever the script left running
	if err != nil {
		t.Fatalf("the Quick start: %v\n%s\n--- script:\n%s", err, out.String(), script.String())
	}
	for _, want := range []string{`"body":"1"`, "NAME  KIND", "HELLO\n", "order 7\n", "hostname\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the Quick start's output lacks %q:\n%s", want, out.String())
		}
	}
}
