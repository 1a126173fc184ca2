package rpcfault_test

// The execution log: every handler execution appends one line to a file
// opened with O_APPEND, each line a single write(2), so that lines from
// concurrent handlers and from several server processes never interleave
// and a line is in the file (the page cache outlives a SIGKILLed process)
// before the handler does anything else.
//
// Lines, fields separated by one space:
//
//	E key id pid              a handler started running call key (request id id)
//	C key id pid err deadline cause...
//	                          the blocking handler's context ended: err is
//	                          canceled, deadline or the error's text with
//	                          spaces replaced; deadline is the context's
//	                          deadline in Unix nanoseconds, 0 if none;
//	                          cause, the rest of the line, is
//	                          context.Cause's text
//
// key is the test's name for the call (it travels in the request body);
// id is the request id as rpc.RequestID reports it in the handler.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// execLog is the writing end of an execution log.
type execLog struct {
	f   *os.File
	pid int
}

func openExecLog(path string) (*execLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &execLog{f: f, pid: os.Getpid()}, nil
}

// ran records that a handler started running call key.
func (l *execLog) ran(key, id string) error {
	_, err := fmt.Fprintf(l.f, "E %s %s %d\n", key, id, l.pid)
	return err
}

// ended records how the blocking handler's context ended.
func (l *execLog) ended(ctx context.Context, key, id string) error {
	var dl int64
	if d, ok := ctx.Deadline(); ok {
		dl = d.UnixNano()
	}
	cause := strings.Join(strings.Fields(fmt.Sprint(context.Cause(ctx))), " ")
	_, err := fmt.Fprintf(l.f, "C %s %s %d %s %d %s\n", key, id, l.pid, ctxErrWord(ctx.Err()), dl, cause)
	return err
}

func (l *execLog) Close() error { return l.f.Close() }

// ctxErrWord names a context's error in one word.
func ctxErrWord(err error) string {
	switch {
	case err == nil:
		return "none"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	}
	return strings.ReplaceAll(err.Error(), " ", "_")
}

// execution is one E line.
type execution struct {
	id  string
	pid int
}

// ending is one C line.
type ending struct {
	id       string
	pid      int
	err      string
	deadline time.Time // zero if the context had none
	cause    string    // context.Cause's text
}

// execTally is an execution log read back: executions and endings by
// call key, in log order.
type execTally struct {
	runs map[string][]execution
	ends map[string][]ending
	n    int // E lines
}

// readExecLog parses the log at path. A torn last line (a writer killed
// in the middle of a write, which a single small write(2) makes
// impossible on Linux, but the parser does not rely on it) is an error.
func readExecLog(path string) (*execTally, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &execTally{runs: map[string][]execution{}, ends: map[string][]ending{}}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tl := &execTally{runs: map[string][]execution{}, ends: map[string][]ending{}}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fs := strings.Fields(sc.Text())
		bad := func(why string) error { return fmt.Errorf("%s:%d: %s: %q", path, line, why, sc.Text()) }
		if len(fs) == 0 {
			return nil, bad("empty line")
		}
		switch {
		case fs[0] == "E" && len(fs) == 4:
			pid, err := strconv.Atoi(fs[3])
			if err != nil {
				return nil, bad("pid")
			}
			tl.runs[fs[1]] = append(tl.runs[fs[1]], execution{id: fs[2], pid: pid})
			tl.n++
		case fs[0] == "C" && len(fs) >= 7:
			pid, err1 := strconv.Atoi(fs[3])
			dl, err2 := strconv.ParseInt(fs[5], 10, 64)
			if err1 != nil || err2 != nil {
				return nil, bad("number")
			}
			e := ending{id: fs[2], pid: pid, err: fs[4], cause: strings.Join(fs[6:], " ")}
			if dl != 0 {
				e.deadline = time.Unix(0, dl)
			}
			tl.ends[fs[1]] = append(tl.ends[fs[1]], e)
		default:
			return nil, bad("unknown record")
		}
	}
	return tl, sc.Err()
}

// countLog counts the E lines in the log at path (cheaply, for polling).
func countLog(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n := 0
	for i := 0; i < len(b); i++ {
		if b[i] == 'E' && (i == 0 || b[i-1] == '\n') {
			n++
		}
	}
	return n
}

// outcome is what the caller of one call saw.
type outcome struct {
	key  string
	ok   bool   // the call returned a reply
	pid  int    // the pid that served the reply, if ok
	id   string // the request id the reply names, if ok
	err  error  // the call's error, if not ok
	code string // the error's rpc status code, if not ok
}

// outcomes collects what callers saw, safe for concurrent use.
type outcomes struct {
	mu   sync.Mutex // guards list
	list []outcome
}

func (o *outcomes) add(r outcome) {
	o.mu.Lock()
	o.list = append(o.list, r)
	o.mu.Unlock()
}

func (o *outcomes) all() []outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]outcome(nil), o.list...)
}
