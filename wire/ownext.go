package wire

// Payloads with non-critical tags of their own (HelloReply's KEEPALIVE
// and DEAD_PEER, MailboxInfo's DROPPED) decode them with decodeOwnExt.

// decodeOwnExt reads an ext tail whose defined tags take(f) recognizes
// (reporting true, or an error for a bad value). It returns the entries
// take does not know, byte for byte in their order (aliasing tail when
// they are all after the known ones, as the Go encoder writes them), or
// ErrMalformed for a structural error, else ErrUnknownCritical for an
// unknown critical tag. A known tag must appear at most once: seen is
// the set of tags already taken, by bit index (tags 0x0010..0x001f).
func decodeOwnExt(tail []byte, take func(f ExtField) (bool, error)) ([]byte, error) {
	it := NewExtIter(tail)
	critical := false
	var rest []byte
	known, split := 0, false // bytes of known entries before the first unknown one; whether a known one came after it
	off := 0
	var seen uint32
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		n := 4 + len(f.Value)
		k, err := take(f)
		if err != nil {
			return nil, err
		}
		switch {
		case k:
			bit := uint32(1) << (f.Tag & 31)
			if seen&bit != 0 {
				return nil, ErrMalformed
			}
			seen |= bit
			if rest != nil || off > known {
				split = true
			} else {
				known += n
			}
		case f.Critical():
			critical = true
			fallthrough
		default:
			rest = append(rest, tail[off:off+n]...)
		}
		off += n
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	if critical {
		return nil, ErrUnknownCritical
	}
	if rest == nil {
		return nil, nil
	}
	if !split {
		return tail[known:], nil // the unknown entries, in place
	}
	return rest, nil
}

// u64Value reads an 8-byte ext value (ErrMalformed for another length).
func u64Value(f ExtField) (uint64, error) {
	if len(f.Value) != 8 {
		return 0, ErrMalformed
	}
	d := NewDecoder(f.Value)
	return d.U64(), nil
}
