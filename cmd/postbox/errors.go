package main

// One error format for every command, `postbox: VERB "NAME": cause`, and
// exit codes that tell apart what a script may want to handle (see
// exitHelp in main.go): not found, permission denied, broker
// unreachable, timed out/empty/full, invalid argument.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
)

// Exit codes beside exitOK..exitWouldBlock (main.go), exitEndOfStream
// (eof.go) and exitNoReader (pipe.go); sysexits.h's where one fits.
const (
	exitNotFound    = 66  // EX_NOINPUT: no such mailbox, service, binding, claim
	exitUnavailable = 69  // EX_UNAVAILABLE: no broker reachable, it went away, or its cluster is unreachable
	exitPermission  = 77  // EX_NOPERM: permission denied, unsafe socket
	exitInterrupted = 130 // 128+SIGINT: a client command stopped by Ctrl-C
)

// errUnreachable: no broker could be reached (no socket, connection
// refused, the TCP or TLS peer not answering).
var errUnreachable = errors.New("broker unreachable")

// unreachableError is a dial failure: where the client tried and why.
type unreachableError struct {
	where string // a socket path or URL, else "" (the default sockets)
	err   error
}

func (e *unreachableError) Error() string {
	cause := "no broker is listening"
	var errno syscall.Errno
	if errors.As(e.err, &errno) && errno != syscall.ENOENT && errno != syscall.ECONNREFUSED {
		cause += " (" + errno.Error() + ")"
	}
	if errors.Is(e.err, context.DeadlineExceeded) || errors.Is(e.err, postbox.ErrTimeout) {
		cause = "timed out"
	}
	if e.where == "" {
		return fmt.Sprintf("connect: %s at the default sockets (%s); is \"postbox serve\" running?",
			cause, strings.Join(postbox.DefaultSocketPaths(), ", "))
	}
	return fmt.Sprintf("connect %q: %s; is \"postbox serve\" running?", e.where, cause)
}

func (e *unreachableError) Unwrap() []error { return []error{errUnreachable, e.err} }

// textError is err with other words: it still matches what err matches.
type textError struct {
	text string
	err  error
}

func (e *textError) Error() string { return e.text }

func (e *textError) Unwrap() error { return e.err }

// dialError says what a failed dial means for the command: an unsafe
// socket, a bad TLS file or a refused handshake stay as they are; any
// other failure to connect is the broker being unreachable.
func dialError(err error) error {
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, postbox.ErrUnsafeSocket) || errors.Is(err, postbox.ErrTLS) ||
		errors.Is(err, postbox.ErrHandshake) || errors.Is(err, postbox.ErrVersion) || errors.Is(err, postbox.ErrPermission) ||
		errors.Is(err, postbox.ErrLimit) || errors.Is(err, postbox.ErrInvalid) || errors.Is(err, context.Canceled) {
		return err
	}
	where := urlFlag
	if where == "" {
		where = socketFlag
	}
	if where == "" {
		where = os.Getenv(postbox.SocketEnv)
	}
	if where == "" {
		where = os.Getenv(postbox.URLEnv)
	}
	return &unreachableError{where: where, err: err}
}

// exitCodeOf is the exit status for err (not nil).
func exitCodeOf(err error) int {
	var ue usageError
	var es exitStatus // recv --exec: the command's status (files.go)
	switch {
	case errors.As(err, &es):
		return es.code
	case errors.As(err, &ue), strings.HasPrefix(err.Error(), "unknown command"), errors.Is(err, postbox.ErrInvalid):
		return exitUsage
	case errors.Is(err, errUnreachable):
		return exitUnavailable
	case errors.Is(err, postbox.ErrEndOfStream):
		return exitEndOfStream
	case errors.Is(err, postbox.ErrNoReader):
		return exitNoReader
	// What was missing or refused says more than the deadline that
	// passed while retrying (call --semantics exactly-once).
	case errors.Is(err, postbox.ErrNotFound):
		return exitNotFound
	case errors.Is(err, postbox.ErrPermission), errors.Is(err, postbox.ErrUnsafeSocket):
		return exitPermission
	case errors.Is(err, postbox.ErrTimeout), errors.Is(err, postbox.ErrEmpty), errors.Is(err, postbox.ErrFull),
		errors.Is(err, context.DeadlineExceeded):
		return exitWouldBlock
	case errors.Is(err, errNotWithdrawn): // cancel.go
		return exitWouldBlock
	case errors.Is(err, postbox.ErrClosed), errors.Is(err, postbox.ErrUnavailable):
		return exitUnavailable
	}
	return exitError
}

