package framewriter

import (
	"net"

	"golang.org/x/sys/unix"
)

// WriteFDs writes buf to c, sending each FDFrame's files with SCM_RIGHTS
// in the same sendmsg as the first byte of the frame at its offset, so a
// receiver that reads the frame's header with recvmsg gets them. It does
// not close the files. It is the default Config.WriteFDs for a
// *net.UnixConn.
func WriteFDs(c *net.UnixConn, buf []byte, fds []FDFrame) error {
	pos := 0
	var ints []int
	for _, f := range fds {
		if f.Off > pos {
			if _, err := c.Write(buf[pos:f.Off]); err != nil {
				return err
			}
			pos = f.Off
		}
		ints = ints[:0]
		for _, file := range f.Files {
			ints = append(ints, int(file.Fd()))
		}
		// The descriptors ride with the frame's first bytes (up to its
		// 16-byte header, or less if it is the end of the buffer).
		end := min(f.Off+16, len(buf))
		if len(fds) > 0 {
			for _, g := range fds {
				if g.Off > f.Off && g.Off < end {
					end = g.Off
				}
			}
		}
		n, _, err := c.WriteMsgUnix(buf[f.Off:end], unix.UnixRights(ints...), nil)
		if err != nil {
			return err
		}
		pos = f.Off + n
	}
	if pos < len(buf) {
		_, err := c.Write(buf[pos:])
		return err
	}
	return nil
}
