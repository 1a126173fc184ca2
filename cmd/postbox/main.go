// Command postbox is the postbox broker and its command-line client.
//
//	postbox serve                         run the broker
//	postbox create NAME [flags]           make a mailbox
//	postbox send NAME [BODY] [flags]      send a message (body from stdin if absent)
//	postbox recv NAME [flags]             receive messages
//	postbox req NAME BODY                 send a request, print the reply
//	postbox reply NAME -- CMD ARGS...     serve requests with a command
//	postbox work NAME -- CMD ARGS...      run a command per message, ack on success
//	postbox call SERVICE METHOD JSON      call a JSON-codec RPC method
//	postbox ls / stat NAME / rm NAME...   inspect and remove, like ipcs / ipcrm
//	postbox usage                         per-uid usage and quotas, like ipcs -u
//	postbox acl NAME [--add P=rw]         access entries for remote (TLS) principals
//	postbox cancel NAME --id N            withdraw messages you sent, not yet taken
//	postbox pub SUBJECT BODY / sub PATTERN publish and subscribe
//	postbox pipe create|write|read NAME   byte streams with pipe semantics
//	postbox info / top / ls --watch       the broker process, a live view
//	postbox version / man / completion    build info, man pages, shell completion
//	postbox bench                         measure the broker against a raw socket
//
// Exit status: see exitHelp below.
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
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
  0    success
  1    error (any other failure)
  2    usage error: an unknown flag or command, a bad name, --type 0, ...
  3    timed out, mailbox empty (--nowait) or full (--nowait)
  4    end of stream: the mailbox is closed for sending (send --eof) and drained
  66   not found: no such mailbox, service, binding or claim (EX_NOINPUT)
  69   broker unreachable: none listening at the socket or URL, it went
       away during the command, or its cluster is unreachable (EX_UNAVAILABLE)
  77   permission denied, or an unsafe socket refused (EX_NOPERM)
  130  interrupted by Ctrl-C (SIGINT; client commands, even those that then
       stop cleanly, as recv --follow, work and reply do; SIGTERM: their own)
  141  pipe write with no reader left (as a writer killed by SIGPIPE)
