package metrics_test

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/metrics"
)

// scrape GETs url and parses the text exposition.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	// No keep-alive: no client goroutine outlives the scrape.
	client := http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse the exposition: %v", err)
	}
	return fams
}

// value is the sample of family name whose label lname is lvalue ("" for
// a metric without labels); -1 if there is none.
func value(fams map[string]*dto.MetricFamily, name, lname, lvalue string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	for _, m := range f.GetMetric() {
		match := lname == ""
		for _, l := range m.GetLabel() {
			if l.GetName() == lname && l.GetValue() == lvalue {
				match = true
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

func TestScrapeOfARealBrokerMovesWithSendsAndAcks(t *testing.T) {
	testbroker.CheckGoroutines(t)
	cfg := broker.DefaultConfig()
	cfg.DataDir, cfg.NoSync = t.TempDir(), false
	b := testbroker.Start(t, &cfg)
	srv := httptest.NewServer(metrics.Handler(b))
	defer srv.Close()
	url := srv.URL + "/metrics"

	c := b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mb, err := c.Create(ctx, "jobs", postbox.Durable())
	if err != nil {
		t.Fatal(err)
	}
	before := scrape(t, url)
	for name, want := range map[string]float64{
		"postbox_mailbox_queued_messages":     0,
		"postbox_mailbox_sent_messages_total": 0,
		"postbox_mailbox_acks_total":          0,
	} {
		if got := value(before, name, "mailbox", "jobs"); got != want {
			t.Errorf("before: %s{mailbox=jobs} = %v, want %v", name, got, want)
		}
	}
	if got := value(before, "postbox_connections", "", ""); got < 1 {
		t.Errorf("postbox_connections = %v, want at least 1", got)
	}

	for range 3 {
		if _, err := mb.Send(ctx, []byte("job")); err != nil {
			t.Fatal(err)
		}
	}
	mid := scrape(t, url)
	if got := value(mid, "postbox_mailbox_queued_messages", "mailbox", "jobs"); got != 3 {
		t.Errorf("after 3 sends: depth %v, want 3", got)
	}
	if got := value(mid, "postbox_mailbox_queued_bytes", "mailbox", "jobs"); got != 9 {
		t.Errorf("after 3 sends: queued bytes %v, want 9", got)
	}
	if got := value(mid, "postbox_mailbox_sent_messages_total", "mailbox", "jobs"); got != 3 {
		t.Errorf("after 3 sends: sent %v, want 3", got)
	}

	// Two acked, one nacked and received again (a redelivery), then acked.
	for i := range 3 {
		m, err := mb.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			if err := m.Nack(ctx); err != nil {
				t.Fatal(err)
			}
			if m, err = mb.Receive(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	after := scrape(t, url)
	for name, want := range map[string]float64{
		"postbox_mailbox_queued_messages":          0,
		"postbox_mailbox_in_flight_messages":       0,
		"postbox_mailbox_delivered_messages_total": 4,
		"postbox_mailbox_consumed_messages_total":  3,
		"postbox_mailbox_acks_total":               3,
		"postbox_mailbox_nacks_total":              1,
		"postbox_mailbox_redeliveries_total":       1,
		"postbox_mailbox_dead_letters_total":       0,
		"postbox_mailbox_expired_messages_total":   0,
	} {
		if got := value(after, name, "mailbox", "jobs"); got != want {
			t.Errorf("after receives: %s{mailbox=jobs} = %v, want %v", name, got, want)
		}
	}
	if got := value(after, "postbox_mailbox_capacity_messages", "mailbox", "jobs"); !math.IsInf(got, 1) {
		t.Errorf("capacity of an unbounded mailbox = %v, want +Inf", got)
	}
	// The first deliveries only: the redelivery is not a send's latency.
	if got := value(after, "postbox_delivery_latency_seconds", "", ""); got != 3 {
		t.Errorf("delivery latency observations = %v, want 3", got)
	}
	if got := value(after, "postbox_store_fsyncs_total", "", ""); got <= value(before, "postbox_store_fsyncs_total", "", "") {
		t.Errorf("fsyncs did not move: %v then %v", value(before, "postbox_store_fsyncs_total", "", ""), got)
	}
	if got, n := value(after, "postbox_store_fsync_duration_seconds", "", ""), value(after, "postbox_store_fsyncs_total", "", ""); got < 1 || got > n {
		t.Errorf("fsync latency observations = %v, want 1..%v (the fsyncs)", got, n)
	}
	if got := value(after, "postbox_store_size_bytes", "", ""); got <= 0 {
		t.Errorf("store size = %v, want > 0", got)
	}
	if got := value(after, "postbox_account_mailboxes", "", ""); got < 1 {
		t.Errorf("account mailboxes = %v, want the creator's 1", got)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "go_build_info"} {
		if after[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
}

// Every postbox_ family follows the naming conventions: counters end in
// _total, histograms of time in _seconds, and the collector describes
// what it collects (a pedantic registry checks that).
func TestMetricNamesFollowConventions(t *testing.T) {
	testbroker.CheckGoroutines(t)
	cfg := broker.DefaultConfig()
	cfg.DataDir, cfg.NoSync = t.TempDir(), true
	b := testbroker.Start(t, &cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Durable: the store (and its families) opens when first needed.
	if _, err := b.Dial(t).Create(ctx, "a", postbox.Durable()); err != nil {
		t.Fatal(err)
	}
	// A pedantic registry checks that what is collected was described
	// and is consistent.
	ped := prometheus.NewPedanticRegistry()
	ped.MustRegister(metrics.NewCollector(b))
	if _, err := ped.Gather(); err != nil {
		t.Fatalf("pedantic gather: %v", err)
	}
	fams, err := metrics.NewRegistry(b).Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range fams {
		name := f.GetName()
		if !strings.HasPrefix(name, "postbox_") {
			continue
		}
		seen++
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			if !strings.HasSuffix(name, "_total") {
				t.Errorf("counter %s does not end in _total", name)
			}
		case dto.MetricType_HISTOGRAM:
			if !strings.HasSuffix(name, "_seconds") {
				t.Errorf("histogram %s does not end in _seconds", name)
			}
		default:
			if strings.HasSuffix(name, "_total") {
				t.Errorf("%s %s ends in _total", f.GetType(), name)
			}
		}
		if f.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
	}
	if seen < 30 {
		t.Errorf("only %d postbox_ families", seen)
	}
}

// TestScrapeCountsSubjects: the subject metrics follow a real broker's
// subscriptions: subscribers per pattern, events delivered, and the
// drops of a drop-newest subscription that does not read; a bound
// mailbox's own subscription is not counted.
func TestScrapeCountsSubjects(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	srv := httptest.NewServer(metrics.Handler(b))
	defer srv.Close()
	url := srv.URL + "/metrics"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	pub, sc := b.Dial(t), b.Dial(t)
	s1, err := sc.Subscribe(ctx, "orders.*", postbox.Buffer(64))
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := sc.Subscribe(ctx, "orders.*", postbox.Queue("workers"), postbox.Buffer(2), postbox.WithPolicy(postbox.PolicyDropNewest))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := pub.Create(ctx, "archive"); err != nil {
		t.Fatal(err)
	}
	if err := pub.Bind(ctx, "audit.>", "archive"); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := pub.Publish(ctx, "orders.eu", []byte("o")); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 { // s1 takes all five; s2 (not read) two, then drops
		if _, err := s1.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	m := scrape(t, url)
	for name, want := range map[string]float64{
		"postbox_subject_subscribers":            2,
		"postbox_subject_queue_groups":           1,
		"postbox_subject_delivered_events_total": 7,
		"postbox_subject_dropped_events_total":   3,
	} {
		if got := value(m, name, "pattern", "orders.*"); got != want {
			t.Errorf("%s{pattern=orders.*} = %v, want %v", name, got, want)
		}
	}
	if got := value(m, "postbox_subject_subscribers", "pattern", "audit.>"); got != -1 {
		t.Errorf("the binding's pattern is listed: %v subscribers", got)
	}
}
