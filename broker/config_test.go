package broker

import (
	"errors"
	"strings"
	"testing"
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
