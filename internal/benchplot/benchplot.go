// Package benchplot draws `postbox bench` figures (package benchfmt's
// rows) as one picture: on the left the latency distributions (each
// latency figure's samples as a cumulative curve, its baseline dashed
// beside it), on the right the throughput figures as bars on a log scale,
// baselines in grey. The picture is SVG or PNG, chosen by the file name's
// extension. It uses gonum.org/v1/plot; nothing else in postbox does.
package benchplot

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/postbox-ipc/postbox/internal/benchfmt"
)

// Errors.
var (
	ErrFormat  = errors.New("benchplot: the plot file's name must end in .svg or .png")
	ErrNothing = errors.New("benchplot: no latency samples and no throughput figures to draw")
)

// Format is an image format.
type Format int

// The formats.
const (
	SVG Format = iota + 1
	PNG
)

// FormatOf is the format a file name asks for.
func FormatOf(path string) (Format, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".svg":
		return SVG, nil
	case ".png":
		return PNG, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrFormat, path)
}

// Size of the picture.
const (
	Width  = 28 * vg.Centimeter
	Height = 10 * vg.Centimeter
)

// WriteFile draws rows into path, in the format its extension names.
func WriteFile(path string, rows []benchfmt.Row) error {
	f, err := FormatOf(path)
	if err != nil {
		return err
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := Write(out, f, rows); err != nil {
		out.Close()
		os.Remove(path)
		return err
	}
	return out.Close()
}

// Write draws rows to w in format f.
func Write(w io.Writer, f Format, rows []benchfmt.Row) error {
	lat, thr := latencyPlot(rows), throughputPlot(rows)
	var plots []*plot.Plot
	for _, p := range []*plot.Plot{lat, thr} {
		if p != nil {
			plots = append(plots, p)
		}
	}
	if len(plots) == 0 {
		return ErrNothing
	}
	var c vg.CanvasWriterTo
	switch f {
	case SVG:
		c = vgsvg.New(Width, Height)
	case PNG:
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(Width, Height), vgimg.UseDPI(110))}
	default:
		return ErrFormat
	}
	dc := draw.New(c.(vg.CanvasSizer))
	tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Centimeter, PadTop: vg.Millimeter * 3,
		PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
	canvases := plot.Align([][]*plot.Plot{plots}, tiles, dc)
	for i, p := range plots {
		p.Draw(canvases[0][i])
	}
	_, err := c.WriteTo(w)
	return err
}

var (
	measured  = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	baseline  = color.RGBA{R: 0x88, G: 0x88, B: 0x88, A: 0xff}
	palette   = []color.Color{measured, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}}
	dashes    = []vg.Length{vg.Points(4), vg.Points(3)}
	dots      = []vg.Length{vg.Points(1.5), vg.Points(2.5)}
	quantiles = 200
	// topPercentile is where the curves stop: the slowest samples of a
	// run on a shared machine would stretch the axis past the rest.
	topPercentile = 99.9
)

// latencyPlot is each latency figure's samples as a cumulative
// distribution up to topPercentile (latency on a log scale), or nil if no
// row has samples.
func latencyPlot(rows []benchfmt.Row) *plot.Plot {
	p := plot.New()
	p.Title.Text = "send → receive latency (cumulative, to p99.9)"
	p.X.Label.Text = "latency, µs"
	p.Y.Label.Text = "percentile"
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 100
	p.Legend.Top, p.Legend.Left = false, false // bottom right: the curves rise on the left
	p.Legend.YOffs = vg.Millimeter * 2
	p.Add(plotter.NewGrid())
	n, nb, drawn := 0, 0, 0
	for _, r := range rows {
		if len(r.Samples) == 0 {
			continue
		}
		pts := make(plotter.XYs, 0, quantiles+1)
		for q := range quantiles + 1 {
			pct := topPercentile * float64(q) / float64(quantiles)
			i := min(int(pct/100*float64(len(r.Samples)-1)), len(r.Samples)-1)
			us := max(float64(r.Samples[i])/1e3, 0.001)
			pts = append(pts, plotter.XY{X: us, Y: pct})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			continue
		}
		l.Width = vg.Points(1.5)
		if isBaseline(r) {
			l.Color, l.Dashes = baseline, dashes
			if nb%2 == 1 {
				l.Dashes = dots // a second baseline, told apart from the first
			}
			nb++
		} else {
			l.Color = palette[n%len(palette)]
			n++
		}
		p.Add(l)
		drawn++
		p.Legend.Add(fmt.Sprintf("%s, %s (p50 %s)", Label(r.Name), sizeText(r.Size), usText(r.P50)), l)
	}
	if drawn == 0 {
		return nil
	}
	return p
}

