package cluster_test

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postbox-ipc/postbox"
)

// The benchmark (not a timed test: it runs only with -cluster.bench):
// sends and receives through a cluster mailbox, R1 and R3, two brokers,
// beside the same workload with nats.go straight to JetStream, in the
// same run on the same cluster, so postbox's layer is a ratio.
//
//	go test ./cluster -run ClusterBench -cluster.bench -v [-cluster.bench.n 5000]

var (
	benchOn = flag.Bool("cluster.bench", false, "run the cluster benchmark (TestClusterBench) and print its table")
	benchN  = flag.Int("cluster.bench.n", 2000, "cluster benchmark: messages per row")
)

type benchRow struct {
	what     string
	rate     float64 // per second
	p50, p99 time.Duration
}

func summarize(what string, lat []time.Duration, elapsed time.Duration) benchRow {
	slices.Sort(lat)
	return benchRow{what: what, rate: float64(len(lat)) / elapsed.Seconds(),
		p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]}
}

// timed runs op n times from w goroutines and returns the row.
func timed(what string, n, w int, op func(i int) error) (benchRow, error) {
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	errs := make(chan error, w)
	start := time.Now()
	for g := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += w {
				t0 := time.Now()
				if err := op(i); err != nil {
					errs <- err
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return benchRow{}, err
	}
	return summarize(what, lat, time.Since(start)), nil
}

func TestClusterBench(t *testing.T) {
	if !*benchOn {
		t.Skip("the cluster benchmark runs with -cluster.bench")
	}
	nc, a, b := sharedCluster(t)
	ctx := ctxT(t)
	n := *benchN
	body := make([]byte, 128)
	conn, err := nats.Connect(strings.Join(nc.urls(), ","), nats.UserInfo(brokerUser, brokerPass))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	js, err := jetstream.New(conn)
	if err != nil {
		t.Fatal(err)
	}
	ca, cb := dial(t, a), dial(t, b)
	var rows [][2]benchRow // postbox, nats
	for _, r := range []int{1, 3} {
		name := fmt.Sprintf("bench.r%d", r)
		if _, err := ca.Create(ctx, name, postbox.Cluster(r)); err != nil {
			t.Fatal(err)
		}
		sname := fmt.Sprintf("BENCH_R%d", r)
		subj := fmt.Sprintf("bench.r%d", r)
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: sname, Subjects: []string{subj}, Retention: jetstream.WorkQueuePolicy,
			Storage: jetstream.FileStorage, Replicas: r, Duplicates: 2 * time.Minute}); err != nil {
			t.Fatal(err)
		}
		cons, err := js.CreateOrUpdateConsumer(ctx, sname, jetstream.ConsumerConfig{Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: -1})
		if err != nil {
			t.Fatal(err)
		}
		mb, rb := ca.Mailbox(name), cb.Mailbox(name)
		for _, w := range []int{1, 16} {
			pb, err := timed("", n, w, func(int) error { _, err := mb.Send(ctx, body); return err })
			if err != nil {
				t.Fatal(err)
			}
			nt, err := timed("", n, w, func(i int) error {
				_, err := js.Publish(ctx, subj, body, jetstream.WithMsgID(fmt.Sprint(w, "-", i)))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			pb.what, nt.what = fmt.Sprintf("send R%d, %d sender(s)", r, w), ""
			rows = append(rows, [2]benchRow{pb, nt})
		}
		for _, w := range []int{1, 16} {
			pb, err := timed("", n, w, func(int) error {
				m, err := rb.Receive(ctx)
				if err != nil {
					return err
				}
				return m.Ack(ctx)
			})
			if err != nil {
				t.Fatal(err)
			}
			nt, err := timed("", n, w, func(int) error {
				mb, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
				if err != nil {
					return err
				}
				for m := range mb.Messages() {
					if err := m.DoubleAck(ctx); err != nil {
						return err
					}
				}
				return mb.Error()
			})
			if err != nil {
				t.Fatal(err)
			}
			pb.what = fmt.Sprintf("receive+ack R%d, %d receiver(s)", r, w)
			rows = append(rows, [2]benchRow{pb, nt})
		}
		mb.Destroy(ctx)
		js.DeleteStream(ctx, sname)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "workload (%d msgs of 128 B)\tpostbox msg/s\tp50\tp99\tnats.go msg/s\tp50\tp99\trate ratio\t\n", n)
	for _, r := range rows {
		p, q := r[0], r[1]
		fmt.Fprintf(tw, "%s\t%.0f\t%v\t%v\t%.0f\t%v\t%v\t%.2f\t\n", p.what, p.rate, p.p50.Round(time.Microsecond), p.p99.Round(time.Microsecond),
			q.rate, q.p50.Round(time.Microsecond), q.p99.Round(time.Microsecond), p.rate/q.rate)
	}
	tw.Flush()
}
