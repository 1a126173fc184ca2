package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
)

// postbox cancel: withdraw one's own queued messages (WITHDRAW), and the
// send flags that go with it: --urgent and --print-id.

// errNotWithdrawn: cancel ran, but not every message it named (or found)
// was withdrawn. It exits 3.
var errNotWithdrawn = errors.New("not every message was withdrawn")

const cancelExitHelp = `Exit status:
  0  every message named was withdrawn (with --header or
     --correlation-id: at least one matched, and every one was)
  1  error (permission denied: an id names a message you did not send and
     the mailbox is not yours; no such mailbox; broker unreachable, ...)
  2  usage error
  3  some message was not withdrawn: in progress (a receiver holds it),
     gone (delivered, expired or withdrawn before) or no such message;
     or nothing matched`

func newCancel() *cobra.Command {
	var ids []string
	var header, correlationID, output string
	var anySender bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "cancel MAILBOX (--id N... | --header KEY=VALUE | --correlation-id ID)",
		Short: "Withdraw messages you sent that nobody has taken yet",
		Long: `Withdraw queued messages from a mailbox: by id (--id, repeatable or
comma-separated: the ids "postbox send --print-id" prints), or every one of
your messages there with a user header (--header KEY=VALUE) or a
CORRELATION_ID (--correlation-id).

Only the messages you sent (the same uid, or TLS name) can be withdrawn,
unless the mailbox is yours: its owner (and root) may withdraw anybody's by
id, and by a header with --any-sender. An id naming someone else's message
fails the whole command (permission denied) and withdraws nothing.

It prints one line per message: its id and what became of it:
  withdrawn        it was queued; no receiver will see it
  in progress      a receiver holds it (leased): that receiver is shown
  gone             no longer in the mailbox: delivered, expired, withdrawn
  no such message  the mailbox never had that id
-o json prints one JSON object per line instead.

` + cancelExitHelp,
		Example: "  id=$(postbox send jobs 'build #42' --print-id)\n  postbox cancel jobs --id \"$id\"\n  postbox cancel jobs --header batch=7",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			given := 0
			for _, set := range []bool{len(ids) > 0, header != "", correlationID != ""} {
				if set {
					given++
				}
			}
			if given != 1 {
				return usageError{errors.New("give exactly one of --id, --header and --correlation-id")}
			}
			if anySender && len(ids) > 0 {
				return usageError{errors.New("--any-sender goes with --header or --correlation-id (by id the owner may withdraw anybody's)")}
			}
			if output != "" && output != "json" {
				return usageError{fmt.Errorf("-o %q: the only format is json", output)}
			}
			var nums []uint64
			for _, s := range ids {
				for _, f := range strings.Split(s, ",") {
					n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
					if err != nil || n == 0 {
						return usageError{fmt.Errorf("--id %q: want a message id (a positive number)", f)}
					}
					nums = append(nums, n)
				}
			}
			var match postbox.Match
			switch {
			case header != "":
				k, v, ok := strings.Cut(header, "=")
				if !ok || k == "" {
					return usageError{fmt.Errorf("--header %q: want KEY=VALUE", header)}
				}
				match = postbox.MatchHeader(k, v)
			case correlationID != "":
				match = postbox.MatchCorrelationID([]byte(correlationID))
			}
			if anySender {
				match = match.AnySender()
			}
			ctx := cmd.Context()
			c, err := dialWithin(ctx, timeout)
			if err != nil {
				return err
			}
			defer c.Close()
			wctx, cancel := waitContext(ctx, timeout)
			defer cancel()
			mb := c.Mailbox(args[0])
			var outs []postbox.Withdrawal
			if nums != nil {
				outs, err = mb.Withdraw(wctx, nums...)
			} else {
				outs, err = mb.WithdrawMatching(wctx, match)
			}
			printWithdrawals(outs, output == "json")
			if err != nil {
				return err
			}
			missed := 0
			for _, o := range outs {
				if o.Outcome != postbox.OutcomeWithdrawn {
					missed++
				}
			}
			switch {
			case len(outs) == 0:
				return fmt.Errorf("cancel in %q: no message of yours matched: %w", args[0], errNotWithdrawn)
			case missed > 0:
				return fmt.Errorf("cancel in %q: %d of %d messages: %w", args[0], missed, len(outs), errNotWithdrawn)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&ids, "id", nil, "a message id to withdraw (repeatable, or comma-separated)")
	f.StringVar(&header, "header", "", "withdraw your messages with this user header KEY=VALUE")
	f.StringVar(&correlationID, "correlation-id", "", "withdraw your messages with this CORRELATION_ID")
	f.BoolVar(&anySender, "any-sender", false, "with --header or --correlation-id: everybody's messages (the mailbox's owner only)")
	f.StringVarP(&output, "output", "o", "", "output format: json (one object per line)")
	f.DurationVar(&timeout, "timeout", 0, "give up after this long (0 = no limit)")
	return cmd
}

// withdrawalJSON is cancel's JSON line.
type withdrawalJSON struct {
	ID      uint64    `json:"id"`
	Outcome string    `json:"outcome"`
	Holder  *senderJS `json:"holder,omitempty"`
}

func printWithdrawals(outs []postbox.Withdrawal, asJSON bool) {
	enc := json.NewEncoder(os.Stdout)
	for _, o := range outs {
		text := withdrawalText(o.Outcome)
		if asJSON {
			j := withdrawalJSON{ID: o.ID, Outcome: text}
			if o.Outcome == postbox.OutcomeInProgress {
				h := o.Holder
				j.Holder = &senderJS{h.Kind.String(), h.UID, h.GID, h.PID, h.Endpoint}
			}
			enc.Encode(j)
			continue
		}
		if o.Outcome == postbox.OutcomeInProgress {
			h := o.Holder
			fmt.Printf("%d\t%s (endpoint %d, pid %d, uid %d)\n", o.ID, text, h.Endpoint, h.PID, h.UID)
			continue
		}
		fmt.Printf("%d\t%s\n", o.ID, text)
	}
}

// withdrawalText names an outcome the way cancel's help does.
func withdrawalText(o postbox.Outcome) string {
	switch o {
	case postbox.OutcomeWithdrawn:
		return "withdrawn"
	case postbox.OutcomeInProgress:
		return "in progress"
	case postbox.OutcomeSettled:
		return "gone"
	case postbox.OutcomeNoSuchMessage:
		return "no such message"
	}
	return o.String()
}
