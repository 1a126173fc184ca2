package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
)

func parseMode(s string) (os.FileMode, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o777 {
		return 0, usageError{fmt.Errorf("mode %q: want octal permission bits such as 0660", s)}
	}
	return os.FileMode(m), nil
}

func newCreate() *cobra.Command {
	var capacity int64
	var mode string
	var durable bool
	var maxDeliveries uint32
	var maxBytes int64
	var ttl time.Duration
	var deadLetter string
	var existOk bool
	// --- cluster ---
	var onCluster bool
	var replicas int
	// --- end cluster ---
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a mailbox",
		Long: `Create a mailbox owned by your uid and gid.

--capacity -1 (the default) is unbounded, up to the broker's memory limit;
0 is a rendezvous (a send completes only when a receiver takes the message);
N holds at most N messages (senders wait for space).
--mode works like a file's permission bits: w = may send, r = may receive.
--cluster makes the mailbox on the NATS JetStream cluster the broker is
attached to (postbox serve --cluster), shared by every broker attached to
it, with --replicas copies of each message (docs/CLUSTER.md).
--exist-ok succeeds if NAME already is a mailbox of yours with exactly
the settings this command gives (defaults included; --cluster, and
--replicas when given), so a setup script may run it again; otherwise it
fails, listing each setting that differs, the owner included.`,
		Example: "  postbox create jobs --capacity 1000 --mode 0660\n  postbox create jobs --capacity 1000 --mode 0660 --exist-ok  # again: exit 0\n  postbox create jobs --cluster --replicas 3",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := parseMode(mode)
			if err != nil {
				return err
			}
			c, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			opts := []postbox.CreateOption{postbox.Capacity(capacity), postbox.Mode(m), postbox.MaxDeliveries(maxDeliveries),
				postbox.MaxBytes(maxBytes), postbox.TTL(ttl)}
			if deadLetter != "" {
				opts = append(opts, postbox.DeadLetter(deadLetter))
			}
			if durable {
				opts = append(opts, postbox.Durable())
			}
			// --- cluster ---
			if cmd.Flags().Changed("replicas") && !onCluster {
				return usageError{fmt.Errorf("--replicas needs --cluster")}
			}
			if onCluster {
				if replicas < 0 || replicas > 5 {
					return usageError{fmt.Errorf("--replicas %d: want 1..5 (0: the cluster's default)", replicas)}
				}
				opts = append(opts, postbox.Cluster(replicas))
			}
			// --- end cluster ---
			_, err = c.Create(cmd.Context(), args[0], opts...)
			if existOk && err != nil { // existok.go
				return existOK(cmd.Context(), c, args[0], wantMailbox{capacity, m, durable, maxDeliveries, maxBytes, ttl, deadLetter, onCluster, replicas}, err)
			}
			return err
		},
	}
	cmd.Flags().Int64Var(&capacity, "capacity", -1, "-1 unbounded, 0 rendezvous, N bounded")
	cmd.Flags().StringVar(&mode, "mode", "0600", "permission bits (octal)")
	cmd.Flags().BoolVar(&durable, "durable", false, "keep messages on disk (broker needs a data directory)")
	cmd.Flags().Uint32Var(&maxDeliveries, "max-deliveries", 0, "after this many deliveries without an ack a message is dead-lettered (0 = unlimited)")
	cmd.Flags().Int64Var(&maxBytes, "max-bytes", 0, "also bound the queued bytes (0 = no bound)")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "queued messages older than this are dead-lettered (0 = never)")
	cmd.Flags().StringVar(&deadLetter, "dead-letter", "", "existing mailbox that receives dead letters (default: they are dropped)")
	cmd.Flags().BoolVar(&existOk, "exist-ok", false, "succeed if the mailbox exists with these settings")
	// --- cluster ---
	cmd.Flags().BoolVar(&onCluster, "cluster", false, "make the mailbox on the broker's NATS JetStream cluster")
	cmd.Flags().IntVar(&replicas, "replicas", 0, "with --cluster: copies of each message, 1..5 (default 3, or 1 on a cluster of fewer than 3 servers)")
	// --- end cluster ---
	return cmd
}

