package wire

import "testing"

// TestClusterInfoRoundTripsThroughMailboxInfo: the cluster entries ride
// in MailboxInfo's ext tail, and a local mailbox has none.
func TestClusterInfoRoundTripsThroughMailboxInfo(t *testing.T) {
	want := ClusterInfo{Cluster: "east", Replicas: 3, StreamState: "leader n2, 2/2 followers current", Stream: "PB_x"}
	in := MailboxInfo{Name: []byte("c.jobs"), Dropped: 4, Ext: AppendClusterInfo(nil, want)}
	var out MailboxInfo
	if err := out.Decode(in.Append(nil)); err != nil {
		t.Fatal(err)
	}
	got, ok := ClusterInfoOf(out.Ext)
	if !ok || got != want || out.Dropped != 4 {
		t.Fatalf("got %+v %v dropped %d, want %+v", got, ok, out.Dropped, want)
	}
	if _, ok := ClusterInfoOf(nil); ok {
		t.Fatal("a local mailbox reads as a cluster one")
	}
	var c Create
	if err := c.Decode((&Create{Name: []byte("c"), Capacity: -1, Cluster: true, Replicas: 5}).Append(nil)); err != nil || !c.Cluster || c.Replicas != 5 {
		t.Fatalf("create: %+v %v", c, err)
	}
	twice := AppendExt(AppendExt((&Create{Name: []byte("c"), Capacity: -1}).Append(nil), TagCluster, []byte{1}), TagCluster, []byte{1})
	if err := c.Decode(twice); err != ErrMalformed {
		t.Fatalf("CLUSTER twice: %v, want ErrMalformed", err)
	}
}
