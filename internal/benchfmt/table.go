package benchfmt

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// TableWidth is the width WriteTable keeps to.
const TableWidth = 100

// column is one column of the table: its title, and a row's cell ("" when
// the field does not apply to the row).
type column struct {
	title string
	left  bool
	cell  func(i int, r Row) string
}

// WriteTable prints rows as a table at most TableWidth columns wide: rows
// are numbered, a ratio names the row it compares with by its number
// ("0.52× #3"), columns no row has a value for are left out, figure names
// wrap within their column, and notes follow the table, by row number.
func WriteTable(w io.Writer, rows []Row) error {
	index := map[[2]any]int{}
	for i, r := range rows {
		if _, dup := index[[2]any{r.Name, r.Size}]; !dup {
			index[[2]any{r.Name, r.Size}] = i + 1
		}
	}
	vs := func(name string, size int, ratio float64) string {
		if ratio == 0 {
			return ""
		}
		return ratioText(ratio) + " #" + strconv.Itoa(index[[2]any{name, size}])
	}
	cols := []column{
		{"#", false, func(i int, r Row) string { return strconv.Itoa(i + 1) }},
		{"FIGURE", true, func(i int, r Row) string { return r.Name }},
		{"SIZE", false, func(i int, r Row) string { return sizeText(r.Size) }},
		{"P50", false, func(i int, r Row) string { return nsText(r.P50) }},
		{"P99", false, func(i int, r Row) string { return nsText(r.P99) }},
		{"MSGS/S", false, func(i int, r Row) string { return rateText(r.MsgsPerSec) }},
		{"MB/S", false, func(i int, r Row) string { return rateText(r.BytesPerSec / 1e6) }},
		{"CPU s", false, func(i int, r Row) string { return cpuText(r.CPUSeconds) }},
		{"VS BASELINE", true, func(i int, r Row) string { return vs(r.Baseline, r.Size, r.Ratio) }},
		{"VS CEILING", true, func(i int, r Row) string { return vs(r.Ceiling, r.Size, r.CeilingRatio) }},
	}
	const gap = 2
	var shown []column
	var cells [][]string // [column][row]
	for _, c := range cols {
		vals := make([]string, len(rows))
		some := false
		for i, r := range rows {
			vals[i] = c.cell(i, r)
			some = some || vals[i] != ""
		}
		if some || c.title == "FIGURE" {
			shown = append(shown, c)
			cells = append(cells, vals)
		}
	}
	widths := make([]int, len(shown))
	rest := TableWidth
	fig := -1
	for c, col := range shown {
		widths[c] = utf8.RuneCountInString(col.title)
		for _, v := range cells[c] {
			widths[c] = max(widths[c], utf8.RuneCountInString(v))
		}
		if col.title == "FIGURE" {
			fig = c
			continue
		}
		rest -= widths[c] + gap
	}
	widths[fig] = min(widths[fig], max(rest, 16))

	var b strings.Builder
	line := func(vals []string) {
		var l strings.Builder
		for c, v := range vals {
			if c > 0 {
				l.WriteString(strings.Repeat(" ", gap))
			}
			pad := strings.Repeat(" ", max(widths[c]-utf8.RuneCountInString(v), 0))
			if shown[c].left {
				l.WriteString(v + pad)
			} else {
				l.WriteString(pad + v)
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
	titles := make([]string, len(shown))
	for c, col := range shown {
		titles[c] = col.title
	}
	line(titles)
	for i := range rows {
		names := wrap(cells[fig][i], widths[fig])
		for k, name := range names {
			vals := make([]string, len(shown))
			if k == 0 {
				for c := range shown {
					vals[c] = cells[c][i]
				}
			}
			vals[fig] = name
			line(vals)
		}
	}
	first := true
	for i, r := range rows {
		if r.Note == "" {
			continue
		}
		if first {
			b.WriteString("\nnotes:\n")
			first = false
		}
		num := fmt.Sprintf("%3d  ", i+1)
		for k, l := range wrap(r.Note, TableWidth-len(num)) {
			if k > 0 {
				num = strings.Repeat(" ", len(num))
			}
			b.WriteString(num + l + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// wrap breaks s at spaces into lines of at most width runes (a word
// longer than width is cut).
func wrap(s string, width int) []string {
	var lines []string
	cur := ""
	for _, word := range strings.Fields(s) {
		for utf8.RuneCountInString(word) > width {
			if cur != "" {
				lines, cur = append(lines, cur), ""
			}
			r := []rune(word)
			lines, word = append(lines, string(r[:width])), string(r[width:])
		}
		switch {
		case cur == "":
			cur = word
		case utf8.RuneCountInString(cur)+1+utf8.RuneCountInString(word) <= width:
			cur += " " + word
		default:
			lines, cur = append(lines, cur), word
		}
	}
	if cur != "" || len(lines) == 0 {
		lines = append(lines, cur)
	}
	return lines
}

// WriteCSV prints a header and one record per row; a field that does
// not apply to a row is empty. Latencies are in nanoseconds.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"name", "size", "p50_ns", "p99_ns", "msgs_per_sec", "bytes_per_sec", "cpu_seconds",
		"baseline", "ratio", "ceiling", "ceiling_ratio", "note"})
	num := func(v float64, prec int) string {
		if v == 0 {
			return ""
		}
		return strconv.FormatFloat(v, 'f', prec, 64)
	}
	integer := func(v int64) string {
		if v == 0 {
			return ""
		}
		return strconv.FormatInt(v, 10)
	}
	for _, r := range rows {
		cw.Write([]string{r.Name, strconv.Itoa(r.Size), integer(r.P50), integer(r.P99), num(r.MsgsPerSec, 1),
			num(r.BytesPerSec, 0), num(r.CPUSeconds, 3), r.Baseline, num(r.Ratio, 4), r.Ceiling, num(r.CeilingRatio, 4), r.Note})
	}
	cw.Flush()
	return cw.Error()
}

func sizeText(n int) string {
	switch {
	case n == 0:
		return ""
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// nsText is a latency to three significant figures or so.
func nsText(v int64) string {
	d := time.Duration(v)
	switch {
	case v == 0:
		return ""
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", v)
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func rateText(v float64) string {
	switch {
	case v == 0:
		return ""
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.1f", v)
}

// ratioText keeps two significant figures below 1 (0.37×, 0.0015×) and
// two decimals above (1.65×, 19.16×).
func ratioText(r float64) string {
	if r < 1 {
		return strconv.FormatFloat(r, 'g', 2, 64) + "×"
	}
	return fmt.Sprintf("%.2f×", r)
}

func cpuText(v float64) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f", v)
}