func newRm() *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME...",
		Example: "  postbox rm jobs\n  postbox rm a b c",
		Short:   "Destroy mailboxes (like ipcrm)",
		Long:    "Destroy mailboxes. Waiting senders and receivers fail with \"mailbox destroyed\". Only the owner or root may.",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			var first error
			for _, name := range args {
				if err := c.Mailbox(name).Destroy(cmd.Context()); err != nil {
					if first == nil {
						first = err
					} else {
						fmt.Fprintln(os.Stderr, "postbox:", errorText(nil, err))
					}
				}
			}
			return first
		},
	}
}

func newChmod() *cobra.Command {
	return &cobra.Command{
		Use:     "chmod MODE NAME",
		Example: "  postbox chmod 0660 jobs",
		Short:   "Change a mailbox's permission bits",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := parseMode(args[0])
			if err != nil {
				return err
			}
			c, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			return c.Mailbox(args[1]).Chmod(cmd.Context(), m)
		},
	}
}

// lsOwner is the OWNER column of ls: uid:gid, or a remote owner's name.
func lsOwner(i postbox.Info) string {
	switch i.OwnerKind {
	case postbox.KindUnix:
		return fmt.Sprintf("%d:%d", i.UID, i.GID)
	case postbox.KindTLS:
		return i.OwnerName
	}
	return "-"
}

// ownerText is who owns a mailbox, as stat shows it.
func ownerText(i postbox.Info) string {
	switch i.OwnerKind {
	case postbox.KindUnix:
		return fmt.Sprintf("uid %d, gid %d", i.UID, i.GID)
	case postbox.KindTLS:
		return fmt.Sprintf("%s (TLS)", i.OwnerName)
	}
	return "nobody (an unauthenticated TCP peer created it)"
}

