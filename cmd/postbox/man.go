package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newMan is "postbox man --dir DIR": one man page (section 1) per
// command, generated from the commands themselves, so the pages say
// what --help says.
func newMan() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "man --dir DIR",
		Short: "Write the man pages (section 1) of every command into a directory",
		Long: `Write a man page for postbox and for each of its commands (postbox.1,
postbox-send.1, ...) into DIR, creating it if needed. To install them
for every user, write them where man looks, then refresh its index:

  sudo postbox man --dir /usr/local/share/man/man1 && sudo mandb -q

or for yourself only: postbox man --dir ~/.local/share/man/man1
(man finds ~/.local/share/man when ~/.local/bin is on PATH).`,
		Example: "  postbox man --dir /usr/local/share/man/man1\n  postbox man --dir /tmp/man && man -l /tmp/man/postbox-send.1",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return usageError{fmt.Errorf("--dir: say where to write the pages")}
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("man %q: %w", dir, err)
			}
			v := readBuildVersion()
			h := &doc.GenManHeader{Title: "POSTBOX", Section: "1", Source: "postbox " + v.Version, Manual: "postbox manual"}
			if t, err := time.Parse(time.RFC3339, v.Time); err == nil {
				h.Date = &t // the same pages for the same revision
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			if err := doc.GenManTree(root, h, dir); err != nil {
				return fmt.Errorf("man %q: %w", dir, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write the pages into (created if missing)")
	return cmd
}
