package brokerbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"time"

	"github.com/postbox-ipc/postbox/internal/benchfmt"
)

// NameRawProcLatency is the round trip through an echo server in another
// process: the inter-process baseline of the latency figure (a message
// through a broker process crosses two processes, as this does).
const NameRawProcLatency = "baseline: raw unix socket echo round trip, echo in another process"

// echoEnv, when set in a process's environment, makes any binary that
// links this package an echo server at that socket path instead of
// running its main: the benchmark starts its own executable that way, so
// the echo really is another process and nothing else needs installing.
const echoEnv = "POSTBOX_BROKERBENCH_ECHO"

func init() {
	if path := os.Getenv(echoEnv); path != "" {
		os.Exit(serveEchoProcess(path))
	}
}

// serveEchoProcess listens at path, says "ready" on stdout, echoes one
// connection and returns the exit status.
func serveEchoProcess(path string) int {
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer l.Close()
	fmt.Println("ready")
	c, err := l.Accept()
	if err != nil {
		return 1
	}
	io.Copy(c, c)
	c.Close()
	return 0
}

// errEchoProcess: the echo process did not start.
var errEchoProcess = errors.New("brokerbench: echo process did not start")

// RawProcLatency is RawLatency with the echo server in another process
// (this executable, started again with echoEnv set).
func RawProcLatency(ctx context.Context, path string, size, samples int) (benchfmt.Row, error) {
	row := benchfmt.Row{Name: NameRawProcLatency, Size: size}
	exe, err := os.Executable()
	if err != nil {
		return row, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), echoEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return row, err
	}
	if err := cmd.Start(); err != nil {
		return row, err
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		os.Remove(path)
	}()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		return row, fmt.Errorf("%w: %q %v", errEchoProcess, line, err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		return row, err
	}
	defer c.Close()
	lat, err := roundTrips(c, size, samples)
	if err != nil {
		return row, err
	}
	row.P50, row.P99 = benchfmt.Latencies(lat)
	row.Samples = lat // for --plot, as the other latency rows
	return row, nil
}

// roundTrips writes size bytes to an echo at c and reads them back,
// samples times after a tenth as many to warm up, and returns each round
// trip's duration.
func roundTrips(c net.Conn, size, samples int) ([]time.Duration, error) {
	buf := make([]byte, size)
	lat := make([]time.Duration, 0, samples)
	for i := range samples + samples/10 {
		t0 := time.Now()
		if _, err := c.Write(buf); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil, err
		}
		if i >= samples/10 {
			lat = append(lat, time.Since(t0))
		}
	}
	return lat, nil
}