func newACL() *cobra.Command {
	var add, remove []string
	cmd := &cobra.Command{
		Use:     "acl NAME [--add PATTERN=rw]... [--remove PATTERN]...",
		Example: "  postbox acl jobs\n  postbox acl jobs --add 'spiffe://example.org/workers/*=r'\n  postbox acl jobs --remove 'spiffe://example.org/workers/*'",
		Short:   "Show or change a mailbox's access entries for remote (TLS) principals",
		Long: `Show or change the access entries that decide what remote principals (TLS
clients, named by their certificate's URI SAN, else subject DN) may do with
a mailbox. Mode bits decide for local users; for a TLS client other than the
mailbox's owner the entries matching its name decide, and none matching is
no access. PATTERN is an exact name or a path.Match pattern ("*" within a
"/"-separated segment): spiffe://example.org/*, CN=alice,O=Example. PERMS is
r (receive), w (send) or rw. Only the owner may change entries; removals
run before additions. Without --add or --remove it lists the entries.

  postbox acl jobs --add 'spiffe://example.org/workers/*=r' --add 'CN=ci,O=Example=w'
  postbox acl jobs --remove 'CN=ci,O=Example'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			type change struct {
				pattern     string
				read, write bool
			}
			var adds []change
			for _, a := range add {
				i := strings.LastIndex(a, "=")
				if i <= 0 {
					return usageError{fmt.Errorf("--add %q: want PATTERN=r, PATTERN=w or PATTERN=rw", a)}
				}
				p, perms := a[:i], a[i+1:]
				if perms != "r" && perms != "w" && perms != "rw" && perms != "wr" {
					return usageError{fmt.Errorf("--add %q: perms %q: want r, w or rw", a, perms)}
				}
				adds = append(adds, change{p, strings.Contains(perms, "r"), strings.Contains(perms, "w")})
			}
			c, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			mb := c.Mailbox(args[0])
			for _, p := range remove {
				if err := mb.RemoveAccess(cmd.Context(), p); err != nil {
					return err
				}
			}
			for _, a := range adds {
				if err := mb.SetAccess(cmd.Context(), a.pattern, a.read, a.write); err != nil {
					return err
				}
			}
			if len(add)+len(remove) > 0 {
				return nil
			}
			i, err := mb.Stat(cmd.Context())
			if err != nil {
				return err
			}
			for _, e := range i.Access {
				fmt.Println(e.String())
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&add, "add", nil, "add or change an entry: PATTERN=r, PATTERN=w or PATTERN=rw (repeatable)")
	cmd.Flags().StringArrayVar(&remove, "remove", nil, "remove the entry with this pattern (repeatable)")
	return cmd
}

func outputFlag(cmd *cobra.Command, p *string, def, help string) {
	cmd.Flags().StringVarP(p, "output", "o", def, help)
}

func checkOutput(o string, allowed ...string) error {
	for _, a := range allowed {
		if o == a {
			return nil
		}
	}
	return usageError{fmt.Errorf("--output %q: want one of %v", o, allowed)}
}

func newLs() *cobra.Command {
	var out string
	var all, subjects, noHeaders bool
	cmd := &cobra.Command{
		Use:     "ls",
		Example: "  postbox ls\n  postbox ls --all -o json\n  postbox ls --no-headers | awk '$6 > 0 {print $1}'   # mailboxes with messages",
		Short:   "List mailboxes (like ipcs)",
		Long: `List mailboxes: name, kind (mailbox, service or inbox), owner, mode,
capacity, depth (queued messages), receivers and consumers waiting,
messages in flight (leased, not yet acked), blocked senders, best-effort
messages dropped (send --best-effort), and for a service (an RPC
service's mailbox, such as one "postbox reply" serves) its servers: the
consumers serving it. --all includes endpoints' private inboxes.
The table is followed by the subscribed subjects, if any: each pattern
with its subscribers, queue groups, events delivered and dropped.
--subjects lists publish/subscribe alone: the subjects, then the
bindings and the claims (with -o json, one object each).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "table", "json", "yaml"); err != nil {
				return err
			}
			if subjects {
				return lsSubjects(cmd.Context(), os.Stdout, out, noHeaders) // pubsub.go
			}
			c, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			infos, err := c.List(cmd.Context())
			if err != nil {
				return err
			}
			shown := infos[:0]
			for _, i := range infos {
				if all || !i.Inbox {
					shown = append(shown, i)
				}
			}
			if structured(out) {
				enc := newRecordEncoder(os.Stdout, out)
				for _, i := range shown {
					enc.Encode(jsonInfo(i))
				}
				return nil
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			header(tw, noHeaders, "NAME\tKIND\tOWNER\tMODE\tCAPACITY\tDEPTH\tBYTES\tRECEIVERS\tIN FLIGHT\tBLOCKED SENDERS\tDROPPED\tSERVERS")
			for _, i := range shown {
				servers := "-"
				if i.Service {
					servers = strconv.Itoa(int(i.Consumers))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%04o\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", i.Name, kind(i), lsOwner(i), uint32(i.Mode),
					capacityText(i.Capacity), i.Depth, i.Bytes, i.Receivers+i.Consumers, i.InFlight, i.BlockedSenders, i.Dropped, servers)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			// Then the subscribed subjects, if any (all of pub/sub: --subjects).
			// (--no-headers: the mailbox rows only.)
			topics, err := c.Topics(cmd.Context())
			if err != nil || len(topics.Subjects) == 0 || noHeaders {
				return err
			}
			fmt.Println()
			return printTopics(os.Stdout, topics, out, false, false) // pubsub.go
		},
	}
	tableOutput(cmd, &out, &noHeaders, "table")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "include endpoints' inboxes")
	cmd.Flags().BoolVar(&subjects, "subjects", false, "list subjects, bindings and claims (publish/subscribe)")
	watchable(cmd) // --watch, --interval: lswatch.go
	return cmd
}

func capacityText(c int64) string {
	switch c {
	case -1:
		return "unbounded"
	case 0:
		return "rendezvous"
	}
	return strconv.FormatInt(c, 10)
}

type infoJSON struct {
	postbox.Info
	Mode    string `json:"mode"`
	Kind    string `json:"kind"`
	Servers *int   `json:"servers,omitempty"` // services only
}