Errors print one line: postbox: VERB "NAME": cause.`

// usageError marks errors in how the command was called.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func main() {
	// `postbox bench shm` runs its peer as a second copy of this binary.
	shmbench.MaybeRunPeer()
	root := newRoot()
	// Client commands end cleanly on SIGINT/SIGTERM; serve installs its
	// own handlers, which take precedence.
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	var interrupted atomic.Bool
	target, _, _ := root.Find(os.Args[1:])
	client := target == nil || target.Name() != "serve"
	go func() {
		for s := range sigs {
			if s == os.Interrupt {
				interrupted.Store(true)
			}
			cancel()
		}
	}()
	cmd, err := root.ExecuteContextC(ctx)
	code := exitCode(cmd, err)
	if interrupted.Load() && client {
		code = exitInterrupted
	}
	os.Exit(code)
}

// exitCode prints err, if any, and says how to exit for it (errors.go).
func exitCode(cmd *cobra.Command, err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "postbox:", errorText(cmd, err))
	return exitCodeOf(err)
}

func trimPrefix(s string) string {
	const p = "postbox: "
	for len(s) >= len(p) && s[:len(p)] == p {
		s = s[len(p):]
	}
	return s
}

var socketFlag, urlFlag, tlsCertFlag, tlsKeyFlag, tlsCAFlag string

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:     "postbox",
		Version: readBuildVersion().String(),
		Example: "  postbox serve &\n  postbox create jobs && echo hello | postbox send jobs && postbox recv jobs",
		Short:   "Named mailboxes between processes, with kernel-verified senders",
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

A remote broker: --url tls://HOST:PORT (else $POSTBOX_URL, when neither
--socket nor $POSTBOX_SOCKET is given) with this client's certificate and
key, --tls-cert and --tls-key ($POSTBOX_TLS_CERT, $POSTBOX_TLS_KEY), and
the CA that signed the broker's certificate, --tls-ca ($POSTBOX_TLS_CA).
The broker knows a TLS client by its certificate's URI SAN, else its
subject DN; see "postbox acl --help". --url tcp://127.0.0.1:PORT reaches
a broker listening on loopback with --insecure; unix:///PATH is --socket.

` + exitHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&socketFlag, "socket", "", "broker socket path, used as given (default $POSTBOX_SOCKET, else the per-user then the system-wide socket; serve: see its help)")
	root.PersistentFlags().StringVar(&urlFlag, "url", "", "broker URL: tls://HOST:PORT, tcp://127.0.0.1:PORT or unix:///PATH (default $POSTBOX_URL)")
	root.PersistentFlags().StringVar(&tlsCertFlag, "tls-cert", "", "this client's certificate for tls:// (PEM; default $POSTBOX_TLS_CERT)")
	root.PersistentFlags().StringVar(&tlsKeyFlag, "tls-key", "", "the key of --tls-cert (PEM; default $POSTBOX_TLS_KEY)")
	root.PersistentFlags().StringVar(&tlsCAFlag, "tls-ca", "", "the CA that signed the broker's certificate (PEM; default $POSTBOX_TLS_CA, else the system's)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.SetVersionTemplate("postbox {{.Version}}\n")
	root.AddCommand(newServe(), newCreate(), newRm(), newLs(), newStat(), newSend(), newRecv(), newReq(), newReply(), newCall(),
		newChmod(), newACL(), newBench(), newUsage())
	root.AddCommand(newCancel())
	root.AddCommand(newPipe())
	root.AddCommand(newJoin(), newLeave(), newWatch()) // groups.go
	root.AddCommand(newWork())
	root.AddCommand(newInfo())
	root.AddCommand(newPub(), newSub(), newBind(), newTopic()) // pubsub.go
	root.AddCommand(newTop())
	root.AddCommand(newVersion(), newMan())
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	builtinExamples(root)   // completion.go
	completeOutputs(root)   // output.go
	completeMailboxes(root) // completion.go
	argsAreUsage(root)      // errors.go
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
	opts, err := dialOptions()
	if err != nil {
		return nil, err
	}
	c, err := postbox.Dial(ctx, append(opts, postbox.WithName("postbox-cli"))...)
	if err != nil {
		return nil, dialError(err) // errors.go
	}
	return c, nil
}

// dialOptions say where the broker is: --url, else --socket, else what
// postbox.Dial finds ($POSTBOX_SOCKET, $POSTBOX_URL, the default
// sockets), with the --tls-* files (else $POSTBOX_TLS_*).
func dialOptions() ([]postbox.DialOption, error) {
	var opts []postbox.DialOption
	switch {
	case urlFlag != "":
		opts = append(opts, postbox.WithURL(urlFlag))
	case socketFlag != "":
		opts = append(opts, postbox.WithSocket(socketFlag))
	}
	cfg, err := clientTLS()
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		opts = append(opts, postbox.WithTLS(cfg))
	}
	return opts, nil
}

// clientTLS is the TLS configuration of the --tls-* flags (each else its
// $POSTBOX_TLS_* variable); nil if none is given (Dial then reads the
// variables itself).
func clientTLS() (*tls.Config, error) {
	if tlsCertFlag == "" && tlsKeyFlag == "" && tlsCAFlag == "" {
		return nil, nil
	}
	env := func(v, name string) string {
		if v == "" {
			return os.Getenv(name)
		}
		return v
	}
	cfg, err := postbox.ClientTLSConfig(env(tlsCertFlag, postbox.TLSCertEnv), env(tlsKeyFlag, postbox.TLSKeyEnv), env(tlsCAFlag, postbox.TLSCAEnv))
	if err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}
