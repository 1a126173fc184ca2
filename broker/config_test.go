package broker

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateNamesTheBadField(t *testing.T) {
	for field, mutate := range map[string]func(*Config){
		"MaxConnections": func(c *Config) { c.MaxConnections = 0 },
		"MaxMailboxes":   func(c *Config) { c.MaxMailboxes = -1 },
		"MaxMessage":     func(c *Config) { c.MaxMessage = 0 },
		"MaxQueuedBytes": func(c *Config) { c.MaxQueuedBytes = 10 },
		"InboxCapacity":  func(c *Config) { c.InboxCapacity = -2 },
		"MaxFrame":       func(c *Config) { c.MaxFrame = c.MaxMessage },
	} {
		c := DefaultConfig()
		mutate(&c)
		err := c.Validate()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: Validate() = %v, want ErrConfig naming the field", field, err)
		}
	}
}

func TestSetLimitsRejectsInvalidLimitsAndKeepsTheOldOnes(t *testing.T) {
	b := New(DefaultConfig())
	defer b.Close()
	old := b.Limits()
	bad := old
	bad.MaxMessage = b.cfg.MaxFrame // no room for headers
	if err := b.SetLimits(bad); !errors.Is(err, ErrConfig) {
		t.Fatalf("SetLimits(bad) = %v, want ErrConfig", err)
	}
	if b.Limits() != old {
		t.Fatal("limits changed after a refused SetLimits")
	}
}

func TestConfigMaxFrameIsConfigKeyMaxFrame(t *testing.T) {
	c := DefaultConfig()
	if c.MaxFrame != 16<<20 || c.MaxMessage != 4<<20 {
		t.Fatalf("defaults: max frame %d, max message %d", c.MaxFrame, c.MaxMessage)
	}
	if err := json.Unmarshal([]byte(`{"max_frame": 2097152, "max_message_bytes": 1048576}`), &c); err != nil {
		t.Fatal(err)
	}
	if c.MaxFrame != 2<<20 || c.MaxMessage != 1<<20 || c.Validate() != nil {
		t.Fatalf("max_frame from JSON: %d, max message %d (%v)", c.MaxFrame, c.MaxMessage, c.Validate())
	}
}

func TestConnBoundsDefaultsAndValidation(t *testing.T) {
	c := DefaultConfig()
	d := DefaultConnBounds()
	if c.ConnBounds != d || d.MaxConnBacklog != 4<<20 || d.MaxHandshaking != 64 || d.MaxHandshakingPerUID != 16 ||
		d.MaxOffersPerConn != 16 || d.MaxOffersPerUID != 64 || d.SlowConsumerTimeout != 30*time.Second || d.HandshakeTimeout != 2*time.Second {
		t.Fatalf("defaults %+v", d)
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.MaxConnBacklog = 1000 },
		func(c *Config) { c.MaxHandshaking = -1 },
		func(c *Config) { c.SlowConsumerTimeout = -time.Second },
	} {
		c := DefaultConfig()
		bad(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: Validate = %v, want ErrConfig", c.ConnBounds, err)
		}
	}
	c.ConnBounds = ConnBounds{} // zero: the defaults
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
