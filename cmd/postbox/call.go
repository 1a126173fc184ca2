package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// callJSON is call's -o json.
type callJSON struct {
	Reply      json.RawMessage `json:"reply,omitempty"` // the reply body when it is JSON
	Body       *string         `json:"body,omitempty"`  // else as text
	Status     string          `json:"status"`
	StatusCode uint32          `json:"status_code"`
	Error      string          `json:"error,omitempty"`
	Semantics  string          `json:"semantics"`
	Attempts   int             `json:"attempts,omitempty"`
	Cached     bool            `json:"cached,omitempty"`
	Header     rpc.Metadata    `json:"header,omitempty"`
	Trailer    rpc.Metadata    `json:"trailer,omitempty"`
	Server     *senderJS       `json:"server,omitempty"` // who sent the reply
}

func newCall() *cobra.Command {
	var timeout time.Duration
	var semantics, out string
	var meta []string
	cmd := &cobra.Command{
		Use:   "call SERVICE METHOD JSON",
		Short: "Call a method of a JSON-codec RPC service (JSON - reads stdin)",
		Long: `Call METHOD of SERVICE with the JSON request body, as package rpc's
clients do, and print the JSON reply. "-" reads the request from stdin.

--semantics says what the call promises:
  maybe          one attempt, never retried: the method runs at most once
  at-least-once  retried with backoff until a reply or --timeout: it may
                 run more than once
  exactly-once   retried, and the server's reply cache runs it once while
                 the server process lives
--timeout is the call's deadline; it travels with the request and is the
handler's. --metadata KEY=VALUE adds request metadata (repeatable).

-o text prints the reply body; -o json prints {"reply": ..., "status",
"status_code", "error", "semantics", "attempts", "cached", "header",
"trailer", "server"}. An error status prints
  postbox: call "SERVICE" METHOD: <Code>: <message>
and exits 1 (3 for DeadlineExceeded: no reply in time).

` + exitHelp,
		Example: `  postbox call calc Add '{"a": 2, "b": 3}'
  postbox call bank Transfer - --semantics exactly-once --timeout 5s < transfer.json`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "text", "json"); err != nil {
				return err
			}
			sem, err := rpc.ParseSemantics(semantics)
			if err != nil || semantics == "" {
				return usageError{fmt.Errorf("--semantics %q: want maybe, at-least-once or exactly-once", semantics)}
			}
			kv, err := parseHeaders(meta)
			if err != nil {
				return err
			}
			md := rpc.Metadata{}
			for _, p := range kv {
				md.Add(p[0], p[1])
			}
			body, err := bodyArg(args[2])
			if err != nil {
				return err
			}
			if !json.Valid(body) {
				return usageError{fmt.Errorf("the request is not JSON: %.64q", body)}
			}
			ctx := cmd.Context()
			c, err := dialWithin(ctx, timeout)
			if err != nil {
				return err
			}
			defer c.Close()
			wctx, cancel := waitContext(ctx, timeout)
			defer cancel()
			service, method := args[0], args[1]
			rep, err := rpc.NewClient(c).Invoke(wctx, service, method, body, rpc.WithSemantics(sem),
				rpc.WithContentType(envelope.ContentJSON), rpc.WithMetadata(md))
			var rerr *rpc.Error
			if err != nil && !errors.As(err, &rerr) {
				return fmt.Errorf("call %q %s: %w", service, method, err)
			}
			code, msg := rpc.CodeOf(err), ""
			if rerr != nil {
				msg = rerr.Message
			}
			if out == "json" {
				j := callJSON{Status: code.String(), StatusCode: uint32(code), Error: msg, Semantics: sem.String()}
				if rep != nil {
					j.Attempts, j.Cached, j.Header, j.Trailer = rep.Attempts, rep.Cached, rep.Header, rep.Trailer
					if b := bytes.TrimSpace(rep.Body); json.Valid(b) {
						j.Reply = b
					} else if len(b) > 0 {
						s := string(rep.Body)
						j.Body = &s
					}
					if m := rep.Message; m != nil {
						j.Server = &senderJS{m.Sender.Kind.String(), m.Sender.UID, m.Sender.GID, m.Sender.PID, m.Sender.Endpoint}
					}
				}
				if err := json.NewEncoder(os.Stdout).Encode(j); err != nil {
					return err
				}
			} else if err == nil {
				if err := writeBody(os.Stdout, rep.Body, "text"); err != nil {
					return err
				}
			}
			if errors.Is(err, postbox.ErrNotFound) {
				return &textError{fmt.Sprintf("call %q %s: no such service (no server has started)", service, method), err}
			}
			if err != nil {
				return fmt.Errorf("call %q %s: %w", service, method, &statusError{code: code, msg: msg, err: err})
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&semantics, "semantics", "maybe", "maybe, at-least-once or exactly-once")
	f.DurationVar(&timeout, "timeout", 10*time.Second, "the call's deadline (0 = none)")
	f.StringArrayVar(&meta, "metadata", nil, "request metadata KEY=VALUE (repeatable)")
	outputFlag(cmd, &out, "text", "text or json")
	return cmd
}
