package wire

import "testing"

func TestParseInboxFollowsDesign(t *testing.T) {
	for addr, want := range map[string]uint64{
		"@1": 1, "@4294967297": 1<<32 | 1, "@18446744073709551615": 1<<64 - 1,
	} {
		if id, ok := ParseInbox(addr); !ok || id != want {
			t.Errorf("ParseInbox(%q) = %d, %v; want %d", addr, id, ok, want)
		}
		if !ValidAddress(addr) {
			t.Errorf("ValidAddress(%q) = false", addr)
		}
		if got := string(AppendInbox(nil, want)); got != addr {
			t.Errorf("AppendInbox(%d) = %q", want, got)
		}
	}
	for _, addr := range []string{"@", "@abc", "@1x", "@-1", "@007", "@0", "@18446744073709551616",
		"@99999999999999999999", "@123456789012345678901", "1"} {
		if _, ok := ParseInbox(addr); ok {
			t.Errorf("ParseInbox(%q) ok", addr)
		}
	}
	for _, addr := range []string{"@", "@007", "a*", "a>b", "#x", "x!", ""} {
		if ValidAddress(addr) {
			t.Errorf("ValidAddress(%q) = true", addr)
		}
	}
}

func TestReservedCharactersAreNotInNames(t *testing.T) {
	for _, c := range "*>#!@ " {
		if ValidName("a" + string(c)) {
			t.Errorf("%q is valid in a name", c)
		}
	}
	if !ValidName("jobs.high/a_b:c-1") {
		t.Fatal("a valid name refused")
	}
}
