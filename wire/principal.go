package wire

// Principal names: who a TLS peer is, beside its 21-byte principal.
//
// A principal of kind PrincipalTLS has no uid, gid or pid (they are 0);
// its name (the client certificate's URI SAN, else its subject DN) goes in
// the ext tail of the payload that reports the principal, under
// TagPrincipalName. The tag has the same number in every payload that
// reports a principal: HelloReply (the client itself), Delivery and a
// BROWSE entry (the sender), SendReply (the receipt's receiver) and a
// CALL's error reply (its RECEIVER). It is not critical: a client that
// does not know it still reads the kind.

// TagPrincipalName carries a principal's name (UTF-8, 1..MaxPrincipalName
// bytes).
const TagPrincipalName uint16 = 0x0020

// MaxPrincipalName is the longest principal name the broker reports; a
// certificate whose name is longer is refused at HELLO.
const MaxPrincipalName = 1024

// AppendPrincipalName appends a PRINCIPAL_NAME entry, nothing if name is
// empty.
func AppendPrincipalName(b []byte, name string) []byte {
	if name == "" {
		return b
	}
	b = appendExtHead(b, TagPrincipalName, len(name))
	return append(b, name...)
}

// PrincipalName returns the PRINCIPAL_NAME in an ext tail ("" if none).
// An empty, over-long or repeated entry is ErrMalformed.
func PrincipalName(tail []byte) (string, error) {
	var name []byte
	seen := false
	it := NewExtIter(tail)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		if f.Tag != TagPrincipalName {
			continue
		}
		if seen || len(f.Value) == 0 || len(f.Value) > MaxPrincipalName {
			return "", ErrMalformed
		}
		name, seen = f.Value, true
	}
	if err := it.Err(); err != nil {
		return "", err
	}
	return string(name), nil
}
