package integration_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"

	"github.com/postbox-ipc/postbox"
)

// Client roles for the group and watch tests (runRole calls groupsRole):
//
//	join GROUP          join GROUP, report, then wait until stdin closes
//	                    or the process is killed
//	broadcast BODY      broadcast BODY; ID reports how many got it
//	watch TARGET        watch TARGET, report whether it could
//	watchnext TARGET    watch TARGET and report; then report its next
//	                    notice (Body: its kind) or why the watch ended
//	handoff             report, with ID the pid of a child (sleep) that
//	                    inherited this client's socket, then wait: killed,
//	                    this process is gone but its connection lives on
func groupsRole(ctx context.Context, c *postbox.Client, args []string, out *roleResult, report func(error) int) (int, bool) {
	switch args[0] {
	case "join":
		report(c.Join(ctx, args[1]))
		io.Copy(io.Discard, os.Stdin)
		return 0, true
	case "broadcast":
		n, err := c.Broadcast(ctx, []byte(args[1]))
		out.ID = uint64(n)
		return report(err), true
	case "watch":
		w, err := c.Watch(ctx, args[1])
		if err == nil {
			w.Close(ctx)
		}
		return report(err), true
	case "watchnext":
		w, err := c.Watch(ctx, args[1])
		report(err)
		if err != nil {
			return 0, true
		}
		n, err := w.Next(ctx)
		if err == nil {
			out.Body = n.Kind.String()
		}
		return report(err), true
	case "handoff":
		return handoffRole(ctx, out, report), true
	}
	return 0, false
}

// handoffRole connects a client of its own whose socket a child process
// inherits, so that the connection outlives this process.
func handoffRole(ctx context.Context, out *roleResult, report func(error) int) int {
	var uc *net.UnixConn
	dialer := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "unix", os.Getenv(postbox.SocketEnv))
		if err == nil {
			uc = nc.(*net.UnixConn)
		}
		return nc, err
	}
	c, err := postbox.Dial(ctx, postbox.WithDialer(dialer), postbox.WithName("role-linger"))
	if err != nil {
		return report(err)
	}
	defer c.Close()
	out.Endpoint = c.Identity().Endpoint
	f, err := uc.File() // a duplicate: the child's copy of the socket
	if err != nil {
		return report(err)
	}
	sleep := exec.Command("sleep", "600")
	sleep.ExtraFiles = []*os.File{f}
	if err := sleep.Start(); err != nil {
		return report(fmt.Errorf("starting the child that keeps the socket: %w", err))
	}
	f.Close()
	out.ID = uint64(sleep.Process.Pid)
	report(nil)
	io.Copy(io.Discard, os.Stdin)
	sleep.Process.Kill()
	sleep.Wait()
	return 0
}
