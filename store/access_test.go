package store_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/postbox-ipc/postbox/store"
)

// A mailbox created by a remote principal keeps its owner's name and its
// access entries across a restart, and so does a TLS sender's name on
// its messages; a snapshot (compaction's first record) carries them too.
func TestDefinitionKeepsRemoteOwnerAndAccessEntriesAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir, nil)
	s := mustOpen(t, o)
	d := def("remote")
	d.OwnerKind, d.OwnerName, d.OwnerUID, d.OwnerGID = 2, "spiffe://example.org/app", 0xffffffff, 0xffffffff
	d.Access = []store.AccessEntry{{Pattern: "spiffe://example.org/*", Perms: 2}, {Pattern: "CN=bob", Perms: 6}}
	wait(t, s.PutMailbox(d))
	m := msg("remote", 1, 0, "hi")
	m.SenderKind, m.SenderName = 2, "spiffe://example.org/app"
	wait(t, s.Append(m))
	plain := def("plain")
	wait(t, s.PutMailbox(plain))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		s = mustOpen(t, o)
		r := s.Recovered()
		if len(r.Mailboxes) != 2 || !reflect.DeepEqual(r.Mailboxes[1], d) || !reflect.DeepEqual(r.Mailboxes[0], plain) {
			t.Fatalf("round %d: mailboxes = %+v, want %+v and %+v", round, r.Mailboxes, plain, d)
		}
		got := r.Messages["remote"]
		if len(got) != 1 || got[0].SenderKind != 2 || got[0].SenderName != "spiffe://example.org/app" {
			t.Fatalf("round %d: messages = %+v", round, got)
		}
		if round == 0 {
			// Rewrite everything into a fresh segment: its snapshot holds the definitions.
			if err := s.Compact(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
