package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
)

// postbox pipe: named pipes through the broker (create, write, read, rm).

func newPipe() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "pipe",
		Example: "  postbox pipe create backups\n  tar c dir | postbox pipe write backups   # and elsewhere: postbox pipe read backups | tar x",
		Short:   "Named pipes through the broker: a better mkfifo",
		Long: `Named pipes kept by the broker, with the fifo(7) rules and what a fifo lacks.

  postbox pipe create NAME [--mode 0600] [--buffer 1M]
  producer | postbox pipe write NAME
  postbox pipe read NAME | consumer
  postbox pipe rm NAME

The reader blocks while writers are open and the buffer is empty, and
gets end of file once the last writer has closed and the buffer is
drained. A writer blocks while the buffer is full. A writer whose pipe
has no reader left exits 141, as a writer killed by SIGPIPE does
(--wait-reader: it waits for a reader instead, and its open waits for
the first). Each read of the writer's stdin, up to 64 KiB, is one chunk:
chunks of several writers are never interleaved, and "pipe read -o
json" says who (uid, pid, endpoint) wrote each. One reader is active at
a time; a second "pipe read" waits for its turn. When a reader dies, the
bytes it had not written out go to the next reader, in order: it
resumes at the first chunk not fully written to its stdout. Who may
read (r) and write (w) is the mode, as for mailboxes.

` + exitHelp,
	}
	cmd.AddCommand(newPipeCreate(), newPipeWrite(), newPipeRead(), newPipeRm())
	for _, sub := range cmd.Commands() {
		args := sub.Args
		sub.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	return cmd
}

func newPipeCreate() *cobra.Command {
	var mode, buffer string
	cmd := &cobra.Command{
		Use:     "create NAME",
		Example: "  postbox pipe create backups --mode 0660",
		Short:   "Create a pipe",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := parseMode(mode)
			if err != nil {
				return usageError{err}
			}
			size, err := parseSize(buffer)
			if err != nil {
				return usageError{fmt.Errorf("--buffer: %w", err)}
			}
			c, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			return c.CreatePipe(cmd.Context(), args[0], size, postbox.Mode(m))
		},
	}
	cmd.Flags().StringVar(&mode, "mode", "0600", "permission bits (octal): r to read, w to write")
	cmd.Flags().StringVar(&buffer, "buffer", "1M", "bytes the pipe holds before writers block (K, M suffixes: KiB, MiB)")
	return cmd
}

// parseSize reads a byte count with an optional K or M (KiB, MiB) suffix.
func parseSize(s string) (int, error) {
	mul := 1
	switch {
	case strings.HasSuffix(s, "K"), strings.HasSuffix(s, "k"):
		mul, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mul, s = 1<<20, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > (1<<31)/mul {
		return 0, fmt.Errorf("%q is not a size from 1 byte to 2G", s)
	}
	return n * mul, nil
}

func newPipeWrite() *cobra.Command {
	var waitReader, direct bool
	cmd := &cobra.Command{
		Use:   "write NAME",
		Short: "Write stdin into a pipe",
		Long: `Write stdin into a pipe until end of file, then close this writer end.

Each read of stdin (up to 64 KiB) is one chunk, kept whole. The command
waits while the pipe's buffer is full. If the pipe has no reader left
(one was there since this writer opened) it exits 141, like a writer
killed by SIGPIPE; what it wrote before stays in the pipe for the next
reader. --wait-reader waits for a reader instead: the open waits for
the first, and later writes wait while there is none.

--direct (with "pipe read --direct" on the other end, both on this
machine): if this is the pipe's only writer, the broker hands both ends
a kernel pipe and the bytes no longer pass through it. The reader gets
them in stream order, after what was buffered; but bytes in the kernel
pipe die with the reader that holds it (this writer then exits 141).

` + exitHelp,
		Example: "  tar c dir | postbox pipe write backups",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			var opts []postbox.PipeOption
			if waitReader {
				opts = append(opts, postbox.WithWaitReader())
			}
			if direct {
				opts = append(opts, postbox.WithDirect())
			}
			w, err := c.OpenPipeWriter(ctx, args[0], opts...)
			if err != nil {
				return err
			}
			buf := make([]byte, postbox.PipeAtomic)
			for {
				n, rerr := os.Stdin.Read(buf)
				if n > 0 {
					if _, err := w.Write(buf[:n]); err != nil {
						w.Close()
						return err
					}
				}
				if rerr == io.EOF {
					return w.Close()
				}
				if rerr != nil {
					w.Close()
					return fmt.Errorf("reading stdin: %w", rerr)
				}
			}
		},
	}
	cmd.Flags().BoolVar(&waitReader, "wait-reader", false, "wait for a reader instead of exiting 141 when there is none")
	cmd.Flags().BoolVar(&direct, "direct", false, "take a kernel pipe to a --direct reader when possible: bytes bypass the broker")
	return cmd
}

