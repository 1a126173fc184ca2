package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/postbox-ipc/postbox"
)

// Descriptors on messages from the shell: send --fd, recv printing the
// descriptors that came, recv --exec.

const filesHelp = `--fd N sends this process's open descriptor N with the message
(repeatable, in order), as in: postbox send q --fd 3 3<file. The receiver
gets its own descriptors for the same open files. Both ends must be on a
local Unix socket, and the mailbox must not be durable: elsewhere the send
is refused (exit 1). Not with --lines or --best-effort.`

const recvFilesHelp = `A message that carries descriptors (send --fd) comes with them: recv
prints their numbers in this process on stderr ("fds" in -o json), and
closes them when done. --exec runs a command for each message instead of
printing it: postbox recv q --exec -- CMD ARGS... runs CMD with the body
on stdin, the message's descriptors as fd 3, 4, ... and POSTBOX_FDS="3 4
..." (empty for none) in its environment, then acks the message if CMD
exits 0; otherwise it nacks it (it is redelivered with its descriptors)
and exits with CMD's status. If the descriptors could not come (this
connection is not a Unix socket) POSTBOX_FDS_WITHHELD=1 is set.`

// exitStatus is an error that makes postbox exit with code.
type exitStatus struct {
	code int
	msg  string
}

func (e exitStatus) Error() string { return e.msg }

// openFiles returns the descriptors fds of this process as files, each
// checked to be open.
func openFiles(fds []int) ([]*os.File, error) {
	files := make([]*os.File, 0, len(fds))
	for _, fd := range fds {
		if fd < 0 {
			return nil, usageError{fmt.Errorf("--fd %d: want a descriptor number, 0 or more", fd)}
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, usageError{fmt.Errorf("--fd %d: not an open descriptor of this process (redirect it, e.g. %d<FILE)", fd, fd)}
		}
		files = append(files, os.NewFile(uintptr(fd), "fd "+strconv.Itoa(fd)))
	}
	return files, nil
}

// fdNumbers returns the numbers of the message's descriptors here.
func fdNumbers(m *postbox.Message) []int {
	var ns []int
	for _, f := range m.Files() {
		ns = append(ns, int(f.Fd()))
	}
	return ns
}

// noteFiles tells on stderr which descriptors came with m (text and raw
// output, whose stdout is the bodies).
func noteFiles(m *postbox.Message) {
	switch {
	case len(m.Files()) > 0:
		s := strings.Trim(fmt.Sprint(fdNumbers(m)), "[]")
		fmt.Fprintf(os.Stderr, "postbox: message %d came with descriptors %s\n", m.ID, s)
	case m.FilesWithheld():
		fmt.Fprintf(os.Stderr, "postbox: message %d carries descriptors this connection cannot take (not a Unix socket): withheld\n", m.ID)
	}
}

// runExec runs argv for m: body on stdin, descriptors as fd 3, 4, ...
// It returns nil if the command exited 0, else an exitStatus (or the
// error starting it).
func runExec(ctx context.Context, m *postbox.Message, argv []string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(m.Body)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = m.Files()
	var nums []string
	for i := range m.Files() {
		nums = append(nums, strconv.Itoa(3+i))
	}
	cmd.Env = append(os.Environ(), "POSTBOX_FDS="+strings.Join(nums, " "), "POSTBOX_ID="+strconv.FormatUint(m.ID, 10))
	if m.FilesWithheld() {
		cmd.Env = append(cmd.Env, "POSTBOX_FDS_WITHHELD=1")
	}
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		code := ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal()) // killed: the shell's convention
		}
		return exitStatus{code: code, msg: fmt.Sprintf("%s: %v (message %d nacked)", argv[0], err, m.ID)}
	}
	return fmt.Errorf("--exec %s: %w", argv[0], err)
}
