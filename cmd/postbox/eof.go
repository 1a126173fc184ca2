package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/postbox-ipc/postbox"
)

// End of stream in the CLI: send --eof and --reopen; recv exits
// exitEndOfStream when the mailbox is closed and drained.

// exitEndOfStream: a receive found the mailbox closed for sending and
// drained (or a send found it closed).
const exitEndOfStream = 4

// exitNoReader: a pipe write found no reader left, the status of a
// writer killed by SIGPIPE (128 + 13).
const exitNoReader = 141

// sendEOF carries out send --eof / --reopen: reopen first, then the
// messages (if any), then close.
func sendEOF(ctx context.Context, mb *postbox.Mailbox, timeout time.Duration, eof, reopen, body bool, send func() error) error {
	if eof && reopen {
		return usageError{errors.New("--eof closes and --reopen opens: give one")}
	}
	shut := func(f func(*postbox.Mailbox, context.Context) error) error {
		wctx, cancel := waitContext(ctx, timeout)
		defer cancel()
		return f(mb, wctx)
	}
	if reopen {
		if err := shut((*postbox.Mailbox).ReopenSend); err != nil {
			return err
		}
	}
	if body {
		if err := send(); err != nil {
			return err
		}
	}
	if eof {
		return shut((*postbox.Mailbox).CloseSend)
	}
	return nil
}

// sendLines sends each line of stdin with send.
func sendLines(c *postbox.Client, send func([]byte) error) error {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 64<<10), c.MaxMessage()+1)
	for sc.Scan() {
		if err := send(sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	return nil
}
