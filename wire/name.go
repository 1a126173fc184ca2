package wire

// Names and addresses.
//
// A mailbox name is 1 to 200 bytes of [A-Za-z0-9._:/-]. The characters
// '*' and '>' are reserved for topic wildcards and '#' and '!' for future
// use: they are not in the name alphabet, so they are INVALID in names
// today and a later version can give them meaning without breaking a
// valid name.
//
// An address is what a SEND, CHANNEL or a REPLY_TO header names: a mailbox
// name, or an endpoint's inbox "@<id>" with id in decimal, 1 to 20 digits,
// no leading zero, at most 2^64-1. "@0" is INVALID (endpoint ids are
// epoch<<32 | n with n >= 1, so 0 is never one).

// MaxNameLen is the longest mailbox name.
const MaxNameLen = 200

// ValidName reports whether name is a valid mailbox name: 1 to 200 bytes
// of [A-Za-z0-9._:/-]. Inbox addresses ("@<id>") are not names.
func ValidName[S ~string | ~[]byte](name S) bool {
	if len(name) == 0 || len(name) > MaxNameLen {
		return false
	}
	for i := range len(name) {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == ':', c == '/', c == '-':
		default:
			return false
		}
	}
	return true
}

// IsInbox reports whether addr is meant as an inbox address (it starts
// with '@'), well-formed or not. A broker answers a malformed one with
// CodeInvalid, a well-formed one naming no live endpoint with
// CodeNotFound.
func IsInbox[S ~string | ~[]byte](addr S) bool { return len(addr) > 0 && addr[0] == '@' }

// ParseInbox parses an inbox address "@<id>" and reports whether it is
// well-formed.
func ParseInbox[S ~string | ~[]byte](addr S) (id uint64, ok bool) {
	if len(addr) < 2 || len(addr) > 21 || addr[0] != '@' || addr[1] == '0' {
		return 0, false
	}
	for i := 1; i < len(addr); i++ {
		c := addr[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v := uint64(c - '0')
		if id > (1<<64-1-v)/10 {
			return 0, false // over 2^64-1
		}
		id = id*10 + v
	}
	return id, true
}

// ValidAddress reports whether addr is a valid mailbox name or a
// well-formed inbox address.
func ValidAddress[S ~string | ~[]byte](addr S) bool {
	if IsInbox(addr) {
		_, ok := ParseInbox(addr)
		return ok
	}
	return ValidName(addr)
}

// AppendInbox appends the inbox address of endpoint id.
func AppendInbox(b []byte, id uint64) []byte {
	b = append(b, '@')
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + id%10)
		id /= 10
		if id == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}
