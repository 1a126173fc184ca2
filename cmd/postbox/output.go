package main

// The output of commands that print records (ls, stat, usage, version,
// ...): a table (or text) for people; for programs -o json, one JSON
// object per line, or -o yaml, one YAML document per record, each
// starting with "---". Both encode the same values: YAML is made from
// the JSON encoding, so field names, order and omissions are the same.
// --no-headers drops a table's header row, for cut, awk and sort.

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// tableOutput registers -o (table, json or yaml; def first) and
// --no-headers on a command that prints a table.
func tableOutput(cmd *cobra.Command, format *string, noHeaders *bool, def string) {
	outputFlag(cmd, format, def, def+", json (one object per line) or yaml (one document per record)")
	cmd.Flags().BoolVar(noHeaders, "no-headers", false, "print the table without its header row")
}

// structured reports whether -o asks for records (json or yaml) rather
// than text.
func structured(format string) bool { return format == "json" || format == "yaml" }

// recordEncoder writes records as -o asks: JSON lines or YAML documents.
type recordEncoder struct {
	w    io.Writer
	yaml bool
	json *json.Encoder
}

func newRecordEncoder(w io.Writer, format string) *recordEncoder {
	return &recordEncoder{w: w, yaml: format == "yaml", json: json.NewEncoder(w)}
}

// Encode writes one record.
func (e *recordEncoder) Encode(v any) error {
	if !e.yaml {
		return e.json.Encode(v)
	}
	b, err := yamlRecord(v)
	if err != nil {
		return err
	}
	_, err = e.w.Write(b)
	return err
}

// yamlRecord is v as one YAML document ("---" first) with the fields and
// order of its JSON encoding.
func yamlRecord(v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(j, &doc); err != nil { // JSON is YAML
		return nil, err
	}
	plain(&doc)
	var b strings.Builder
	b.WriteString("---\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// plain drops the JSON styles (quoted strings, flow mappings) so the
// document is block YAML; the encoder still quotes a string that would
// otherwise read as another type (its tag stays !!str).
func plain(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		plain(c)
	}
}

// header writes a table's header row unless --no-headers.
func header(tw *tabwriter.Writer, noHeaders bool, row string) {
	if !noHeaders {
		fmt.Fprintln(tw, row)
	}
}

// outputValues are the -o values a flag's help names: "table, json
// (one object per line) or yaml" gives table, json and yaml.
func outputValues(help string) []string {
	help = regexp.MustCompile(`\([^)]*\)`).ReplaceAllString(help, "")
	var vs []string
	for _, f := range regexp.MustCompile(`,|\bor\b`).Split(help, -1) {
		if f = strings.TrimSpace(f); f != "" && !strings.Contains(f, " ") {
			vs = append(vs, f)
		}
	}
	return vs
}

// completeOutputs makes every command's -o complete to the values its
// help names, so a command added later gets it too.
func completeOutputs(c *cobra.Command) {
	if f := c.Flags().Lookup("output"); f != nil {
		vs := outputValues(f.Usage)
		c.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return vs, cobra.ShellCompDirectiveNoFileComp
		})
	}
	for _, s := range c.Commands() {
		completeOutputs(s)
	}
}
