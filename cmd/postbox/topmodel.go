package main

// The model behind `postbox top` (top.go): successive LIST and TOPICS
// snapshots in, rows with rates out, sorted by the column the user chose,
// laid out as lines of text for a screen of a given size. It does no I/O,
// starts no goroutine and reads no clock (every snapshot carries its own
// time), so its tests feed it snapshots and keys and read the lines back;
// the terminal shell in top.go only copies the lines to the screen.

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/postbox-ipc/postbox"
)

// topSnapshot is what one refresh read from the broker.
type topSnapshot struct {
	At        time.Time
	Mailboxes []postbox.Info
	Subjects  []postbox.SubjectStat
}

// topSection is the table shown: mailboxes or subjects.
type topSection int

const (
	sectionMailboxes topSection = iota
	sectionSubjects
)

// topColumn is one column of a section's table. less orders two rows by
// the column (ascending); cell formats a row's value.
type topColumn[R any] struct {
	title string
	left  bool // left-aligned (names); numbers are right-aligned
	cell  func(R) string
	less  func(a, b R) int
}

// mailboxRow is one mailbox with its rates, which are negative when not
// known yet (the first snapshot, or a counter that went backwards
// because the mailbox was recreated or the broker restarted).
type mailboxRow struct {
	postbox.Info
	SendRate, RecvRate float64
}

// subjectRow is one subscribed pattern with its rates.
type subjectRow struct {
	postbox.SubjectStat
	DeliverRate, DropRate float64
}

var mailboxColumns = []topColumn[mailboxRow]{
	{"NAME", true, func(r mailboxRow) string { return r.Name }, func(a, b mailboxRow) int { return cmp.Compare(a.Name, b.Name) }},
	{"KIND", true, func(r mailboxRow) string { return kind(r.Info) }, func(a, b mailboxRow) int { return cmp.Compare(kind(a.Info), kind(b.Info)) }},
	{"DEPTH", false, func(r mailboxRow) string { return topCount(r.Depth) }, func(a, b mailboxRow) int { return cmp.Compare(a.Depth, b.Depth) }},
	{"BYTES", false, func(r mailboxRow) string { return topCount(r.Bytes) }, func(a, b mailboxRow) int { return cmp.Compare(a.Bytes, b.Bytes) }},
	{"SEND/S", false, func(r mailboxRow) string { return rateText(r.SendRate) }, func(a, b mailboxRow) int { return cmp.Compare(a.SendRate, b.SendRate) }},
	{"RECV/S", false, func(r mailboxRow) string { return rateText(r.RecvRate) }, func(a, b mailboxRow) int { return cmp.Compare(a.RecvRate, b.RecvRate) }},
	{"IN FLIGHT", false, func(r mailboxRow) string { return topCount(r.InFlight) }, func(a, b mailboxRow) int { return cmp.Compare(a.InFlight, b.InFlight) }},
	{"CONSUMERS", false, func(r mailboxRow) string { return topCount(r.Consumers) }, func(a, b mailboxRow) int { return cmp.Compare(a.Consumers, b.Consumers) }},
	{"WAITING", false, func(r mailboxRow) string { return topCount(r.Receivers) }, func(a, b mailboxRow) int { return cmp.Compare(a.Receivers, b.Receivers) }},
	{"BLOCKED", false, func(r mailboxRow) string { return topCount(r.BlockedSenders) }, func(a, b mailboxRow) int { return cmp.Compare(a.BlockedSenders, b.BlockedSenders) }},
}

var subjectColumns = []topColumn[subjectRow]{
	{"SUBJECT", true, func(r subjectRow) string { return r.Pattern }, func(a, b subjectRow) int { return cmp.Compare(a.Pattern, b.Pattern) }},
	{"SUBSCRIBERS", false, func(r subjectRow) string { return topCount(r.Subscribers) }, func(a, b subjectRow) int { return cmp.Compare(a.Subscribers, b.Subscribers) }},
	{"QUEUES", false, func(r subjectRow) string { return topCount(r.Queues) }, func(a, b subjectRow) int { return cmp.Compare(a.Queues, b.Queues) }},
	{"DELIVERED/S", false, func(r subjectRow) string { return rateText(r.DeliverRate) }, func(a, b subjectRow) int { return cmp.Compare(a.DeliverRate, b.DeliverRate) }},
	{"DROPPED/S", false, func(r subjectRow) string { return rateText(r.DropRate) }, func(a, b subjectRow) int { return cmp.Compare(a.DropRate, b.DropRate) }},
	{"DELIVERED", false, func(r subjectRow) string { return topCount(r.Delivered) }, func(a, b subjectRow) int { return cmp.Compare(a.Delivered, b.Delivered) }},
	{"DROPPED", false, func(r subjectRow) string { return topCount(r.Dropped) }, func(a, b subjectRow) int { return cmp.Compare(a.Dropped, b.Dropped) }},
}

