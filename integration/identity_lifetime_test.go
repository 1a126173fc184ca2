package integration_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/postbox-ipc/postbox"
)

// The "inherit" role dials the broker, starts a grandchild that inherits
// the connection's socket and outlives it, prints its endpoint id and the
// grandchild's pid, and exits.
func init() {
	if os.Getenv(roleEnv) != "client" || len(os.Args) < 2 {
		return
	}
	switch os.Args[1] {
	case "inherit":
		os.Exit(inheritRole())
	case "linger":
		// The grandchild: hold the inherited socket until killed.
		select {}
	}
}

func inheritRole() int {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	c, err := postbox.Dial(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Hand the live socket to a grandchild through a duplicate descriptor.
	raw, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var extra []*os.File
	for _, e := range raw {
		fd, _ := strconv.Atoi(e.Name())
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && len(target) > 7 && target[:7] == "socket:" && fd > 2 {
			extra = append(extra, os.NewFile(uintptr(fd), "inherited"))
		}
	}
	cmd := exec.Command(os.Args[0], "linger")
	cmd.Env = os.Environ()
	cmd.ExtraFiles = extra
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(c.Identity().Endpoint, cmd.Process.Pid)
	// Exit without closing the client: the socket stays open in the
	// grandchild.
	return 0
}

// TestConnectionEndsWhenItsProcessExitsEvenIfTheSocketLivesOn: messages
// are stamped with the pid of the process that connected; once that
// process is gone its pid may be recycled, so the broker ends the
// connection (through SO_PEERPIDFD) even though a child still holds the
// socket.
func TestConnectionEndsWhenItsProcessExitsEvenIfTheSocketLivesOn(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	cmd := exec.Command(os.Args[0], "inherit")
	cmd.Env = append(os.Environ(), roleEnv+"=client", "POSTBOX_SOCKET="+b.Socket)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var endpoint uint64
	var grandchild int
	if _, err := fmt.Fscan(bufio.NewReader(out), &endpoint, &grandchild); err != nil {
		t.Fatalf("reading the role's report: %v", err)
	}
	t.Cleanup(func() {
		if p, err := os.FindProcess(grandchild); err == nil {
			p.Kill()
			p.Wait()
		}
	})
	if err := cmd.Wait(); err != nil {
		t.Fatalf("inherit role: %v", err)
	}
	// The connecting process is gone; the socket is not (the grandchild
	// holds it). The endpoint and its inbox must go all the same.
	inbox := c.Mailbox(postbox.InboxName(endpoint))
	waitFor(t, "the dead process's endpoint to be closed", func() bool {
		_, err := inbox.Stat(ctxT(t))
		return errors.Is(err, postbox.ErrNotFound)
	})
	if _, err := os.Stat("/proc/" + strconv.Itoa(grandchild)); err != nil {
		t.Fatalf("the grandchild holding the socket is gone too (%v): the test proved nothing", err)
	}
}
