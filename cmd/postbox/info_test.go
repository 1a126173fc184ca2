package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/postbox-ipc/postbox/internal/testbroker"
)

func TestCLIInfoTableAndJSON(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "jobs", "--durable") // the store opens on first need: then it has a size
	table := ok(t, p, "", "info").stdout
	for _, want := range []string{"VERSION", "PID", "STARTED", "LISTENING", "unix " + p.Socket, "DATA",
		"CONNECTIONS", "LIMITS", "MEMORY"} {
		if !strings.Contains(table, want) {
			t.Errorf("info table has no %q:\n%s", want, table)
		}
	}
	if !regexp.MustCompile(`(?m)^MAILBOXES +1 of 65536$`).MatchString(table) {
		t.Errorf("info table does not count the one mailbox:\n%s", table)
	}
	var in struct {
		PID       int    `json:"pid"`
		DataDir   string `json:"data_dir"`
		Mailboxes int    `json:"mailboxes"`
		Listeners []struct {
			Network, Address string
		} `json:"listeners"`
		Limits struct {
			MaxMessage int64 `json:"max_message_bytes"`
		} `json:"limits"`
		StoreBytes int64 `json:"store_bytes"`
		RSSBytes   int64 `json:"rss_bytes"`
	}
	out := ok(t, p, "", "info", "-o", "json").stdout
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatalf("info -o json: %v\n%s", err, out)
	}
	if in.PID != p.Cmd.Process.Pid || in.Mailboxes != 1 || len(in.Listeners) != 1 || in.Listeners[0].Address != p.Socket ||
		in.Limits.MaxMessage != 4<<20 || in.StoreBytes <= 0 || in.RSSBytes <= 0 || !strings.HasSuffix(in.DataDir, "data") {
		t.Errorf("info -o json: %+v", in)
	}
	exits(t, p, 2, "info", "-o", "xml")
	exits(t, p, 2, "info", "extra")
}

// metricsURL starts a broker process with --metrics on a free loopback
// port and returns it with its metrics URL (from its log).
func metricsURL(t *testing.T) (*testbroker.Process, string) {
	t.Helper()
	testbroker.CheckGoroutines(t)
	p := testbroker.StartProcess(t, bin, "--metrics", "127.0.0.1:0")
	p.WaitLog(t, "metrics listening")
	m := regexp.MustCompile(`metrics=(http://\S+/metrics)`).FindStringSubmatch(p.Log())
	if m == nil {
		t.Fatalf("no metrics URL in the log:\n%s", p.Log())
	}
	return p, m[1]
}

func scrapeValue(t *testing.T, url, name, mailbox string) float64 {
	t.Helper()
	// No keep-alive: no client goroutine outlives the scrape.
	client := http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	f := fams[name]
	if f == nil {
		return -1
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "mailbox" && l.GetValue() == mailbox {
				if m.Counter != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func TestServeMetricsEndpointMovesWithSendsAndReceives(t *testing.T) {
	p, url := metricsURL(t)
	ok(t, p, "", "create", "jobs")
	if got := scrapeValue(t, url, "postbox_mailbox_sent_messages_total", "jobs"); got != 0 {
		t.Fatalf("sent before any send: %v", got)
	}
	ok(t, p, "a\nb\nc\n", "send", "jobs", "--lines")
	if got := scrapeValue(t, url, "postbox_mailbox_queued_messages", "jobs"); got != 3 {
		t.Errorf("depth after 3 sends: %v", got)
	}
	ok(t, p, "", "recv", "jobs", "--count", "2")
	if got := scrapeValue(t, url, "postbox_mailbox_consumed_messages_total", "jobs"); got != 2 {
		t.Errorf("consumed after 2 receives: %v", got)
	}
	if got := scrapeValue(t, url, "postbox_mailbox_queued_messages", "jobs"); got != 1 {
		t.Errorf("depth after 2 receives: %v", got)
	}
}

func TestServeMetricsRefusesANonLoopbackAddressWithoutPublic(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	for _, addr := range []string{"0.0.0.0:0", ":9464", "192.0.2.1:9464", "example.org:9464"} {
		r := run(t, nil, "", "serve", "--memory", "--socket", sock, "--metrics", addr)
		if r.code != 2 || !strings.Contains(r.stderr, "--metrics-public") {
			t.Errorf("serve --metrics %s: exit %d, stderr %q; want 2 naming --metrics-public", addr, r.code, r.stderr)
		}
	}
	r := run(t, nil, "", "serve", "--memory", "--socket", sock, "--metrics", "nonsense")
	if r.code != 2 || !strings.Contains(r.stderr, "HOST:PORT") {
		t.Errorf("serve --metrics nonsense: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestMetricsAddressMustBeLoopbackUnlessPublic(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		public bool
		want   error // nil: accepted
	}{
		{"127.0.0.1:9464", false, nil},
		{"[::1]:9464", false, nil},
		{"localhost:0", false, nil},
		{"127.1.2.3:1", false, nil},
		{"0.0.0.0:9464", false, errMetricsPublic},
		{":9464", false, errMetricsPublic},
		{"[::]:9464", false, errMetricsPublic},
		{"10.0.0.1:9464", false, errMetricsPublic},
		{"metrics.example.org:9464", false, errMetricsPublic},
		{"0.0.0.0:9464", true, nil},
		{"", false, nil}, // no --metrics
	} {
		m := metricsFlags{addr: tc.addr, public: tc.public}
		err := m.check()
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("--metrics %q (public %v): %v, want %v", tc.addr, tc.public, err, tc.want)
		}
	}
	if err := (&metricsFlags{addr: "9464"}).check(); err == nil || errors.Is(err, errMetricsPublic) {
		t.Errorf("--metrics 9464 (no host): %v, want a HOST:PORT error", err)
	}
}
