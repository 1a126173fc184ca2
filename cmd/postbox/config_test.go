package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// writeConfig writes a --config file for t and returns its path.
func writeConfig(t *testing.T, json string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "postbox.json")
	if err := os.WriteFile(path, []byte(json), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestServeConfigMaxFrame: `serve --config` reads max_frame at start (it
// is not one of the reloadable limits), the --max-frame flag wins over
// it, and a SIGHUP with another max_frame keeps the one in force and
// says so.
func TestServeConfigMaxFrame(t *testing.T) {
	const frame = 2 << 20
	t.Run("start", func(t *testing.T) {
		file := writeConfig(t, `{"max_frame": 2097152, "max_message_bytes": 1048576}`)
		p := serveWith(t, "--config", file)
		c := p.Dial(t)
		if c.MaxFrame() != frame {
			t.Fatalf("max frame told to clients = %d, want %d from the config file", c.MaxFrame(), frame)
		}

		if err := os.WriteFile(file, []byte(`{"max_frame": 3145728, "max_message_bytes": 1048576}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := p.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		p.WaitLog(t, "max_frame cannot change without a restart")
		p.WaitLog(t, "SIGHUP: configuration reloaded")
		if c := p.Dial(t); c.MaxFrame() != frame {
			t.Fatalf("max frame after SIGHUP = %d, want %d (not reloadable)", c.MaxFrame(), frame)
		}
	})
	t.Run("flag wins", func(t *testing.T) {
		file := writeConfig(t, `{"max_frame": 2097152, "max_message_bytes": 1048576}`)
		p := serveWith(t, "--config", file, "--max-frame", "3145728")
		if c := p.Dial(t); c.MaxFrame() != 3<<20 {
			t.Fatalf("max frame = %d, want 3145728 from --max-frame", c.MaxFrame())
		}
	})
	t.Run("too small", func(t *testing.T) {
		// A max_frame with no room for max_message_bytes is a usage
		// error, not silently grown.
		file := writeConfig(t, `{"max_frame": 1048576, "max_message_bytes": 1048576}`)
		r := run(t, nil, "", "serve", "--memory", "--socket", filepath.Join(t.TempDir(), "s", "postbox.sock"), "--config", file)
		if r.code != exitUsage {
			t.Fatalf("serve with max_frame = max_message_bytes: exit %d, want %d; stderr %q", r.code, exitUsage, r.stderr)
		}
	})
}

// serveWith runs `postbox serve args...` for t, like startBroker.
func serveWith(t *testing.T, args ...string) *testbroker.Process {
	t.Helper()
	testbroker.CheckGoroutines(t)
	return testbroker.StartProcess(t, bin, args...)
}
