// Command postbox is the postbox broker and its command-line client.
//
//	postbox serve                         run the broker
//	postbox create NAME [flags]           make a mailbox
//	postbox send NAME [BODY] [flags]      send a message (body from stdin if absent)
//	postbox recv NAME [flags]             receive messages
//	postbox req NAME BODY                 send a request, print the reply
//	postbox reply NAME -- CMD ARGS...     serve requests with a command
//	postbox call SERVICE METHOD JSON      call a JSON-codec RPC method
//	postbox ls / stat NAME / rm NAME...   inspect and remove, like ipcs / ipcrm
//	postbox usage                         per-uid usage and quotas, like ipcs -u
//	postbox bench                         measure the broker against a raw socket
//
// Exit status: 0 success, 1 error, 2 usage, 3 timed out, empty or full.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/shm/shmbench"
)

// Exit codes.
const (
	exitOK         = 0
	exitError      = 1
	exitUsage      = 2
	exitWouldBlock = 3 // timed out, empty or full
)

const exitHelp = `Exit status:
  0  success
  1  error (not found, permission denied, broker unreachable, ...)
  2  usage error
  3  timed out, mailbox empty (--nowait) or full (--nowait)`

// usageError marks errors in how the command was called.
type usageError struct{ error }

func main() {
	// `postbox bench shm` runs its peer as a second copy of this binary.
	shmbench.MaybeRunPeer()
	root := newRoot()
	// Client commands end cleanly on SIGINT/SIGTERM; serve installs its
	// own handlers, which take precedence.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root.ExecuteContext(ctx)
	stop()
	os.Exit(exitCode(root, err))
}

func exitCode(root *cobra.Command, err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "postbox:", trimPrefix(err.Error()))
	var ue usageError
	switch {
	case errors.As(err, &ue), strings.HasPrefix(err.Error(), "unknown command"):
		return exitUsage
	case errors.Is(err, postbox.ErrTimeout), errors.Is(err, postbox.ErrEmpty), errors.Is(err, postbox.ErrFull),
		errors.Is(err, context.DeadlineExceeded):
		return exitWouldBlock
	}
	return exitError
}

func trimPrefix(s string) string {
	const p = "postbox: "
	for len(s) >= len(p) && s[:len(p)] == p {
		s = s[len(p):]
	}
	return s
}

var socketFlag string

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "postbox",
		Short: "Named mailboxes between processes, with kernel-verified senders",
		Long: `postbox is an inter-process communication system for Linux: a broker that
keeps named mailboxes, and this command to run it and to use them from a shell.

Client commands connect to --socket PATH, else $POSTBOX_SOCKET, as given.
Otherwise they try the per-user socket, $XDG_RUNTIME_DIR/postbox/postbox.sock
(else ${TMPDIR:-/tmp}/postbox-<uid>/postbox.sock), then the system-wide
broker's /run/postbox/postbox.sock ($POSTBOX_SYSTEM_SOCKET moves it),
checking each first: a path with no socket, or no broker listening, is
passed over; one whose directory is a symlink, is not yours or root's, or
is writable by group or others, or whose socket is not a socket owned by
you or root, is refused (never dialled, nothing tried after it).
"postbox serve --help" says where the broker listens.

` + exitHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&socketFlag, "socket", "", "broker socket path, used as given (default $POSTBOX_SOCKET, else the per-user then the system-wide socket; serve: see its help)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newServe(), newCreate(), newRm(), newLs(), newStat(), newSend(), newRecv(), newReq(), newReply(), newCall(), newChmod(), newBench(), newUsage())
	for _, c := range root.Commands() {
		if c.Args != nil {
			args := c.Args
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return usageError{err}
				}
				return nil
			}
		}
	}
	return root
}

func socketPath() string {
	if socketFlag != "" {
		return socketFlag
	}
	return postbox.DefaultSocketPath()
}

// dial connects to the broker for a client command.
func dial(ctx context.Context) (*postbox.Client, error) {
	return postbox.Dial(ctx, postbox.WithSocket(socketPath()), postbox.WithName("postbox-cli"))
}
