package broker_test

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/wire"
)

// The conformance vectors (wire/testdata/vectors) sent to a live broker:
// every request vector, valid or not, gets the status the protocol says
// for it in the broker state set up below.

type liveVector struct {
	Name   string `json:"name"`
	Hex    string `json:"hex"`
	Header *struct {
		Op    uint8 `json:"op"`
		Flags uint8 `json:"flags"`
	} `json:"header"`
	PayloadType string `json:"payload_type"`
	Valid       bool   `json:"valid"`
	Error       string `json:"error"`
}

// noReply marks vectors whose request has no reply of its own.
const noReply wire.Code = 0xffff

// validOutcome is what each valid request vector gets: the vectors are
// well-formed, so anything but OK is the broker's semantics (a target
// that does not exist, RECEIPT on a batch, leases nobody holds).
var validOutcome = map[string]wire.Code{
	"send-one-with-headers":                    wire.OK,
	"send-batch-of-3":                          wire.OK,
	"send-receipt-flag-irrelevant-to-decoding": wire.CodeInvalid,  // RECEIPT with 3 messages
	"send-user-headers-repeat-keys":            wire.CodeNotFound, // @1: no such endpoint
	"send-reserved-header-tag-passed-through":  wire.OK,
	"ping":                         wire.OK,
	"ping-noncritical-ext":         wire.OK,
	"cancel-urgent":                noReply,
	"destroy":                      wire.OK,
	"stat":                         wire.OK,
	"chmod":                        wire.OK,
	"channel":                      wire.CodeNotFound, // an endpoint of another run
	"attach":                       wire.CodeNotFound,
	"recv":                         wire.OK,
	"consume":                      noReply, // a DELIVER, checked below
	"credit":                       noReply,
	"create-with-options":          wire.OK,
	"create-all-options":           wire.OK,
	"create-no-options":            wire.OK,
	"ack-one-range":                wire.OK, // status OK, leases listed as stale
	"ack-noreply-ranges":           noReply,
	"send-best-effort":             noReply, // BEST_EFFORT: never a reply
	"nack-unsorted-disjoint":       wire.OK,
	"ack-max-leases":               wire.OK,
	"list-first-page":              wire.OK,
	"list-next-page":               wire.OK,
	"browse-first-page":            wire.OK,
	"browse-next-page-lowest-type": wire.OK,
	"browse-default-limit":         wire.CodeNotFound, // @42: no such endpoint
	"usage-all":                    wire.OK,           // the tests run as root: every uid
	"usage-uid-1000":               wire.OK,
	"info":                         wire.OK, // INFO (stats_info.go)
	"create-service":               wire.OK,
	"call":                         wire.CodeInvalid,  // REPLY_TO is not the caller's inbox
	"send-reply-flag":              wire.OK,           // to an inbox of another run: dropped
	"send-reply-flag-ack-lease":    wire.OK,           // dropped; the lease nobody holds is ignored
	"acl-set-read":                 wire.OK,           // root owns everything
	"acl-remove":                   wire.CodeNotFound, // jobs is fresh: no such entry
	"publish":                      wire.OK,           // no subscriber: matched 0
	"publish-no-wait-no-headers":   wire.OK,
	"publish-batch":                wire.OK, // three items, no subscriber: matched 0
	"subscribe-filtered-queue":     noReply, // a stream: no reply until it ends
	"subscribe-plain":              noReply,
	"subscribe-credit":             noReply,
	"bind":                         wire.CodeNotFound, // no mailbox orders-archive
	"unbind":                       wire.CodeNotFound,
	"topics":                       wire.OK,
	"claim":                        wire.OK, // root may claim anything
	"claim-release":                wire.OK, // after "claim"
	"send-urgent":                  wire.OK,
	"withdraw-ids":                 wire.OK, // root may withdraw anybody's
	"withdraw-correlation-id":      wire.OK, // nothing matches: no outcomes
	"withdraw-user-header-after":   wire.OK, // ANY_SENDER: root owns everything

	"create-pipe":    wire.OK,
	"create-cluster": wire.CodeInvalid, // a broker without a cluster: ErrNoCluster
	"join":           wire.OK,
	"join-mailbox":   wire.OK, // root may receive from jobs
	"leave":          wire.OK,
	"send-multicast": wire.OK,           // #workers has no members: RECIPIENTS 0
	"send-broadcast": wire.OK,           // root may broadcast
	"watch-endpoint": wire.CodeNotFound, // an endpoint of another run
	"watch-mailbox":  noReply,           // a NOTICE (ARMED), checked below

	"send-with-files":       wire.CodeNoDescriptors, // FILES counts 1, no descriptor came with the bytes
	"send-batch-with-files": wire.CodeNoDescriptors,
}

