package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
)

var topT0 = time.Date(2026, 12, 2, 20, 0, 0, 0, time.UTC)

func topInfo(name string, depth, sent, received uint64) postbox.Info {
	return postbox.Info{Name: name, Depth: depth, Sent: sent, Received: received, Created: topT0}
}

func rowNames(rows []mailboxRow) string {
	var n []string
	for _, r := range rows {
		n = append(n, r.Name)
	}
	return strings.Join(n, ",")
}

func TestTopRatesAreTheCounterChangeBetweenTwoSnapshots(t *testing.T) {
	m := &topModel{}
	m.Observe(topSnapshot{At: topT0, Mailboxes: []postbox.Info{topInfo("a", 0, 100, 50)}})
	if r := m.MailboxRows()[0]; r.SendRate != -1 || r.RecvRate != -1 {
		t.Fatalf("first snapshot: rates %v %v, want unknown (-1)", r.SendRate, r.RecvRate)
	}
	m.Observe(topSnapshot{At: topT0.Add(2 * time.Second), Mailboxes: []postbox.Info{topInfo("a", 0, 300, 150)}})
	r := m.MailboxRows()[0]
	if r.SendRate != 100 || r.RecvRate != 50 {
		t.Fatalf("rates %v %v, want 100 and 50 per second", r.SendRate, r.RecvRate)
	}
}

func TestTopRateIsUnknownWhenACounterGoesBackOrTheMailboxWasRecreated(t *testing.T) {
	m := &topModel{}
	recreated := topInfo("b", 0, 500, 500)
	recreated.Created = topT0.Add(time.Second)
	m.Observe(topSnapshot{At: topT0, Mailboxes: []postbox.Info{topInfo("a", 0, 100, 100), topInfo("b", 0, 1, 1)}})
	m.Observe(topSnapshot{At: topT0.Add(time.Second), Mailboxes: []postbox.Info{topInfo("a", 0, 10, 10), recreated, topInfo("c", 0, 9, 9)}})
	for _, r := range m.MailboxRows() {
		if r.SendRate != -1 || r.RecvRate != -1 {
			t.Errorf("%s: rates %v %v, want unknown", r.Name, r.SendRate, r.RecvRate)
		}
	}
}

func TestTopSortKeysCycleColumnsAndReverse(t *testing.T) {
	m := &topModel{}
	m.Observe(topSnapshot{At: topT0, Mailboxes: []postbox.Info{topInfo("b", 5, 0, 0), topInfo("a", 1, 0, 0), topInfo("c", 9, 0, 0)}})
	if got := rowNames(m.MailboxRows()); got != "a,b,c" {
		t.Fatalf("default order %s, want by name", got)
	}
	m.Key('3') // DEPTH
	if got := rowNames(m.MailboxRows()); got != "a,b,c" {
		t.Fatalf("by depth %s", got)
	}
	m.Key('3') // again: reversed
	if got := rowNames(m.MailboxRows()); got != "c,b,a" {
		t.Fatalf("by depth, reversed: %s", got)
	}
	m.Key('r')
	if got := rowNames(m.MailboxRows()); got != "a,b,c" {
		t.Fatalf("r: %s", got)
	}
	m.Key('S')
	m.Key('S')
	m.Key('S') // three left of DEPTH wraps to the last column
	if got := m.sorts[sectionMailboxes].col; got != len(mailboxColumns)-1 {
		t.Fatalf("S from column 2 three times: column %d", got)
	}
	m.Key('s')
	if got := m.sorts[sectionMailboxes].col; got != 0 {
		t.Fatalf("s from the last column: column %d, want 0", got)
	}
}

func TestTopSortsByRateWithTiesByName(t *testing.T) {
	m := &topModel{}
	m.Observe(topSnapshot{At: topT0, Mailboxes: []postbox.Info{topInfo("x", 0, 0, 0), topInfo("y", 0, 0, 0), topInfo("z", 0, 0, 0)}})
	m.Observe(topSnapshot{At: topT0.Add(time.Second), Mailboxes: []postbox.Info{topInfo("x", 0, 10, 0), topInfo("y", 0, 30, 0), topInfo("z", 0, 10, 0)}})
	m.Key('5') // SEND/S
	m.Key('5') // descending
	if got := rowNames(m.MailboxRows()); got != "y,x,z" {
		t.Fatalf("by send rate, descending: %s, want y then the tie x,z by name", got)
	}
}

