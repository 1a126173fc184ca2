package benchplot

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/internal/benchfmt"
)

func rows() []benchfmt.Row {
	var mailbox, raw []time.Duration
	for i := range 1000 {
		mailbox = append(mailbox, time.Duration(14000+i*30))
		raw = append(raw, time.Duration(6000+i*5))
	}
	return []benchfmt.Row{
		{Name: "mailbox throughput (1 sender, 1 receiver, acks on)", Size: 64, MsgsPerSec: 800e3, Baseline: "raw unix socket echo, one write per message", Ratio: 1.4},
		{Name: "baseline: raw unix socket echo, pipelined", Size: 64, MsgsPerSec: 35e6},
		{Name: "raw unix socket echo, one write per message", Size: 64, MsgsPerSec: 560e3},
		{Name: "mailbox send→receive latency", Size: 64, P50: 29000, P99: 43000, Samples: mailbox, Baseline: "baseline: raw unix socket echo round trip"},
		{Name: "baseline: raw unix socket echo round trip", Size: 64, P50: 8500, P99: 11000, Samples: raw},
	}
}

func TestWriteFileDrawsSVGAndPNGByExtension(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, magic string }{{"b.svg", "<?xml"}, {"b.PNG", "\x89PNG\r\n\x1a\n"}} {
		path := filepath.Join(dir, c.name)
		if err := WriteFile(path, rows()); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 1000 || !bytes.HasPrefix(b, []byte(c.magic)) {
			t.Errorf("%s: %d bytes starting %q", c.name, len(b), b[:min(len(b), 16)])
		}
		if strings.HasSuffix(c.name, ".svg") && !bytes.Contains(b, []byte("<svg")) {
			t.Errorf("%s is not SVG", c.name)
		}
	}
}

func TestWriteFileRefusesOtherExtensionsAndLeavesNoFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.jpg")
	if err := WriteFile(path, rows()); !errors.Is(err, ErrFormat) {
		t.Fatalf("err %v, want ErrFormat", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a file was left: %v", err)
	}
}

func TestWriteWithNothingToDrawSaysSoAndLeavesNoFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.svg")
	if err := WriteFile(path, []benchfmt.Row{{Name: "x", P50: 1}}); !errors.Is(err, ErrNothing) {
		t.Fatalf("err %v, want ErrNothing", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a file was left: %v", err)
	}
}

func TestWriteDrawsOnlyThePanelItHasFiguresFor(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, SVG, rows()[:3]); err != nil {
		t.Fatal(err)
	}
	if s := b.String(); strings.Contains(s, "latency") || !strings.Contains(s, "throughput") {
		t.Error("throughput rows alone: want the throughput panel alone")
	}
}

func TestLabelShortensTheBenchNames(t *testing.T) {
	for in, want := range map[string]string{
		"baseline: raw unix socket echo, pipelined":                      "raw socket, pipelined",
		"mailbox throughput (2 senders, 3 receivers, acks on)":           "mailbox (2 senders, 3 receivers, acks on)",
		"mailbox throughput (1 sender, 1 receiver, acks on) over tcp://": "mailbox, acks on over tcp://",
		"something else": "something else",
	} {
		if got := Label(in); got != want {
			t.Errorf("Label(%q) = %q, want %q", in, got, want)
		}
	}
}