func jsonInfo(i postbox.Info) infoJSON {
	j := infoJSON{Info: i, Mode: fmt.Sprintf("%04o", uint32(i.Mode)), Kind: kind(i)}
	if i.Service {
		n := int(i.Consumers)
		j.Servers = &n
	}
	return j
}

// kind is ls's KIND column.
func kind(i postbox.Info) string {
	switch {
	case i.Inbox:
		return "inbox"
	case i.Service:
		return "service"
	case i.Pipe:
		return "pipe"
	case i.Cluster != "": // --- cluster ---
		return fmt.Sprintf("cluster/R%d", i.Replicas)
	}
	return "mailbox"
}

func newStat() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:     "stat NAME",
		Example: "  postbox stat jobs\n  postbox stat jobs -o json | jq .depth",
		Short:   "Show one mailbox's state",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "text", "json", "yaml"); err != nil {
				return err
			}
			c, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			i, err := c.Mailbox(args[0]).Stat(cmd.Context())
			if err != nil {
				return err
			}
			if structured(out) {
				return newRecordEncoder(os.Stdout, out).Encode(jsonInfo(i))
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 1, ' ', 0)
			row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
			row("name", i.Name)
			row("owner", ownerText(i))
			row("mode", fmt.Sprintf("%04o", uint32(i.Mode)))
			if len(i.Access) == 0 {
				row("access", "none for remote principals")
			}
			for _, e := range i.Access {
				row("access", e.String())
			}
			row("capacity", capacityText(i.Capacity))
			row("durable", i.Durable)
			if i.Durable {
				row("on disk", fmt.Sprintf("%d bytes", i.DiskBytes))
			}
			row("depth", fmt.Sprintf("%d messages, %d bytes", i.Depth, i.Bytes))
			row("in flight", i.InFlight)
			row("kind", kind(i))
			// --- cluster ---
			if i.Cluster != "" {
				row("cluster", i.Cluster)
				row("replicas", i.Replicas)
				row("stream", fmt.Sprintf("%s (%s)", i.Stream, i.StreamState))
			}
			// --- end cluster ---
			if i.Closed {
				row("closed", "for sending: receivers drain it, then end of stream")
			}
			row("receivers", fmt.Sprintf("%d waiting, %d consumers", i.Receivers, i.Consumers))
			if i.Service {
				row("servers", i.Consumers)
			}
			row("blocked senders", i.BlockedSenders)
			row("sent", i.Sent)
			row("received", i.Received)
			row("redelivered", i.Redelivered)
			row("dead-lettered", i.DeadLettered)
			row("dropped", fmt.Sprintf("%d (best-effort messages not admitted)", i.Dropped))
			if i.MaxDeliveries > 0 {
				row("max deliveries", i.MaxDeliveries)
			}
			if i.MaxBytes > 0 {
				row("max bytes", i.MaxBytes)
			}
			if i.TTL > 0 {
				row("ttl", i.TTL)
			}
			if i.DeadLetter != "" {
				row("dead-letter mailbox", i.DeadLetter)
			}
			if !i.Oldest.IsZero() {
				row("oldest message", time.Since(i.Oldest).Round(time.Millisecond).String()+" old")
			}
			row("created", i.Created.Format(time.RFC3339))
			// (A remote owner's bucket is not in USAGE's reply yet.)
			if i.OwnerKind == postbox.KindUnix {
				if u, err := c.UsageOf(cmd.Context(), i.UID); err == nil { // only root may see another uid's
					row("owner's usage", fmt.Sprintf("%s connections, %s mailboxes, %s queued bytes, %s leases",
						ofQuota(u.Used.Connections, u.Quota.Connections), ofQuota(u.Used.Mailboxes, u.Quota.Mailboxes),
						ofQuota(u.Used.QueuedBytes, u.Quota.QueuedBytes), ofQuota(u.Used.Leases, u.Quota.Leases)))
				}
			}
			return tw.Flush()
		},
	}
	outputFlag(cmd, &out, "text", "text, json or yaml")
	return cmd
}
