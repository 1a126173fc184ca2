package wire

// Descriptors on messages (PROTOCOL.md 8.24).
//
// A SEND may carry open file descriptors (SCM_RIGHTS) on a Unix socket
// whose HELLO was granted CapDescriptors. The frame's ext tail holds
// TagFiles: one u8 per message, in order, the number of descriptors that
// belong to that message; the descriptors themselves ride with the
// frame's first byte. A Delivery of such a message has DeliveryFiles set
// and its descriptors ride with its frame the same way.

// TagFiles (SEND ext, critical): `count u8` per message of the batch, in
// order: how many of the descriptors that came with the frame belong to
// each message. The counts add up to the descriptors that arrived.
const TagFiles uint16 = 0x8002

// DeliveryFiles (Delivery.Flags): the message carries descriptors. On a
// connection granted CapDescriptors they ride with the Delivery's frame
// (SCM_RIGHTS, with its first byte); on one without, none arrive: the
// broker withheld them (they stay with the message for a receiver that
// can take them until it leaves its mailbox).
const DeliveryFiles uint8 = 1 << 2

// MaxFrameFiles is the most descriptors one frame may carry, in either
// direction. A receiver reads with a control buffer for at least this
// many (CmsgSpace(4 * MaxFrameFiles) bytes): the kernel closes
// descriptors that do not fit, and the broker then refuses the frame
// because its counts do not add up.
const MaxFrameFiles = 64

// AppendFiles appends a TagFiles entry with one count per message.
func AppendFiles(b []byte, counts []uint8) []byte {
	b = appendExtHead(b, TagFiles, len(counts))
	return append(b, counts...)
}

// FilesOf returns the TagFiles counts of a decoded Send's ext tail (nil
// if the tag is absent). It aliases the tail.
func FilesOf(tail []byte) []uint8 {
	it := NewExtIter(tail)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		if f.Tag == TagFiles {
			return f.Value
		}
	}
	return nil
}
