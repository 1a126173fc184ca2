package main

import (
	"context"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Noticing that stdout went away.
//
// `postbox recv q --follow | head -3` must end when head does, not when
// the next message arrives: by then it has been taken from the mailbox
// and has nowhere to go. On Linux the write end of a pipe reports POLLERR
// once its read end is closed (a socket or a terminal reports POLLHUP),
// so a goroutine polls stdout for those alone and cancels the command's
// context; a regular file or /dev/null never reports them. SIGPIPE is
// ignored so that a write that loses the race fails with EPIPE (and its
// message is nacked) instead of killing the process with a lease held.

// outputWatch watches a file descriptor for its reader going away.
type outputWatch struct {
	closed chan struct{} // closed when the output is gone
	wake   [2]int        // a pipe: closing wake[1] ends the poll
	done   chan struct{} // closed when the goroutine has returned
	cancel context.CancelFunc
	once   sync.Once
}

// watchOutput starts watching fd and returns a context that ends when
// the output goes away (or ctx ends). stop ends the watch and waits for
// its goroutine.
func watchOutput(ctx context.Context, fd int) (context.Context, *outputWatch, error) {
	signal.Ignore(syscall.SIGPIPE)
	w := &outputWatch{closed: make(chan struct{}), done: make(chan struct{})}
	if err := unix.Pipe2(w.wake[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer close(w.done)
		defer unix.Close(w.wake[0])
		fds := []unix.PollFd{{Fd: int32(fd)}, {Fd: int32(w.wake[0]), Events: unix.POLLIN}}
		for {
			_, err := unix.Poll(fds, -1)
			if err == unix.EINTR {
				continue
			}
			if err != nil || fds[1].Revents != 0 {
				return
			}
			if fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
				close(w.closed)
				cancel()
				return
			}
		}
	}()
	w.cancel = cancel
	return ctx, w, nil
}

// gone reports whether the output went away.
func (w *outputWatch) gone() bool {
	select {
	case <-w.closed:
		return true
	default:
		return false
	}
}

// stop ends the watch and waits for its goroutine.
func (w *outputWatch) stop() {
	w.once.Do(func() {
		unix.Close(w.wake[1])
		<-w.done
		w.cancel()
	})
}
