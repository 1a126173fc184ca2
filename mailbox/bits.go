package mailbox

import "math/bits"

func leadingZeros(x uint64) int { return bits.LeadingZeros64(x) }
