// Command brokerprof runs a broker the way `postbox serve` does (its
// default limits, GOGC 400 and the same soft memory limit unless $GOGC or
// $GOMEMLIMIT say otherwise) and profiles it: CPU, block and mutex
// profiles written when it gets SIGTERM or SIGINT, and the CPU time it
// used printed to stderr as "cpu=SECONDS". It is how docs/PERFORMANCE.md
// profiles the broker as a separate process:
//
//	go build -o /tmp/brokerprof ./internal/brokerbench/brokerprof
//	/tmp/brokerprof -socket /tmp/p.sock -cpu cpu.pprof -block block.pprof &
//	postbox bench --use-socket --socket /tmp/p.sock
//	kill %1; go tool pprof -top /tmp/brokerprof cpu.pprof
//
// With -data DIR it opens a data directory (durable mailboxes).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/postbox-ipc/postbox/broker"
)

func main() {
	sock := flag.String("socket", "", "socket to listen on (required)")
	data := flag.String("data", "", "data directory (none: memory only)")
	cpu := flag.String("cpu", "", "write a CPU profile to this file")
	block := flag.String("block", "", "write a block profile (rate 10 µs) to this file")
	mutex := flag.String("mutex", "", "write a mutex profile (fraction 1/10) to this file")
	flag.Parse()
	if err := run(*sock, *data, *cpu, *block, *mutex); err != nil {
		fmt.Fprintln(os.Stderr, "brokerprof:", err)
		os.Exit(1)
	}
}

// errNoSocket: -socket was not given.
var errNoSocket = errors.New("-socket is required")

func run(sock, data, cpu, block, mutex string) error {
	if sock == "" {
		return errNoSocket
	}
	// Before the socket exists: whoever sees it may signal at once.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.DataDir = data
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400) // as cmd/postbox's tuneGC
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(2*cfg.MaxQueuedBytes + 512<<20)
	}
	b, err := broker.Open(cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	l, err := broker.Listen(sock, 0o600)
	if err != nil {
		return err
	}
	if block != "" {
		runtime.SetBlockProfileRate(10000)
	}
	if mutex != "" {
		runtime.SetMutexProfileFraction(10)
	}
	if cpu != "" {
		f, err := os.Create(cpu)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	go b.Serve(l)
	<-sigs
	if cpu != "" {
		pprof.StopCPUProfile()
	}
	for name, path := range map[string]string{"block": block, "mutex": mutex} {
		if path == "" {
			continue
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		err = pprof.Lookup(name).WriteTo(f, 0)
		f.Close()
		if err != nil {
			return err
		}
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Fprintf(os.Stderr, "cpu=%.3f\n", float64(ru.Utime.Sec+ru.Stime.Sec)+float64(ru.Utime.Usec+ru.Stime.Usec)/1e6)
	return nil
}
