package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/broker"
)

func TestServeConfigReadsDeadPeerAsADuration(t *testing.T) {
	for _, c := range []struct {
		json string
		want time.Duration
	}{{`{"dead_peer": "250ms"}`, 250 * time.Millisecond}, {`{"dead_peer": 1000000000}`, time.Second}, {`{"dead_peer": "0s"}`, 0}} {
		path := filepath.Join(t.TempDir(), "c.json")
		if err := os.WriteFile(path, []byte(c.json), 0o600); err != nil {
			t.Fatal(err)
		}
		fc, err := readConfig(path, broker.DefaultConfig().Limits, "info")
		if err != nil {
			t.Fatalf("%s: %v", c.json, err)
		}
		if fc.DeadPeer == nil || time.Duration(*fc.DeadPeer) != c.want {
			t.Fatalf("%s: dead_peer %v, want %v", c.json, fc.DeadPeer, c.want)
		}
	}
	path := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(path, []byte(`{"dead_peer": "soon"}`), 0o600)
	if _, err := readConfig(path, broker.DefaultConfig().Limits, "info"); err == nil {
		t.Fatal(`dead_peer "soon": no error`)
	}
}
