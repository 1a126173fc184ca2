package benchfmt

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// sampleRows are figures shaped like postbox bench's, with long names.
func sampleRows() []Row {
	rows := []Row{
		{Name: "mailbox throughput (4 senders, 2 receivers, acks on) over tls://127.0.0.1:7443", Size: 4096, MsgsPerSec: 812345, BytesPerSec: 812345 * 4096,
			Baseline: "raw unix socket echo, one write per message", Ceiling: "baseline: raw unix socket echo, pipelined", Note: "Publisher, 1024 sends in flight, 230 per SEND frame"},
		{Name: "baseline: raw unix socket echo, pipelined", Size: 4096, MsgsPerSec: 35.2e6, BytesPerSec: 35.2e6 * 4096},
		{Name: "raw unix socket echo, one write per message", Size: 4096, MsgsPerSec: 560000, BytesPerSec: 560000 * 4096, Note: "no framing work, no broker"},
		{Name: "mailbox send→receive latency", Size: 64, P50: 14712, P99: 1234567, Baseline: "baseline: raw unix socket echo round trip"},
		{Name: "baseline: raw unix socket echo round trip", Size: 64, P50: 6500, P99: 9000},
	}
	Fill(rows)
	return rows
}

func TestWriteTableFitsTableWidth(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, sampleRows()); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(b.String(), "\n") {
		if n := utf8.RuneCountInString(l); n > TableWidth {
			t.Errorf("%d columns: %q", n, l)
		}
	}
	for _, want := range []string{"1.45× #3", "0.023× #2", "2.26× #5", "14.7µs", "1.23ms", "812.3k", "notes:", "  1  Publisher"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestWriteTableLeavesOutColumnsNoFigureHas(t *testing.T) {
	var b bytes.Buffer
	rows := []Row{{Name: "baseline: raw unix socket echo round trip", Size: 64, P50: 6500, P99: 9000}}
	if err := WriteTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	header := strings.SplitN(b.String(), "\n", 2)[0]
	for _, absent := range []string{"MSGS/S", "MB/S", "CPU s", "VS BASELINE", "VS CEILING"} {
		if strings.Contains(header, absent) {
			t.Errorf("header %q has %s, which no row has", header, absent)
		}
	}
	if strings.Contains(b.String(), " 0 ") || strings.Contains(b.String(), "notes:") {
		t.Errorf("table:\n%s", b.String())
	}
}

func TestWriteCSVLeavesFieldsThatDoNotApplyEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := WriteCSV(&b, sampleRows()); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 6 || recs[0][0] != "name" || recs[0][4] != "msgs_per_sec" {
		t.Fatalf("records %q", recs)
	}
	lat := recs[4]
	if lat[0] != "mailbox send→receive latency" || lat[2] != "14712" || lat[4] != "" || lat[5] != "" || lat[8] != "2.2634" {
		t.Errorf("latency record %q", lat)
	}
	if thr := recs[1]; thr[2] != "" || thr[4] != "812345.0" || thr[8] != "1.4506" || thr[10] != "0.0231" {
		t.Errorf("throughput record %q", thr)
	}
}

func TestWriteJSONLeavesFieldsThatDoNotApplyOut(t *testing.T) {
	var b bytes.Buffer
	rows := sampleRows()
	rows[3].Samples = []time.Duration{time.Microsecond}
	if err := WriteJSON(&b, rows[3:4]); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"msgs_per_sec", "bytes_per_sec", "ceiling", "Samples", "samples"} {
		if _, ok := m[absent]; ok {
			t.Errorf("%s present in %s", absent, b.String())
		}
	}
	if m["p50_ns"] != 14712.0 || m["ratio"] == nil {
		t.Errorf("%s", b.String())
	}
}

func TestWrapKeepsWordsWithinTheWidth(t *testing.T) {
	got := wrap("mailbox throughput (1 sender, 1 receiver, acks on) over tls://127.0.0.1:7443/averyveryverylongpath", 20)
	for _, l := range got {
		if utf8.RuneCountInString(l) > 20 {
			t.Errorf("%q is wider than 20", l)
		}
	}
	if strings.ReplaceAll(strings.Join(got, ""), " ", "") != strings.ReplaceAll("mailbox throughput (1 sender, 1 receiver, acks on) over tls://127.0.0.1:7443/averyveryverylongpath", " ", "") {
		t.Errorf("wrap lost text: %q", got)
	}
}
