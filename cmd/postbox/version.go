package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// buildVersion is what the binary knows of its build, from the build
// information the Go toolchain embeds: the module version ("(devel)" for
// a build from a checkout), the VCS revision and time and whether the
// tree was modified (when built with VCS stamping, the default in a
// git checkout), and the Go version.
type buildVersion struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified *bool  `json:"modified,omitempty"`
	Go       string `json:"go"`
}

func readBuildVersion() buildVersion {
	v := buildVersion{Module: "github.com/postbox-ipc/postbox", Version: "(unknown)"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Go = bi.GoVersion
	if bi.Main.Path != "" {
		v.Module = bi.Main.Path
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			m := s.Value == "true"
			v.Modified = &m
		}
	}
	return v
}

// String is the one line --version prints: version, revision, time, Go.
func (v buildVersion) String() string {
	parts := []string{v.Version}
	if v.Revision != "" {
		r := v.Revision
		if len(r) > 12 {
			r = r[:12]
		}
		if v.Modified != nil && *v.Modified {
			r += "+modified"
		}
		parts = append(parts, r)
	}
	if v.Time != "" {
		parts = append(parts, v.Time)
	}
	parts = append(parts, v.Go)
	return strings.Join(parts, " ")
}

func newVersion() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary, from its build information",
		Long: `Print the module version, the VCS revision and commit time it was built
from (with "+modified" if the tree had changes), and the Go version.
"postbox --version" prints the same line.`,
		Example: "  postbox version\n  postbox version -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "text", "json", "yaml"); err != nil {
				return err
			}
			v := readBuildVersion()
			if structured(out) {
				return newRecordEncoder(os.Stdout, out).Encode(v)
			}
			_, err := fmt.Println("postbox", v)
			return err
		},
	}
	outputFlag(cmd, &out, "text", "text, json or yaml")
	return cmd
}