// chunkJSON is one line of `pipe read -o json`.
type chunkJSON struct {
	Writer     senderJS `json:"writer"`
	Size       int      `json:"size"`
	Data       *string  `json:"data,omitempty"`
	DataBase64 []byte   `json:"data_base64,omitempty"`
}

func newPipeRead() *cobra.Command {
	var out string
	var direct bool
	cmd := &cobra.Command{
		Use:   "read NAME",
		Short: "Copy a pipe to stdout until end of file",
		Long: `Copy a pipe to stdout until its last writer closes and it is drained.

If another reader is active, this one waits for its turn. A chunk is
acknowledged once it is written to stdout: if this reader dies, the next
one starts at the first chunk not fully written. -o raw (default) copies
the bytes; -o json prints one line per chunk, as it was written, with
its writer: {"writer": {"kind","uid","gid","pid","endpoint"}, "size",
"data"} ("data_base64" when not UTF-8).

--direct accepts a kernel pipe from a --direct writer (see "pipe write
--help"): those bytes bypass the broker, and this reader alone holds
them.

` + exitHelp,
		Example: "  postbox pipe read backups | tar x\n  postbox pipe read logs -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "raw", "json"); err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			var opts []postbox.PipeOption
			if direct {
				opts = append(opts, postbox.WithDirect())
			}
			r, err := c.OpenPipeReader(ctx, args[0], opts...)
			if err != nil {
				return err
			}
			defer r.Close()
			if out == "raw" {
				defer context.AfterFunc(ctx, func() { r.Close() })() // Ctrl-C ends WriteTo
				_, err := r.WriteTo(os.Stdout)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return err
			}
			w := bufio.NewWriter(os.Stdout)
			enc := json.NewEncoder(w)
			for {
				ch, err := r.ReadChunk(ctx)
				if errors.Is(err, io.EOF) {
					return w.Flush()
				}
				if err != nil {
					return err
				}
				id := ch.Writer
				j := chunkJSON{Writer: senderJS{id.Kind.String(), id.UID, id.GID, id.PID, id.Endpoint}, Size: len(ch.Data)}
				if utf8.Valid(ch.Data) {
					s := string(ch.Data)
					j.Data = &s
				} else {
					j.DataBase64 = ch.Data
				}
				enc.Encode(j)
				if err := w.Flush(); err != nil { // written out before the chunk is acknowledged
					return err
				}
			}
		},
	}
	outputFlag(cmd, &out, "raw", "raw or json")
	cmd.Flags().BoolVar(&direct, "direct", false, "accept a kernel pipe from a --direct writer: bytes bypass the broker")
	return cmd
}

func newPipeRm() *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME...",
		Example: "  postbox pipe rm backups",
		Short:   "Remove pipes (the owner or root)",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			for _, name := range args {
				if err := c.Mailbox(name).Destroy(cmd.Context()); err != nil {
					return err
				}
			}
			return nil
		},
	}
}