// topSort is a section's sort order.
type topSort struct {
	col  int
	desc bool
}

// topModel is the state of one `postbox top` session.
type topModel struct {
	Where    string        // the broker, as the title shows it
	Interval time.Duration // between refreshes, as the title shows it
	All      bool          // include endpoints' inboxes

	section topSection
	sorts   [2]topSort
	scroll  [2]int // each section's first row shown

	prev, cur *topSnapshot
	// err is the last refresh's error (nil once one succeeds); errAt is
	// when it happened, and failing since when refreshes began to fail.
	err            error
	errAt, failing time.Time
}

// Observe takes a successful refresh.
func (m *topModel) Observe(s topSnapshot) {
	m.prev, m.cur = m.cur, &s
	m.err = nil
	m.failing = time.Time{}
}

// Fail records a refresh that failed at now; the last rows stay on the
// screen under the error.
func (m *topModel) Fail(err error, now time.Time) {
	if m.err == nil {
		m.failing = now
	}
	m.err, m.errAt = err, now
}

// Key handles one key press (a rune; the shell maps Tab to '\t', the
// arrows up and down to 'k' and 'j', and Escape and Ctrl-C to 'q') and
// reports whether top should quit.
func (m *topModel) Key(k rune) (quit bool) {
	n := len(mailboxColumns)
	if m.section == sectionSubjects {
		n = len(subjectColumns)
	}
	s := &m.sorts[m.section]
	switch {
	case k == 'q' || k == 'Q':
		return true
	case k == '\t':
		m.section = 1 - m.section
	case k == 's':
		s.col = (s.col + 1) % n
	case k == 'S':
		s.col = (s.col + n - 1) % n
	case k == 'r':
		s.desc = !s.desc
	case k == 'j':
		m.scroll[m.section]++ // Lines clamps it
	case k == 'k':
		m.scroll[m.section] = max(m.scroll[m.section]-1, 0)
	case k >= '1' && k <= '9' && int(k-'1') < n:
		if c := int(k - '1'); c == s.col {
			s.desc = !s.desc
		} else {
			s.col = c
		}
	}
	return false
}

// topRate is the per-second change of a counter between two snapshots, or
// -1 when it cannot be known.
func topRate(prev, cur uint64, dt time.Duration) float64 {
	if dt <= 0 || cur < prev {
		return -1
	}
	return float64(cur-prev) / dt.Seconds()
}

// MailboxRows are the current snapshot's mailboxes, sorted.
func (m *topModel) MailboxRows() []mailboxRow {
	if m.cur == nil {
		return nil
	}
	before := map[string]postbox.Info{}
	var dt time.Duration
	if m.prev != nil {
		dt = m.cur.At.Sub(m.prev.At)
		for _, i := range m.prev.Mailboxes {
			before[i.Name] = i
		}
	}
	var rows []mailboxRow
	for _, i := range m.cur.Mailboxes {
		if i.Inbox && !m.All {
			continue
		}
		r := mailboxRow{Info: i, SendRate: -1, RecvRate: -1}
		if p, ok := before[i.Name]; ok && p.Created.Equal(i.Created) {
			r.SendRate, r.RecvRate = topRate(p.Sent, i.Sent, dt), topRate(p.Received, i.Received, dt)
		}
		rows = append(rows, r)
	}
	topSortRows(rows, mailboxColumns, m.sorts[sectionMailboxes], func(r mailboxRow) string { return r.Name })
	return rows
}

// SubjectRows are the current snapshot's subscribed patterns, sorted.
func (m *topModel) SubjectRows() []subjectRow {
	if m.cur == nil {
		return nil
	}
	before := map[string]postbox.SubjectStat{}
	var dt time.Duration
	if m.prev != nil {
		dt = m.cur.At.Sub(m.prev.At)
		for _, s := range m.prev.Subjects {
			before[s.Pattern] = s
		}
	}
	var rows []subjectRow
	for _, s := range m.cur.Subjects {
		r := subjectRow{SubjectStat: s, DeliverRate: -1, DropRate: -1}
		if p, ok := before[s.Pattern]; ok {
			r.DeliverRate, r.DropRate = topRate(p.Delivered, s.Delivered, dt), topRate(p.Dropped, s.Dropped, dt)
		}
		rows = append(rows, r)
	}
	topSortRows(rows, subjectColumns, m.sorts[sectionSubjects], func(r subjectRow) string { return r.Pattern })
	return rows
}

// topSortRows orders rows by the sort's column, ties by name, so that rows
// with equal values keep still between refreshes.
func topSortRows[R any](rows []R, cols []topColumn[R], s topSort, name func(R) string) {
	slices.SortStableFunc(rows, func(a, b R) int {
		c := cols[s.col].less(a, b)
		if s.desc {
			c = -c
		}
		if c == 0 {
			c = cmp.Compare(name(a), name(b))
		}
		return c
	})
}

