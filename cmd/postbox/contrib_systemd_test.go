package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/postbox-ipc/postbox"
)

// The unit files in contrib/systemd are checked against the code they
// drive, and by systemd's own verifier where it is installed.

// unitKeys reads a unit file's Key=Value lines (comments and sections
// dropped; a key given twice keeps both values).
func unitKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not Key=Value", path, line)
		}
		keys[k] = append(keys[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

const contribDir = "../../contrib/systemd"

func TestContribUnitsMatchWhatServeExpects(t *testing.T) {
	sock := unitKeys(t, filepath.Join(contribDir, "postbox.socket"))
	if got := sock["ListenStream"]; !slices.Equal(got, []string{postbox.SystemSocket}) {
		t.Errorf("postbox.socket listens on %q; clients look for the system-wide socket at %s", got, postbox.SystemSocket)
	}
	if got := sock["SocketMode"]; !slices.Equal(got, []string{"0666"}) {
		t.Errorf("postbox.socket SocketMode %q; the system-wide socket is 0666", got)
	}
	if got := sock["DirectoryMode"]; !slices.Equal(got, []string{"0755"}) {
		t.Errorf("postbox.socket DirectoryMode %q; clients refuse a directory writable by group or others, and need to enter it", got)
	}
	tls := unitKeys(t, filepath.Join(contribDir, "postbox-tls.socket"))
	if got := tls["FileDescriptorName"]; !slices.Equal(got, []string{"tls"}) {
		t.Errorf("postbox-tls.socket FileDescriptorName %q; serve serves a TCP socket as TLS only if it is named tls", got)
	}
	for _, name := range []string{"postbox.socket", "postbox-tls.socket", "user/postbox.socket"} {
		if got := unitKeys(t, filepath.Join(contribDir, name))["Accept"]; !slices.Equal(got, []string{"no"}) {
			t.Errorf("%s: Accept=%q; serve refuses connected sockets (Accept=yes)", name, got)
		}
	}
	for _, name := range []string{"postbox.service", "user/postbox.service"} {
		svc := unitKeys(t, filepath.Join(contribDir, name))
		if got := svc["Type"]; !slices.Equal(got, []string{"notify"}) {
			t.Errorf("%s: Type=%q; serve sends READY=1", name, got)
		}
		if len(svc["WatchdogSec"]) != 1 {
			t.Errorf("%s: no WatchdogSec; serve pings at half of it", name)
		}
		if len(svc["RuntimeDirectory"]) != 0 {
			t.Errorf("%s: RuntimeDirectory= would remove the socket unit's directory when the service stops", name)
		}
	}
}

func TestContribUnitsPassSystemdAnalyzeVerify(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	for _, user := range []bool{false, true} {
		dir := t.TempDir()
		src, args := contribDir, []string{"verify"}
		if user {
			src, args = filepath.Join(contribDir, "user"), []string{"--user", "verify"}
		}
		ents, err := os.ReadDir(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(src, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			// ExecStart must name an executable that exists: the one built.
			b = []byte(strings.ReplaceAll(string(b), "/usr/local/bin/postbox", bin))
			if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
				t.Fatal(err)
			}
			args = append(args, "./"+e.Name())
		}
		cmd := exec.Command(tool, args...)
		cmd.Dir = dir
		if user {
			rt := t.TempDir()
			os.Chmod(rt, 0o700)
			cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+rt)
		}
		// Complaints about the units name them; anything else is about
		// the machine the verifier runs on.
		if out, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(out), "postbox") {
			t.Errorf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
