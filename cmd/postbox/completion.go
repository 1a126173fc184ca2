package main

// Shell completion: cobra's "completion bash|zsh|fish|powershell"
// scripts call the hidden __complete command, which offers the values
// of -o (output.go) and the names of the running broker's mailboxes
// wherever a command takes one. Which arguments are mailboxes is read
// from each command's Use line (NAME, NAME..., MAILBOX, SERVICE), so a
// command added later completes its mailbox argument by naming it so.

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// completeTimeout bounds the whole look-up: completion must not hang a
// shell when the broker is slow or absent.
const completeTimeout = 500 * time.Millisecond

// mailboxFlags are the flags, on any command, whose value is a mailbox.
var mailboxFlags = []string{"mailbox", "dead-letter", "reply-to"}

// completeMailboxes gives every command whose Use names a mailbox
// argument a ValidArgsFunction listing the broker's mailboxes, and the
// mailboxFlags a completion of the same.
func completeMailboxes(c *cobra.Command) {
	if c.ValidArgsFunction == nil && c.ValidArgs == nil && c.Name() != "create" {
		if at, rest, services, ok := mailboxArgs(c.Use); ok {
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
				if len(args) != at && !(rest && len(args) > at) {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				return brokerMailboxes(cmd.Context(), toComplete, services, args), cobra.ShellCompDirectiveNoFileComp
			}
		}
	}
	for _, name := range mailboxFlags {
		if c.Flags().Lookup(name) != nil {
			c.RegisterFlagCompletionFunc(name, func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
				return brokerMailboxes(cmd.Context(), toComplete, false, nil), cobra.ShellCompDirectiveNoFileComp
			})
		}
	}
	for _, s := range c.Commands() {
		completeMailboxes(s)
	}
}

// mailboxArgs reads a Use line: the position of its mailbox argument,
// whether every argument from there on is one ("NAME..."), and whether
// it is a service's. "chmod MODE NAME" gives 1.
func mailboxArgs(use string) (at int, rest, services, ok bool) {
	for i, w := range strings.Fields(use)[1:] {
		switch strings.TrimSuffix(w, "...") {
		case "NAME", "MAILBOX", "SERVICE", "@ENDPOINT|MAILBOX":
			return i, strings.HasSuffix(w, "..."), w == "SERVICE", true
		}
		if strings.HasPrefix(w, "[") || strings.HasPrefix(w, "-") || strings.HasPrefix(w, "(") {
			break
		}
	}
	return 0, false, false, false
}

// brokerMailboxes lists the mailboxes (services only, if services)
// whose names start with prefix, leaving out inboxes and the names in
// given; nothing if the broker cannot be asked within completeTimeout.
func brokerMailboxes(ctx context.Context, prefix string, services bool, given []string) []string {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completeTimeout)
	defer cancel()
	c, err := dial(ctx)
	if err != nil {
		return nil
	}
	defer c.Close()
	infos, err := c.List(ctx)
	if err != nil {
		return nil
	}
	var names []string
next:
	for _, i := range infos {
		if i.Inbox || (services && !i.Service) || !strings.HasPrefix(i.Name, prefix) {
			continue
		}
		for _, g := range given {
			if g == i.Name {
				continue next
			}
		}
		names = append(names, i.Name)
	}
	return names
}

// builtinExamples gives cobra's own commands (help, completion and its
// shells) an Example like every other command's.
func builtinExamples(root *cobra.Command) {
	examples := map[string]string{
		"help":       "  postbox help send",
		"completion": "  source <(postbox completion bash)\n  postbox completion zsh > \"${fpath[1]}/_postbox\"\n  postbox completion fish > ~/.config/fish/completions/postbox.fish",
		"bash":       "  source <(postbox completion bash)\n  postbox completion bash > /etc/bash_completion.d/postbox",
		"zsh":        "  postbox completion zsh > \"${fpath[1]}/_postbox\"",
		"fish":       "  postbox completion fish > ~/.config/fish/completions/postbox.fish",
		"powershell": "  postbox completion powershell | Out-String | Invoke-Expression",
	}
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			c.Example = examples[c.Name()]
		}
		if c.Name() == "completion" {
			for _, s := range c.Commands() {
				s.Example = examples[s.Name()]
			}
		}
	}
}
