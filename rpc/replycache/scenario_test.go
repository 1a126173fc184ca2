package replycache

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// Data-driven scenarios: each file in testdata is a story told one
// operation a line, with the expected outcome after "->".
//
//	config entries=N bytes=N retention=N evicted=N  (a fresh cache; zero: default)
//	begin S/SEQ [sum=K] [acked=N] [w=N] [@T] -> VERDICT ["reply"]
//	finish S/SEQ "reply" [@T] -> waiters [N ...]
//	abort S/SEQ -> waiters [N ...]
//	ack S N
//	expire @T
//	stats running=N done=N tombstones=N sessions=N [evicted=N]
//
// S is a letter naming a session; K picks the checksum (Sum of "m" and K).
func TestScenarios(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no scenarios")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runScenario(t, f) })
	}
}

func runScenario(t *testing.T, path string) {
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var c *Cache[string, int]
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		op, want, _ := strings.Cut(line, "->")
		want = strings.TrimSpace(want)
		f := strings.Fields(op)
		args := map[string]string{}
		var pos []string
		for _, a := range f[1:] {
			if k, v, ok := strings.Cut(a, "="); ok {
				args[k] = v
			} else if a[0] == '@' {
				args["@"] = a[1:]
			} else {
				pos = append(pos, a)
			}
		}
		num := func(k string) int64 { v, _ := strconv.ParseInt(args[k], 10, 64); return v }
		fail := func(format string, a ...any) { t.Fatalf("%s:%d: %s: %s", path, n, line, fmt.Sprintf(format, a...)) }
		switch f[0] {
		case "config":
			c, err = New[string, int](Config{MaxEntries: int(num("entries")), MaxBytes: num("bytes"), Retention: num("retention"),
				MaxEvicted: int(num("evicted"))})
			if err != nil {
				fail("%v", err)
			}
		case "begin":
			sum := Sum("m", []byte(args["sum"]))
			v, r := c.Begin(scenarioID(pos[0]), sum, uint64(num("acked")), int(num("w")), num("@"))
			got := v.String()
			if v == Replay {
				got += " " + strconv.Quote(r)
			}
			if got != want {
				fail("got %s", got)
			}
		case "finish", "abort":
			var ws []int
			if f[0] == "finish" {
				reply, _ := strconv.Unquote(pos[1])
				ws = c.Finish(scenarioID(pos[0]), reply, int64(len(reply)), num("@"))
			} else {
				ws = c.Abort(scenarioID(pos[0]))
			}
			if got := fmt.Sprint("waiters ", ws); got != want && !(want == "waiters []" && ws == nil) {
				fail("got %s", got)
			}
		case "ack":
			below, _ := strconv.ParseUint(pos[1], 10, 64)
			c.Ack(scenarioSession(pos[0]), below)
		case "expire":
			c.Expire(num("@"))
		case "stats":
			st := c.Stats()
			got := fmt.Sprintf("running=%d done=%d tombstones=%d sessions=%d", st.Running, st.Done, st.Tombstones, st.Sessions)
			if _, ok := args["evicted"]; ok {
				got += fmt.Sprintf(" evicted=%d", st.Evicted)
			}
			if got != strings.Join(f[1:], " ") {
				fail("got %s", got)
			}
		default:
			fail("unknown operation")
		}
	}
}

func scenarioSession(s string) [16]byte { return [16]byte{s[0]} }

func scenarioID(s string) envelope.ID {
	sess, seq, _ := strings.Cut(s, "/")
	n, _ := strconv.ParseUint(seq, 10, 64)
	return envelope.NewID(scenarioSession(sess), n)
}
