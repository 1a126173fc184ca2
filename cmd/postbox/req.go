package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// replyJSON is req's -o json: the reply message and its RPC status.
type replyJSON struct {
	messageJSON
	Status     string `json:"status"`
	StatusCode uint32 `json:"status_code"`
	Error      string `json:"error,omitempty"`
}

// replyStatus reads a reply's rpc-status and rpc-error headers.
func replyStatus(m *postbox.Message) (envelope.Code, string) {
	h := m.Header()
	return envelope.ParseCode(h.Get(envelope.Status)), h.Get(envelope.Error)
}

// statusError is an error reply: the server (or, for call, the RPC
// client) answered with a non-OK code.
type statusError struct {
	code envelope.Code
	msg  string
	err  error // the *rpc.Error, for call: it matches context errors
}

func (e *statusError) Error() string { return e.code.String() + ": " + e.msg }

func (e *statusError) Unwrap() error { return e.err }

// parseHeaders reads --header KEY=VALUE flags.
func parseHeaders(hs []string) ([][2]string, error) {
	var out [][2]string
	for _, h := range hs {
		k, v, ok := strings.Cut(h, "=")
		if !ok {
			return nil, usageError{fmt.Errorf("--header %q: want KEY=VALUE", h)}
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// bodyArg is BODY, or all of stdin for "-".
func bodyArg(arg string) ([]byte, error) {
	if arg != "-" {
		return []byte(arg), nil
	}
	b, err := io.ReadAll(os.Stdin)
	if err != nil {
		return nil, fmt.Errorf("reading stdin: %w", err)
	}
	return b, nil
}

// writeBody prints a reply body: raw exactly, text with a newline added
// if it lacks one (a shell command's output usually ends with one).
func writeBody(w io.Writer, b []byte, out string) error {
	if _, err := w.Write(b); err != nil {
		return err
	}
	if out == "text" && (len(b) == 0 || b[len(b)-1] != '\n') {
		_, err := w.Write([]byte{'\n'})
		return err
	}
	return nil
}

func newReq() *cobra.Command {
	var timeout time.Duration
	var headers []string
	var out, contentType, method string
	cmd := &cobra.Command{
		Use:   "req MAILBOX BODY",
		Short: "Send a request and print the reply (BODY - reads stdin)",
		Long: `Send a request to a mailbox (a service, such as one served by
"postbox reply") and print the reply, in one round trip: the request
carries this client's inbox as REPLY_TO and a fresh CORRELATION_ID, and
the command waits for the reply, up to --timeout (which also travels as
the request's DEADLINE, so the server knows when nobody waits any more).

BODY is the request body; "-" reads it from stdin. --header KEY=VALUE
adds a user header (repeatable), --method sets the rpc-method header,
--content-type the CONTENT_TYPE.

-o text prints the reply body (a newline added if it has none), -o raw
prints it exactly, -o json prints the reply as recv -o json does, plus
its status ("status", "status_code", "error").

A reply with an RPC status other than OK (rpc-status header; postbox
reply sends Unknown when its command fails) prints
  postbox: req "MAILBOX": <Code>: <message>
on stderr and exits 1. No reply within --timeout exits 3, saying
whether the request was withdrawn unseen, was being handled, or was
handled without a reply.

` + exitHelp,
		Example: "  postbox req upper 'hello'\n  echo hello | postbox req upper - --timeout 2s -o json",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "text", "raw", "json"); err != nil {
				return err
			}
			hs, err := parseHeaders(headers)
			if err != nil {
				return err
			}
			body, err := bodyArg(args[1])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := dialWithin(ctx, timeout)
			if err != nil {
				return err
			}
			defer c.Close()
			var opts []postbox.CallOption
			for _, h := range hs {
				opts = append(opts, postbox.WithHeader(h[0], h[1]))
			}
			if method != "" {
				opts = append(opts, postbox.WithHeader(envelope.Method, method))
			}
			if contentType != "" {
				opts = append(opts, postbox.ContentType(contentType))
			}
			wctx, cancel := waitContext(ctx, timeout)
			defer cancel()
			m, err := c.Mailbox(args[0]).Call(wctx, body, opts...)
			if err != nil {
				return callError(args[0], err)
			}
			code, msg := replyStatus(m)
			switch out {
			case "json":
				j := replyJSON{messageJSON: toJSON(m), Status: code.String(), StatusCode: uint32(code), Error: msg}
				if err := json.NewEncoder(os.Stdout).Encode(j); err != nil {
					return err
				}
			default:
				if code == envelope.OK {
					if err := writeBody(os.Stdout, m.Body, out); err != nil {
						return err
					}
				}
			}
			if code != envelope.OK {
				return fmt.Errorf("req %q: %w", args[0], &statusError{code: code, msg: msg})
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&timeout, "timeout", 10*time.Second, "give up waiting for the reply after this long (0 = wait forever)")
	f.StringArrayVar(&headers, "header", nil, "user header KEY=VALUE (repeatable)")
	f.StringVar(&method, "method", "", "rpc-method header")
	f.StringVar(&contentType, "content-type", "", "CONTENT_TYPE header, e.g. application/json")
	outputFlag(cmd, &out, "text", "text, raw or json")
	return cmd
}

// callError names the mailbox in a failed call's error unless it does
// already.
func callError(name string, err error) error {
	if strings.Contains(err.Error(), strconv.Quote(name)) {
		return err
	}
	return fmt.Errorf("req %q: %w", name, err)
}
