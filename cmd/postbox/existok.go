package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/postbox-ipc/postbox"
)

// errExistsOther: create --exist-ok found the mailbox with settings
// other than the command asks for. It matches postbox.ErrExists.
var errExistsOther error = &textError{"exists with other settings", postbox.ErrExists}

// wantMailbox is what a create command asks for, as create --exist-ok
// compares it with what exists.
type wantMailbox struct {
	capacity      int64
	mode          os.FileMode
	durable       bool
	maxDeliveries uint32
	maxBytes      int64
	ttl           time.Duration
	deadLetter    string
	cluster       bool
	replicas      int // with cluster: 0 takes any (the cluster's default)
}

// existOK is create --exist-ok after a create failed with err: nil when
// name exists as a mailbox owned by the caller (as create makes it) with
// every setting the command gives (its flags' defaults included: the
// same command succeeds each time it runs), else an error that lists
// each difference.
func existOK(ctx context.Context, c *postbox.Client, name string, want wantMailbox, err error) error {
	if !errors.Is(err, postbox.ErrExists) {
		return err
	}
	i, serr := c.Mailbox(name).Stat(ctx)
	if serr != nil {
		return serr
	}
	if k := kind(i); k != "mailbox" && i.Cluster == "" { // a cluster mailbox is one too: --cluster is compared below
		return &textError{fmt.Sprintf("create %q: exists as a %s, not a mailbox", name, k), postbox.ErrExists}
	}
	var diff []string
	differ := func(what string, have, asked any) {
		if fmt.Sprint(have) != fmt.Sprint(asked) {
			diff = append(diff, fmt.Sprintf("%s %v (asked %v)", what, have, asked))
		}
	}
	differ("capacity", capacityText(i.Capacity), capacityText(want.capacity))
	differ("mode", fmt.Sprintf("%04o", uint32(i.Mode.Perm())), fmt.Sprintf("%04o", uint32(want.mode)))
	differ("durable", i.Durable, want.durable)
	differ("max-deliveries", i.MaxDeliveries, want.maxDeliveries)
	differ("max-bytes", i.MaxBytes, want.maxBytes)
	differ("ttl", i.TTL, want.ttl)
	differ("dead-letter", fmt.Sprintf("%q", i.DeadLetter), fmt.Sprintf("%q", want.deadLetter))
	differ("cluster", i.Cluster != "", want.cluster)
	if want.cluster && want.replicas > 0 && i.Cluster != "" {
		differ("replicas", i.Replicas, want.replicas)
	}
	if self := c.Identity(); !ownedBy(i, self) {
		you := postbox.Info{OwnerKind: self.Kind, UID: self.UID, GID: self.GID, OwnerName: self.Name}
		diff = append(diff, fmt.Sprintf("owner %s (you are %s)", ownerText(i), ownerText(you))) // admin.go
	}
	if len(diff) > 0 {
		return fmt.Errorf("create %q: %w: %s", name, errExistsOther, strings.Join(diff, ", "))
	}
	return nil
}

// ownedBy reports whether i's owner is who: the same uid and gid for a
// Unix peer, the same certificate name for a TLS one.
func ownedBy(i postbox.Info, who postbox.Identity) bool {
	switch who.Kind {
	case postbox.KindUnix:
		return i.OwnerKind == postbox.KindUnix && i.UID == who.UID && i.GID == who.GID
	case postbox.KindTLS:
		return i.OwnerKind == postbox.KindTLS && i.OwnerName == who.Name
	}
	return i.OwnerKind == who.Kind
}