var (
	// verbName is the start of a message already in the format: lower-
	// case words and a quoted name (`receive from "jobs"`, `connect
	// "/run/x"`), or a bare verb before a colon (`connect:`).
	verbName = regexp.MustCompile(`^[a-z][a-z -]*"[^"]*"|^[a-z][a-z]*:`)
	// Go package prefixes that are no part of what a user reads.
	goPrefix = regexp.MustCompile(`\b(postbox|wire|topic|broker|rpc|envelope|mux|bufio\.Scanner|json): `)
	// A number flag that is not one: pflag quotes strconv's error.
	strconvErr = regexp.MustCompile(`strconv\.Parse\w+: parsing "[^"]*": (invalid syntax|value out of range)`)
	// The connection's end, with the socket call that saw it.
	connLost   = regexp.MustCompile(`(closed: )?connection to broker lost: .*`)
	frameLarge = regexp.MustCompile(`frame too large: (\d+) bytes, limit (\d+)`)
	// pflag's wording for a flag value it cannot parse.
	flagValue = regexp.MustCompile(`invalid argument "([^"]*)" for "(?:-\w, )?(--[\w-]+)" flag`)
)

// cmdVerbs are the verbs the client's errors use for a command's name.
var cmdVerbs = map[string]string{"send": "send to", "recv": "receive from", "rm": "destroy"}

// errorText is err as `VERB "NAME": cause`, without the "postbox: " the
// caller prints: Go package prefixes and repeated VERB "NAME" parts
// taken out, a timeout always worded "timed out", and where the error does
// not say what failed, the command and its first argument in front.
func errorText(cmd *cobra.Command, err error) string {
	s := goPrefix.ReplaceAllString(err.Error(), "")
	s = strings.TrimPrefix(s, "invalid argument: ")
	s = strconvErr.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasSuffix(m, "out of range") {
			return "out of range"
		}
		return "not a number"
	})
	s = frameLarge.ReplaceAllString(s, "a message of $1 bytes (with its headers) is larger than the broker's limit of $2 bytes")
	s = flagValue.ReplaceAllString(s, `$2 "$1"`)
	s = connLost.ReplaceAllString(s, "the broker went away (connection lost)")
	s = strings.ReplaceAll(s, "token too long", "line too long")
	s = strings.ReplaceAll(s, "context canceled", "interrupted")
	s = strings.ReplaceAll(s, "canceled: interrupted", "interrupted")
	// One wording for every timeout, whoever noticed it.
	for _, t := range []string{"canceled (deadline)", "context deadline exceeded", "i/o timeout", "deadline exceeded"} {
		s = strings.ReplaceAll(s, t, "timed out")
	}
	parts := strings.Split(s, ": ")
	kept := parts[:1]
	for _, p := range parts[1:] {
		if !sameStep(kept[len(kept)-1], p) {
			kept = append(kept, p)
		}
	}
	s = strings.Join(kept, ": ")
	var ae *argsError
	if errors.As(err, &ae) {
		// It says which command already.
	} else if !verbName.MatchString(s) && cmd != nil && cmd != cmd.Root() && !strings.HasPrefix(s, "unknown command") {
		s = commandName(cmd) + ": " + s
	}
	return s
}

// sameStep reports whether b repeats a, as a wrapped error that names
// what failed again does: `publish to "x"` then `publish "x"`.
func sameStep(a, b string) bool {
	if a == b {
		return true
	}
	va, vb := verbName.FindString(a), verbName.FindString(b)
	if va == "" || vb == "" || va != a || vb != b {
		return false
	}
	qa, qb := a[strings.Index(a, `"`):], b[strings.Index(b, `"`):]
	return qa == qb && strings.Fields(a)[0] == strings.Fields(b)[0]
}

// commandName is `VERB "NAME"` for cmd: its verb and, when it takes
// one, its first argument.
func commandName(cmd *cobra.Command) string {
	verb := cmd.Name()
	if v, ok := cmdVerbs[verb]; ok {
		verb = v
	}
	verb = parentVerb(cmd) + verb
	if args := cmd.Flags().Args(); len(args) > 0 && len(strings.Fields(cmd.Use)) > 1 {
		return fmt.Sprintf("%s %q", verb, args[0])
	}
	return verb
}

// argsError: a command got the wrong arguments; the message says what
// it takes (its Use line) instead of naming the first argument.
type argsError struct {
	path string // "pipe read"
	use  string
	err  error
}

func (e *argsError) Error() string {
	if want := strings.Fields(e.use); len(want) > 1 && !strings.HasPrefix(e.err.Error(), "want ") {
		return fmt.Sprintf("%s: want %s (%v)", e.path, strings.Join(want[1:], " "), e.err)
	}
	return e.path + ": " + e.err.Error()
}

func (e *argsError) Unwrap() error { return e.err }

// argsAreUsage makes a wrong number or shape of arguments a usage error
// (exit 2) on every command, subcommands too.
func argsAreUsage(c *cobra.Command) {
	if c.Args != nil {
		args := c.Args
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				if strings.HasPrefix(err.Error(), "unknown command") {
					return usageError{err}
				}
				path := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
				return usageError{&argsError{path: path, use: cmd.Use, err: err}}
			}
			return nil
		}
	}
	for _, s := range c.Commands() {
		argsAreUsage(s)
	}
}

// parentVerb is "pipe " for "postbox pipe read": the words of a
// subcommand's path before its own name.
func parentVerb(cmd *cobra.Command) string {
	if cmd == nil {
		return ""
	}
	if p := cmd.Parent(); p != nil && p != cmd.Root() {
		return p.Name() + " "
	}
	return ""
}