// topLine is one line of the screen; Header lines are drawn highlighted
// and Alert lines in the alert colour.
type topLine struct {
	Text          string
	Header, Alert bool
}

// Lines lays the screen out for width×height cells (and keeps the
// scroll offset within the rows).
func (m *topModel) Lines(width, height int) []topLine {
	var lines []topLine
	add := func(l topLine) { lines = append(lines, l) }
	title := fmt.Sprintf("postbox top  %s  every %v", m.Where, m.Interval)
	if m.cur != nil {
		title += "  " + m.cur.At.Format("15:04:05")
	}
	add(topLine{Text: title})
	switch {
	case m.err != nil:
		msg := fmt.Sprintf("broker unreachable (retrying every %v, failing for %v", m.Interval, m.errAt.Sub(m.failing).Round(time.Second))
		if m.cur != nil {
			msg += ", rows below are from " + m.cur.At.Format("15:04:05")
		}
		msg += "): " + trimPrefix(m.err.Error())
		add(topLine{Text: msg, Alert: true})
	case m.cur == nil:
		add(topLine{Text: "connecting…"})
	default:
		add(topLine{})
	}
	mrows, srows := m.MailboxRows(), m.SubjectRows()
	tab := func(s topSection, name string, n int) string {
		if m.section == s {
			return fmt.Sprintf("[%s %d]", name, n)
		}
		return fmt.Sprintf(" %s %d ", name, n)
	}
	tabs := tab(sectionMailboxes, "Mailboxes", len(mrows)) + " " + tab(sectionSubjects, "Subjects", len(srows))
	var table []string
	if m.section == sectionMailboxes {
		table = topLayout(mrows, mailboxColumns, m.sorts[sectionMailboxes])
	} else {
		table = topLayout(srows, subjectColumns, m.sorts[sectionSubjects])
	}
	footer := "q quit  Tab mailboxes/subjects  s/S sort column  1-9 sort by column  r reverse  ↑↓ scroll"
	// The rows that fit under the tab line and the header, from the
	// scroll offset, which is clamped here to what the screen can show.
	header, rows := table[0], table[1:]
	fit := max(height-len(lines)-3, 0) // tab line, header, footer
	scroll := &m.scroll[m.section]
	*scroll = max(min(*scroll, len(rows)-fit), 0)
	shown := rows[*scroll:]
	if len(shown) > fit {
		shown = shown[:fit]
	}
	if len(shown) < len(rows) {
		tabs += fmt.Sprintf("   rows %d–%d of %d", *scroll+1, *scroll+len(shown), len(rows))
	}
	add(topLine{Text: tabs})
	add(topLine{Text: header, Header: true})
	for _, t := range shown {
		add(topLine{Text: t})
	}
	for len(lines) < height-1 {
		add(topLine{})
	}
	add(topLine{Text: footer, Header: true})
	for i := range lines {
		lines[i].Text = topClip(lines[i].Text, width)
	}
	return lines
}

// topLayout is a header and one line per row, columns padded to their
// widest cell; the sort column's title carries an arrow.
func topLayout[R any](rows []R, cols []topColumn[R], s topSort) []string {
	cells := make([][]string, len(rows)+1)
	widths := make([]int, len(cols))
	cells[0] = make([]string, len(cols))
	for c, col := range cols {
		t := col.title
		if c == s.col {
			t += map[bool]string{false: "↑", true: "↓"}[s.desc]
		}
		cells[0][c] = t
	}
	for i, r := range rows {
		cells[i+1] = make([]string, len(cols))
		for c, col := range cols {
			cells[i+1][c] = col.cell(r)
		}
	}
	for _, line := range cells {
		for c, v := range line {
			widths[c] = max(widths[c], len([]rune(v)))
		}
	}
	out := make([]string, len(cells))
	for i, line := range cells {
		var b strings.Builder
		for c, v := range line {
			pad := strings.Repeat(" ", widths[c]-len([]rune(v)))
			if c > 0 {
				b.WriteString("  ")
			}
			if cols[c].left {
				b.WriteString(v + pad)
			} else {
				b.WriteString(pad + v)
			}
		}
		out[i] = strings.TrimRight(b.String(), " ")
	}
	return out
}

// topClip cuts s to width runes.
func topClip(s string, width int) string {
	r := []rune(s)
	if len(r) <= width {
		return s
	}
	return string(r[:max(width, 0)])
}

// topCount formats a counter.
func topCount[T ~int | ~uint32 | ~uint64](v T) string { return strconv.FormatUint(uint64(v), 10) }

// rateText formats a per-second rate: "-" when unknown, else k/M scaled.
func rateText(v float64) string {
	switch {
	case v < 0:
		return "-"
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.1f", v)
}
