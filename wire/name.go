package wire

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