func TestV2ConformanceVectorsAgainstALiveBroker(t *testing.T) {
	files, err := filepath.Glob("../wire/testdata/vectors/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors: %v", err)
	}
	var vs []liveVector
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var part []liveVector
		if err := json.Unmarshal(data, &part); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		vs = append(vs, part...)
	}
	b := startBroker(t, func(c *broker.Config) { c.DataDir = t.TempDir(); c.NoSync = true })
	admin := dialRaw(t, b.socket)
	ensure := func(name string, present bool) {
		admin.roundTrip(t, wire.OpDestroy, 0, (&wire.Name{Name: []byte(name)}).Append(nil))
		if present {
			admin.create(t, wire.Create{Name: []byte(name), Capacity: -1})
		}
	}
	tested := 0
	for _, v := range vs {
		frame, err := hex.DecodeString(v.Hex)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		hello := v.Header != nil && wire.Op(v.Header.Op) == wire.OpHello
		isRequest := v.Header == nil || (v.Header.Op < 0x80 && v.Header.Flags&wire.FlagPush == 0)
		if !isRequest {
			continue // replies and pushed frames: the broker never reads them
		}
		tested++
		t.Run(v.Name, func(t *testing.T) {
			// The state each vector expects: "jobs" and "q" exist (with a
			// message in jobs), and the dead-letter mailboxes CREATE
			// vectors name; a CREATE's own name does not exist.
			for _, n := range []string{"jobs", "q", "jobs/dead", "orders.dl"} {
				ensure(n, true)
			}
			for _, n := range []string{"orders", "r"} {
				ensure(n, false)
			}
			admin.sendOK(t, "jobs", "waiting")
			if v.PayloadType == "Create" && v.Valid && v.Name == "create-with-options" {
				ensure("jobs", false)
			}

			rc := dialRaw0(t, b.socket)
			if !hello {
				rc.handshake(t, wire.CapDescriptors)
			}
			rc.write(t, frame)
			switch {
			case v.Header == nil: // frame-size-11
				if codes := rc.expectClosed(t); len(codes) != 0 {
					t.Fatalf("replies %v before closing, want none", codes)
				}
				return
			case hello && v.Valid:
				hd, p, err := rc.next(t)
				if err != nil {
					t.Fatal(err)
				}
				must(t, v.Name, hd, p, wire.OK)
				return
			case hello:
				want := map[string]wire.Code{"version": wire.CodeVersion, "malformed": wire.CodeMalformed, "critical": wire.CodeInvalid}[v.Error]
				if codes := rc.expectClosed(t); len(codes) != 1 || codes[0] != want {
					t.Fatalf("replies %v before closing, want one %s", codes, want)
				}
				return
			}
			want := validOutcome[v.Name]
			if !v.Valid {
				want = map[string]wire.Code{"malformed": wire.CodeMalformed, "invalid": wire.CodeInvalid, "critical": wire.CodeInvalid}[v.Error]
				if v.PayloadType == "Credit" {
					want = noReply // CREDIT never has a reply, even when malformed
				}
			} else if _, ok := validOutcome[v.Name]; !ok {
				t.Fatalf("no expected outcome for valid vector %s", v.Name)
			}
			if want == noReply {
				// The next frame is PING's reply (for CONSUME, after the
				// DELIVER of the waiting message).
				if v.Name == "watch-mailbox" {
					hd, _, err := rc.next(t)
					if err != nil || hd.Op != wire.OpNotice || !hd.Push() {
						t.Fatalf("WATCH: got %s flags %#x (%v), want a pushed NOTICE", hd.Op, hd.Flags, err)
					}
				}
				if v.Name == "consume" {
					hd, _, err := rc.next(t)
					if err != nil || hd.Op != wire.OpDeliver || !hd.Push() {
						t.Fatalf("CONSUME: got %s flags %#x (%v), want a pushed DELIVER", hd.Op, hd.Flags, err)
					}
				}
				f, id := rc.frame(wire.OpPing, 0, nil)
				rc.write(t, f)
				hd, p, err := rc.next(t)
				if err != nil || hd.Request != id || hd.Op != wire.OpPing|wire.OpReply {
					t.Fatalf("after a request without reply: %s to %d (%v), want PING's reply", hd.Op, hd.Request, err)
				}
				must(t, "PING", hd, p, wire.OK)
				return
			}
			hd, p, err := rc.next(t)
			if err != nil {
				t.Fatal(err)
			}
			if hd.Op != wire.Op(v.Header.Op)|wire.OpReply {
				t.Fatalf("reply op %s to %s", hd.Op, wire.Op(v.Header.Op))
			}
			must(t, v.Name, hd, p, want)
			if want == wire.OK && (wire.Op(v.Header.Op) == wire.OpAck || wire.Op(v.Header.Op) == wire.OpNack) {
				var r wire.AckReply
				if err := r.Decode(p); err != nil || r.Done != 0 || len(r.Failed) == 0 || r.Failed[0].Status != wire.CodeStaleLease {
					t.Fatalf("ack reply %d done, %d failed (%v): every lease should be stale", r.Done, len(r.Failed), err)
				}
			}
			rc.req = 1000
			rc.ping(t)
		})
	}
	if tested < 40 {
		t.Fatalf("only %d request vectors", tested)
	}
}
