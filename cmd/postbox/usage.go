package main

import (
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
)

// newUsage is `postbox usage`: per-uid usage against the quotas, like
// `ipcs -u`. Root sees every uid; anyone else only its own.
func newUsage() *cobra.Command {
	var out string
	var uid int64
	var noHeaders bool
	cmd := &cobra.Command{
		Use:     "usage",
		Example: "  postbox usage\n  postbox usage --uid 1000 -o yaml",
		Short:   "Show what each uid and TLS principal holds against its quotas (root: every one; others: their own)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "table", "json", "yaml"); err != nil {
				return err
			}
			if uid < -1 || uid > 1<<32-1 {
				return usageError{fmt.Errorf("--uid %d: not a uid", uid)}
			}
			c, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			var us []postbox.Usage
			if uid >= 0 {
				var u postbox.Usage
				u, err = c.UsageOf(cmd.Context(), uint32(uid))
				us = []postbox.Usage{u}
			} else {
				us, err = c.Usage(cmd.Context())
			}
			if err != nil {
				return err
			}
			if structured(out) {
				enc := newRecordEncoder(os.Stdout, out)
				for _, u := range us {
					enc.Encode(jsonUsage(u))
				}
				return nil
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			header(tw, noHeaders, "UID\tCONNECTIONS\tMAILBOXES\tQUEUED BYTES\tLEASES")
			for _, u := range us {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", usageWho(u),
					ofQuota(u.Used.Connections, u.Quota.Connections), ofQuota(u.Used.Mailboxes, u.Quota.Mailboxes),
					ofQuota(u.Used.QueuedBytes, u.Quota.QueuedBytes), ofQuota(u.Used.Leases, u.Quota.Leases))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().Int64Var(&uid, "uid", -1, "only this uid (root may name any)")
	tableOutput(cmd, &out, &noHeaders, "table")
	return cmd
}

func usageWho(u postbox.Usage) string {
	if u.Anonymous {
		return "anonymous"
	}
	if u.Principal != "" {
		return u.Principal
	}
	return strconv.FormatUint(uint64(u.UID), 10)
}

// ofQuota is "used/quota", the quota "unlimited" where there is none.
func ofQuota(used, quota int64) string {
	q := "unlimited"
	if quota != postbox.Unlimited {
		q = strconv.FormatInt(quota, 10)
	}
	return strconv.FormatInt(used, 10) + "/" + q
}

type countsJSON struct {
	Connections int64 `json:"connections"`
	Mailboxes   int64 `json:"mailboxes"`
	QueuedBytes int64 `json:"queued_bytes"`
	Leases      int64 `json:"leases"`
}

type usageJSON struct {
	UID       *uint32    `json:"uid"` // null for the anonymous bucket and principals
	Anonymous bool       `json:"anonymous,omitempty"`
	Principal string     `json:"principal,omitempty"` // a TLS principal's bucket
	Used      countsJSON `json:"used"`
	Quota     countsJSON `json:"quota"` // -1: unlimited
}

func jsonUsage(u postbox.Usage) usageJSON {
	j := usageJSON{Anonymous: u.Anonymous, Principal: u.Principal, Used: countsJSON(u.Used), Quota: countsJSON(u.Quota)}
	if !u.Anonymous && u.Principal == "" {
		uid := u.UID
		j.UID = &uid
	}
	return j
}