// throughputPlot is a bar per throughput figure, or nil if there is none.
func throughputPlot(rows []benchfmt.Row) *plot.Plot {
	var b bars
	for _, r := range rows {
		if r.MsgsPerSec > 0 {
			b = append(b, bar{label: Label(r.Name) + ", " + sizeText(r.Size), v: r.MsgsPerSec, base: isBaseline(r), ratio: r.Ratio})
		}
	}
	if len(b) == 0 {
		return nil
	}
	p := plot.New()
	p.Title.Text = "throughput (messages/s, log scale)"
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, rateTicks{}
	p.X.Label.Text = "messages per second"
	p.Add(b)
	labels := make([]string, len(b))
	for i, x := range b {
		labels[len(b)-1-i] = x.label // the first row at the top
	}
	p.NominalY(labels...)
	return p
}

// bar is one throughput figure.
type bar struct {
	label string
	v     float64
	base  bool    // a baseline (drawn grey)
	ratio float64 // to its baseline, 0 if none
}

// bars draws horizontal bars on the plot's (log) X axis, the first at the
// top, each from the axis' left edge to its value, with the value and
// its ratio written after it.
type bars []bar

func (b bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	sty := draw.TextStyle{Color: color.Black, Font: p.X.Tick.Label.Font, Handler: p.X.Tick.Label.Handler,
		XAlign: draw.XLeft, YAlign: draw.YCenter}
	h := (trY(1) - trY(0)) * 0.35
	for i, x := range b {
		y := trY(float64(len(b) - 1 - i))
		x0, x1 := c.Min.X, trX(x.v)
		clr := color.Color(measured)
		if x.base {
			clr = baseline
		}
		c.FillPolygon(clr, []vg.Point{{X: x0, Y: y - h}, {X: x1, Y: y - h}, {X: x1, Y: y + h}, {X: x0, Y: y + h}})
		txt := rateText(x.v)
		if x.ratio > 0 {
			txt += fmt.Sprintf(" (%.2f× baseline)", x.ratio)
		}
		c.FillText(sty, vg.Point{X: x1 + vg.Points(3), Y: y}, txt)
	}
}

// DataRange leaves room right of the largest bar for its label.
func (b bars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax = math.Inf(1), 0
	for _, x := range b {
		xmin, xmax = min(xmin, x.v), max(xmax, x.v)
	}
	return xmin / 4, xmax * 8, -0.5, float64(len(b)) - 0.5
}

// rateTicks are log ticks labelled as rates (100k, 1M).
type rateTicks struct{}

func (rateTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.LogTicks{Prec: -1}.Ticks(min, max)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strings.TrimSuffix(rateText(ticks[i].Value), "/s")
		}
	}
	return ticks
}

// Label is a figure's name, shortened for a legend or an axis.
func Label(name string) string {
	name = strings.TrimPrefix(name, "baseline: ")
	for _, r := range []struct{ long, short string }{
		{"raw unix socket echo, one write per message", "raw socket, a write per message"},
		{"raw unix socket echo, pipelined", "raw socket, pipelined"},
		{"raw unix socket echo round trip, echo in another process", "raw socket round trip, another process"},
		{"raw unix socket echo round trip", "raw socket round trip"},
		{"mailbox send→receive latency", "mailbox send→receive"},
		{"mailbox throughput (1 sender, 1 receiver, acks on)", "mailbox, acks on"},
		{"mailbox throughput", "mailbox"},
	} {
		if strings.HasPrefix(name, r.long) {
			return r.short + name[len(r.long):]
		}
	}
	return name
}

// isBaseline reports whether r is drawn as a baseline (grey): a figure
// compared with nothing, or one named as a baseline that is itself
// compared with another (the inter-process echo beside the in-process one).
func isBaseline(r benchfmt.Row) bool {
	return r.Baseline == "" || strings.HasPrefix(r.Name, "baseline: ")
}

func sizeText(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func usText(ns int64) string { return fmt.Sprintf("%.1f µs", float64(ns)/1e3) }

func rateText(v float64) string {
	switch {
	case v >= 1e6:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v/1e6), "0"), ".") + " M/s"
	case v >= 1e3:
		return fmt.Sprintf("%.0f k/s", v/1e3)
	}
	return fmt.Sprintf("%.0f /s", v)
}
