package main

import (
	"context"
	"errors"
	"time"

	"github.com/postbox-ipc/postbox"
)

// End of stream in the CLI: send --eof and --reopen; recv exits
// exitEndOfStream when the mailbox is closed and drained.

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
