package integration_test

// Crash roles: the test binary re-executed with POSTBOX_TEST_ROLE=client
// and a first argument naming one of crashRoles is a sender or receiver
// process of the crash harness (crash_harness_test.go). It works against
// $POSTBOX_SOCKET until the broker goes away under it, writing what it
// did to a record file as it goes, one line per event, each line one
// write(2) on an O_APPEND file, so that a line is in the file (in the
// page cache, which outlives the process) before the next step happens.
//
// The roles are dispatched from init, which runs before TestMain, so that
// adding them needs no change to runRole.
//
// Record lines, fields separated by one space:
//
//	P pid                                      first line of every file
//	T mailbox body priority type               a send is about to be made
//	S mailbox body priority type id            Send returned nil
//	R mailbox body priority type redeliveries id senderpid
//	                                           a message was received
//	a mailbox body                             Ack is about to be called
//	A mailbox body                             Ack returned nil
//	N mailbox body                             Nack is about to be called
//	K mailbox body                             AckNoWait was called
//	H mailbox body                             held, never settled
//
// A role exits 0 when the broker went away (ErrClosed, or it could not be
// reached at all), and 1, after a line on stderr, on anything else.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/postbox-ipc/postbox"
)

// crashRoles are the roles of the crash harness by their first argument.
var crashRoles = map[string]func(args []string) int{
	"crash-send": crashSend,
	"crash-recv": crashRecv,
}

func init() {
	if os.Getenv(roleEnv) != "client" || len(os.Args) < 2 {
		return
	}
	if role, ok := crashRoles[os.Args[1]]; ok {
		os.Exit(role(os.Args[2:]))
	}
}

// crashRoleLimit bounds a role's life: the harness kills the broker long
// before, and a role outliving it is a hang, not a slow machine.
const crashRoleLimit = 6 * hangGuard

// crashPriorities are the priorities senders choose from.
var crashPriorities = []uint8{0, 4, 9}

// record is a role's record file.
type record struct{ f *os.File }

func openRecord(path string) (*record, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	r := &record{f}
	return r, r.line("P", os.Getpid())
}

// line writes one record line with a single write.
func (r *record) line(tag string, fields ...any) error {
	var b strings.Builder
	b.WriteString(tag)
	for _, f := range fields {
		fmt.Fprint(&b, " ", f)
	}
	b.WriteByte('\n')
	_, err := r.f.WriteString(b.String())
	return err
}

// brokerGone reports whether err means the broker went away.
func brokerGone(err error) bool { return errors.Is(err, postbox.ErrClosed) }

// roleFail ends a role on an unexpected error.
func roleFail(role string, err error) int {
	fmt.Fprintf(os.Stderr, "%s (pid %d): %v\n", role, os.Getpid(), err)
	return 1
}

// crashDial connects to the broker; ok is false when it cannot be
// reached, which for the harness means it was already killed.
func crashDial(ctx context.Context, name string) (c *postbox.Client, ok bool) {
	c, err := postbox.Dial(ctx, postbox.WithName(name))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: broker unreachable, nothing to do: %v\n", name, err)
		return nil, false
	}
	return c, true
}

// crashSend: crash-send ID RECORD MAILBOX... sends "ID:seq" for seq = 0,
// 1, ... one at a time, each to a random one of the mailboxes at a random
// priority, until the broker goes away.
func crashSend(args []string) int {
	if len(args) < 3 {
		return roleFail("crash-send", fmt.Errorf("usage: crash-send ID RECORD MAILBOX..."))
	}
	id, boxes := args[0], args[2:]
	rec, err := openRecord(args[1])
	if err != nil {
		return roleFail("crash-send", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), crashRoleLimit)
	defer cancel()
	c, ok := crashDial(ctx, "crash-send-"+id)
	if !ok {
		return 0
	}
	defer c.Close()
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
	for seq := 0; ; seq++ {
		mb := boxes[rng.IntN(len(boxes))]
		prio := crashPriorities[rng.IntN(len(crashPriorities))]
		typ := int64(1 + seq%3)
		body := fmt.Sprintf("%s:%d", id, seq)
		if err := rec.line("T", mb, body, prio, typ); err != nil {
			return roleFail("crash-send", err)
		}
		r, err := c.Mailbox(mb).Send(ctx, []byte(body), postbox.Priority(prio), postbox.Type(typ))
		if brokerGone(err) {
			return 0
		}
		if err != nil {
			return roleFail("crash-send", fmt.Errorf("send %s to %s: %w", body, mb, err))
		}
		if err := rec.line("S", mb, body, prio, typ, r.ID); err != nil {
			return roleFail("crash-send", err)
		}
	}
}

// crashRecv: crash-recv ID RECORD MAILBOX recv|consume takes messages
// (one Receive at a time, or from a Consumer with a small prefetch) until
// the broker goes away, and settles each at random: mostly Ack, some
// Nack, some AckNoWait, and up to two held without ever settling them.
func crashRecv(args []string) int {
	if len(args) != 4 || args[3] != "recv" && args[3] != "consume" {
		return roleFail("crash-recv", fmt.Errorf("usage: crash-recv ID RECORD MAILBOX recv|consume, not %q", args))
	}
	id, name, mode := args[0], args[2], args[3]
	rec, err := openRecord(args[1])
	if err != nil {
		return roleFail("crash-recv", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), crashRoleLimit)
	defer cancel()
	c, ok := crashDial(ctx, "crash-recv-"+id)
	if !ok {
		return 0
	}
	defer c.Close()
	mb := c.Mailbox(name)
	next := func() (*postbox.Message, error) { return mb.Receive(ctx) }
	if mode == "consume" {
		cons, err := mb.Consume(ctx, postbox.Prefetch(8))
		if brokerGone(err) {
			return 0
		}
		if err != nil {
			return roleFail("crash-recv", err)
		}
		defer cons.Close(ctx)
		next = func() (*postbox.Message, error) { return cons.Next(ctx) }
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
	var held []*postbox.Message
	for {
		m, err := next()
		if brokerGone(err) {
			return 0
		}
		if err != nil {
			return roleFail("crash-recv", fmt.Errorf("receive from %s: %w", name, err))
		}
		body := string(m.Body)
		if err := rec.line("R", name, body, m.Priority, m.Type, m.Redeliveries, m.ID, m.Sender.PID); err != nil {
			return roleFail("crash-recv", err)
		}
		switch x := rng.IntN(100); {
		case x < 80:
			rec.line("a", name, body)
			err := m.Ack(ctx)
			if brokerGone(err) {
				return 0
			}
			if err != nil {
				return roleFail("crash-recv", fmt.Errorf("ack %s: %w", body, err))
			}
			if err := rec.line("A", name, body); err != nil {
				return roleFail("crash-recv", err)
			}
		case x < 88:
			rec.line("N", name, body)
			err := m.Nack(ctx)
			if brokerGone(err) {
				return 0
			}
			if err != nil {
				return roleFail("crash-recv", fmt.Errorf("nack %s: %w", body, err))
			}
		case x < 94 || len(held) >= 2:
			rec.line("K", name, body)
			m.AckNoWait()
		default:
			rec.line("H", name, body)
			held = append(held, m) // returns to the mailbox when the connection drops
		}
	}
}
