package dhcp

import (
	"encoding/binary"
	"net"
	"syscall"
	"unsafe"
)

// setReadBuffer sizes a socket's receive buffer: past net.core.rmem_max when
// the process may (SO_RCVBUFFORCE needs CAP_NET_ADMIN), else up to it.
func setReadBuffer(fd, size int) {
	if syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, size) != nil {
		syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
	}
}

// readBuffer is the receive buffer a socket has, in the bytes asked for
// (Linux reports twice the size it was given, the other half being its
// bookkeeping).
func readBuffer(c net.PacketConn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var size int
	raw.Control(func(fd uintptr) { size, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF) })
	return size / 2
}

// socketDrops finds SO_RXQ_OVFL's count in a datagram's control messages:
// how many datagrams the kernel dropped on the socket, its buffer full,
// since the socket opened. x/net/ipv4 parses only IP-level messages, so
// this reads the socket-level one by hand (cmsg(3)); it allocates nothing,
// as it runs for every datagram.
func socketDrops(oob []byte) (uint32, bool) {
	for len(oob) >= syscall.SizeofCmsghdr {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < syscall.SizeofCmsghdr || l > len(oob) {
			return 0, false
		}
		if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SO_RXQ_OVFL && l >= syscall.CmsgLen(4) {
			return binary.NativeEndian.Uint32(oob[syscall.CmsgLen(0):]), true
		}
		next := syscall.CmsgSpace(l - syscall.CmsgLen(0))
		if next > len(oob) {
			return 0, false
		}
		oob = oob[next:]
	}
	return 0, false
}
