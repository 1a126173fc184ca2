package postbox

import (
	"os"
	"path/filepath"
	"strconv"
)

// SocketEnv names the environment variable that overrides the socket path.
const SocketEnv = "POSTBOX_SOCKET"

// DefaultSocketPath returns where the broker listens unless told
// otherwise: $POSTBOX_SOCKET, else $XDG_RUNTIME_DIR/postbox/postbox.sock,
// else /tmp/postbox-<uid>/postbox.sock. The broker and every client use
// the same rule.
func DefaultSocketPath() string {
	if p := os.Getenv(SocketEnv); p != "" {
		return p
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "postbox", "postbox.sock")
	}
	return filepath.Join(os.TempDir(), "postbox-"+strconv.Itoa(os.Getuid()), "postbox.sock")
}