func TestTopHidesInboxesUnlessAll(t *testing.T) {
	in := topInfo("_inbox.1", 0, 0, 0)
	in.Inbox = true
	m := &topModel{}
	m.Observe(topSnapshot{At: topT0, Mailboxes: []postbox.Info{topInfo("a", 0, 0, 0), in}})
	if got := rowNames(m.MailboxRows()); got != "a" {
		t.Fatalf("rows %s", got)
	}
	m.All = true
	if got := rowNames(m.MailboxRows()); got != "_inbox.1,a" {
		t.Fatalf("--all rows %s", got)
	}
}

func TestTopTabShowsSubjectsWithDeliveryRates(t *testing.T) {
	m := &topModel{}
	m.Observe(topSnapshot{At: topT0, Subjects: []postbox.SubjectStat{{Pattern: "orders.*", Subscribers: 2, Delivered: 10}}})
	m.Observe(topSnapshot{At: topT0.Add(time.Second), Subjects: []postbox.SubjectStat{{Pattern: "orders.*", Subscribers: 2, Delivered: 40, Dropped: 3}}})
	if m.Key('\t') {
		t.Fatal("Tab quit")
	}
	r := m.SubjectRows()[0]
	if r.DeliverRate != 30 || r.DropRate != 3 {
		t.Fatalf("rates %v %v", r.DeliverRate, r.DropRate)
	}
	text := topText(m.Lines(100, 10))
	for _, want := range []string{"[Subjects 1]", "SUBJECT↑", "orders.*", "30.0"} {
		if !strings.Contains(text, want) {
			t.Errorf("screen lacks %q:\n%s", want, text)
		}
	}
}

func TestTopQuitKeys(t *testing.T) {
	for _, k := range []rune{'q', 'Q'} {
		if !(&topModel{}).Key(k) {
			t.Errorf("%q does not quit", k)
		}
	}
	if (&topModel{}).Key('x') {
		t.Error("x quits")
	}
}

func topText(lines []topLine) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Text + "\n")
	}
	return b.String()
}

func TestTopLinesFillTheScreenAndScrollRowsThatDoNotFit(t *testing.T) {
	m := &topModel{Where: "s.sock", Interval: time.Second}
	var infos []postbox.Info
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		infos = append(infos, topInfo(n, 1, 0, 0))
	}
	m.Observe(topSnapshot{At: topT0, Mailboxes: infos})
	lines := m.Lines(60, 8)
	if len(lines) != 8 {
		t.Fatalf("%d lines for a height of 8", len(lines))
	}
	for _, l := range lines {
		if n := len([]rune(l.Text)); n > 60 {
			t.Errorf("line %q is %d wide", l.Text, n)
		}
	}
	text := topText(lines)
	if !strings.Contains(lines[2].Text, "rows 1–3 of 6") || !lines[3].Header || !lines[7].Header ||
		!strings.HasPrefix(lines[4].Text, "a ") || !strings.HasPrefix(lines[6].Text, "c ") {
		t.Fatalf("screen:\n%s", text)
	}
	for range 10 { // past the end: clamped
		m.Key('j')
	}
	lines = m.Lines(60, 8)
	if !strings.Contains(lines[2].Text, "rows 4–6 of 6") || !strings.HasPrefix(lines[4].Text, "d ") {
		t.Fatalf("scrolled to the end:\n%s", topText(lines))
	}
	m.Key('k')
	if lines = m.Lines(60, 8); !strings.HasPrefix(lines[4].Text, "c ") {
		t.Fatalf("one back up:\n%s", topText(lines))
	}
	if lines = m.Lines(60, 20); strings.Contains(lines[2].Text, "rows") || !strings.HasPrefix(lines[4].Text, "a ") {
		t.Fatalf("all rows fit, yet:\n%s", topText(lines))
	}
}

func TestTopShowsTheBrokerUnreachableAndKeepsTheLastRows(t *testing.T) {
	m := &topModel{Where: "s.sock", Interval: time.Second}
	m.Fail(errors.New("dial: connection refused"), topT0)
	m.Fail(errors.New("dial: connection refused"), topT0.Add(3*time.Second))
	lines := m.Lines(120, 10)
	if !lines[1].Alert || lines[1].Text != "broker unreachable (retrying every 1s, failing for 3s): dial: connection refused" {
		t.Fatalf("status line %+v", lines[1])
	}
	m.Observe(topSnapshot{At: topT0.Add(4 * time.Second), Mailboxes: []postbox.Info{topInfo("a", 0, 0, 0)}})
	if l := m.Lines(120, 10)[1]; l.Alert {
		t.Fatalf("after a good refresh the status is %+v", l)
	}
	m.Fail(errors.New("list: broken pipe"), topT0.Add(5*time.Second))
	text := topText(m.Lines(120, 10))
	if !strings.Contains(text, "rows below are from") || !strings.Contains(text, "\na ") {
		t.Fatalf("after a failure the last rows stay:\n%s", text)
	}
}
