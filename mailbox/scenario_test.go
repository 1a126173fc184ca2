package mailbox

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
// separated by blank lines; "#" lines are comments. The output of a command
// is its result (if it has one) followed by its effects, one per line.
// Run with -update to rewrite the expected output from what the mailbox
// does, then read the diff.
//
// Commands:
//
//	new [capacity=N] [durable] [maxdeliveries=N] [ttl=N]
//	send BODY [type=N] [prio=N] [at=N] [ep=N] [receipt] [wait=REF]
//	recv REF [ep=N] [type=N] [autoack] [wait] [consumer=CREDIT]
//	credit REF N
//	ack EP LEASE | nack EP LEASE
//	cancel-recv REF | cancel-send REF
//	disconnect EP | expire NOW | destroy
//	queue | stats

var update = flag.Bool("update", false, "rewrite testdata scenario outputs")

type scenario struct {
	t         *testing.T
	m         *Mailbox
	receivers map[string]*Receiver
	senders   map[string]*Sender
}

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
	sc := &scenario{t: t, m: New(Config{Capacity: -1}), receivers: map[string]*Receiver{}, senders: map[string]*Sender{}}
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
		got := sc.run(cmd, fmt.Sprintf("%s:%d", file, pos))
		checkInvariants(t, sc.m)
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

// args splits "k=v" and bare flags.
func args(fields []string) (pos []string, kv map[string]string) {
	kv = map[string]string{}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		} else if f == "durable" || f == "receipt" || f == "autoack" || f == "wait" {
			kv[f] = "true"
		} else {
			pos = append(pos, f)
		}
	}
	return pos, kv
}

func (sc *scenario) num(where, s string) int64 {
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		sc.t.Fatalf("%s: %v", where, err)
	}
	return n
}

func (sc *scenario) run(line, where string) []string {
	fields := strings.Fields(line)
	pos, kv := args(fields[1:])
	m := sc.m
	var result []string
	errLine := func(err error) {
		if err != nil {
			result = append(result, "error: "+err.Error())
		}
	}
	arg := func(i int) string {
		if i >= len(pos) {
			sc.t.Fatalf("%s: %s needs more arguments", where, fields[0])
		}
		return pos[i]
	}
	switch fields[0] {
	case "new":
		capacity := int64(-1)
		if c, ok := kv["capacity"]; ok {
			capacity = sc.num(where, c)
		}
		sc.m = New(Config{
			Capacity:      capacity,
			Durable:       kv["durable"] != "",
			MaxDeliveries: uint32(sc.num(where, kv["maxdeliveries"])),
			TTL:           sc.num(where, kv["ttl"]),
		})
		m = sc.m
	case "send":
		typ := int64(1)
		if v, ok := kv["type"]; ok {
			typ = sc.num(where, v)
		}
		msg := newMsg(arg(0), typ, uint8(sc.num(where, kv["prio"])))
		msg.SentUnixNano = sc.num(where, kv["at"])
		var s *Sender
		if ref := kv["wait"]; ref != "" {
			s = sender(ref, uint64(sc.num(where, kv["ep"])))
			sc.senders[ref] = s
		}
		res, done, err := m.Send(msg, kv["receipt"] != "", s)
		switch {
		case err != nil:
			errLine(err)
		case done && res.Taken:
			result = append(result, fmt.Sprintf("ok seq=%d taken by ep%d", res.Seq, res.Receipt.Endpoint))
		case done:
			result = append(result, fmt.Sprintf("ok seq=%d", res.Seq))
		default:
			result = append(result, "waiting")
		}
	case "recv":
		ref := arg(0)
		r := oneShot(ref, uint64(sc.num(where, kv["ep"])), sc.num(where, kv["type"]))
		r.AutoAck = kv["autoack"] != ""
		if c, ok := kv["consumer"]; ok {
			r.Consumer, r.Credit = true, uint32(sc.num(where, c))
		}
		sc.receivers[ref] = r
		errLine(m.Receive(r, kv["wait"] != ""))
	case "credit":
		m.AddCredit(sc.receivers[arg(0)], uint32(sc.num(where, arg(1))))
	case "ack":
		errLine(m.Ack(uint64(sc.num(where, arg(0))), uint64(sc.num(where, arg(1)))))
	case "nack":
		errLine(m.Nack(uint64(sc.num(where, arg(0))), uint64(sc.num(where, arg(1)))))
	case "cancel-recv":
		m.CancelReceive(sc.receivers[arg(0)], ErrCanceled)
	case "cancel-send":
		m.CancelSend(sc.senders[arg(0)], ErrCanceled)
	case "disconnect":
		m.Disconnect(uint64(sc.num(where, arg(0))))
	case "expire":
		result = append(result, fmt.Sprintf("next=%d", m.Expire(sc.num(where, arg(0)))))
	case "destroy":
		m.Destroy(nil)
	case "queue":
		return []string{strings.Join(queued(m), " ")}
	case "stats":
		st := m.Stats()
		return []string{
			fmt.Sprintf("depth=%d bytes=%d held=%d inflight=%d", st.Depth, st.Bytes, st.HeldBytes, st.InFlight),
			fmt.Sprintf("receivers=%d consumers=%d blocked=%d", st.Receivers, st.Consumers, st.BlockedSenders),
			fmt.Sprintf("sent=%d received=%d redelivered=%d dead=%d expired=%d", st.Sent, st.Received, st.Redelivered, st.DeadLettered, st.Expired),
		}
	default:
		sc.t.Fatalf("%s: unknown command %q", where, fields[0])
	}
	out := append(result, effStrings(m.Effects())...)
	if len(out) == 0 {
		out = []string{"ok"}
	}
	return out
}
