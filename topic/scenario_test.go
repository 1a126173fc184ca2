package topic

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Data-driven scenarios: each file in testdata/ is a sequence of blocks
//
//	command args...
//	----
//	expected output
//
// separated by blank lines; "#" lines are comments. The output of a
// command is its result (if it has one) followed by its effects, one per
// line, as effStrings renders them. Run with -update to rewrite the
// expected output from what the engine does, then read the diff.
//
// Commands:
//
//	sub ID PATTERN [queue=Q] [buffer=N] [window=N] [policy=block|drop-oldest|drop-newest|disconnect]
//	    [types=LO..HI] [header=K:V] [has=K]
//	unsub ID
//	pub SUBJECT PAYLOAD [token=N] [type=N] [h=K:V,K:V]
//	credit ID N
//	withdraw TOKEN
//	stat ID | subjects

var update = flag.Bool("update", false, "rewrite testdata scenario outputs")

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) { runScenario(t, file) })
	}
}

func runScenario(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine()
	lines := strings.Split(string(data), "\n")
	var out strings.Builder
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			out.WriteString(line + "\n")
			continue
		}
		cmd, pos := line, i+1
		if i+1 >= len(lines) || lines[i+1] != "----" {
			t.Fatalf("%s:%d: command without ----", file, pos)
		}
		i += 2
		var want []string
		for ; i < len(lines) && lines[i] != ""; i++ {
			want = append(want, lines[i])
		}
		got := runCommand(t, e, cmd, fmt.Sprintf("%s:%d", file, pos))
		fmt.Fprintf(&out, "%s\n----\n", cmd)
		for _, l := range got {
			out.WriteString(l + "\n")
		}
		if i < len(lines) {
			out.WriteString("\n")
		}
		if !*update && strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:%d: %s\n got:\n    %s\n want:\n    %s", file, pos, cmd,
				strings.Join(got, "\n    "), strings.Join(want, "\n    "))
		}
	}
	if *update {
		if err := os.WriteFile(file, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var policyNames = map[string]Policy{"block": Block, "drop-oldest": DropOldest, "drop-newest": DropNewest, "disconnect": Disconnect}

func runCommand(t *testing.T, e *Engine, line, where string) []string {
	fields := strings.Fields(line)
	var pos []string
	kv := map[string]string{}
	for _, f := range fields[1:] {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		} else {
			pos = append(pos, f)
		}
	}
	num := func(s string) int64 {
		if s == "" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		return n
	}
	arg := func(i int) string {
		if i >= len(pos) {
			t.Fatalf("%s: %s needs more arguments", where, fields[0])
		}
		return pos[i]
	}
	var result []string
	switch fields[0] {
	case "sub":
		s := Sub{ID: SubID(num(arg(0))), Pattern: arg(1), Queue: kv["queue"],
			Buffer: int(num(kv["buffer"])), Window: int(num(kv["window"]))}
		if p, ok := kv["policy"]; ok {
			if s.Policy, ok = policyNames[p]; !ok {
				t.Fatalf("%s: unknown policy %q", where, p)
			}
		}
		if r, ok := kv["types"]; ok {
			lo, hi, _ := strings.Cut(r, "..")
			s.Filter.TypeMin, s.Filter.TypeMax = num(lo), num(hi)
		}
		if h, ok := kv["header"]; ok {
			k, v, _ := strings.Cut(h, ":")
			s.Filter.Headers = append(s.Filter.Headers, HeaderCond{Key: k, Value: v})
		}
		if k, ok := kv["has"]; ok {
			s.Filter.Headers = append(s.Filter.Headers, HeaderCond{Key: k, Present: true})
		}
		if err := e.Subscribe(s); err != nil {
			result = append(result, "error: "+err.Error())
		}
	case "unsub":
		e.Unsubscribe(SubID(num(arg(0))))
	case "pub":
		p := Pub{Subject: arg(0), Payload: arg(1), Type: num(kv["type"])}
		if hs, ok := kv["h"]; ok {
			hdr := map[string]string{}
			for _, h := range strings.Split(hs, ",") {
				k, v, _ := strings.Cut(h, ":")
				hdr[k] = v
			}
			p.Headers = func(k string) (string, bool) { v, ok := hdr[k]; return v, ok }
		}
		n, done := e.Publish(p, uint64(num(kv["token"])))
		result = append(result, fmt.Sprintf("matched=%d done=%v", n, done))
	case "credit":
		e.AddCredit(SubID(num(arg(0))), int(num(arg(1))))
	case "withdraw":
		e.Withdraw(uint64(num(arg(0))))
	case "stat":
		st, ok := e.Subscription(SubID(num(arg(0))))
		if !ok {
			result = append(result, "no such subscription")
			break
		}
		result = append(result, fmt.Sprintf("buffer=%d window=%d inflight=%d held=%d waiting=%d delivered=%d dropped=%d missed=%d",
			st.Buffer, st.Window, st.InFlight, st.Held, st.Waiting, st.Delivered, st.Dropped, st.Missed))
	case "subjects":
		for _, st := range e.Subjects() {
			result = append(result, fmt.Sprintf("%s subscribers=%d groups=%d delivered=%d dropped=%d",
				st.Pattern, st.Subscribers, st.QueueGroups, st.Delivered, st.Dropped))
		}
	default:
		t.Fatalf("%s: unknown command %q", where, fields[0])
	}
	return append(result, effStrings(e.Effects())...)
}
