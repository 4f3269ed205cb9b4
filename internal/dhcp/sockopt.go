package dhcp

import (
	"encoding/binary"
	"net"
	"net/netip"
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

// received is what a datagram's control messages (cmsg(3)) say: the
// interface it came in on and the address it was sent to (IP_PKTINFO), and
// how many datagrams the kernel dropped on the socket, its buffer full,
// since the socket opened (SO_RXQ_OVFL).
type received struct {
	ifIndex int
	dst     netip.Addr
	info    bool // IP_PKTINFO was there
	drops   uint32
	counted bool // SO_RXQ_OVFL was there
}

// parseControl reads a datagram's control messages by hand. x/net/ipv4
// parses only IP-level messages, not SO_RXQ_OVFL, and its parse allocates
// three values per datagram (a fifth of a request's allocations outside the
// DHCP codec); this allocates nothing, as it runs for every datagram.
func parseControl(oob []byte) (r received) {
	for len(oob) >= syscall.SizeofCmsghdr {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < syscall.SizeofCmsghdr || l > len(oob) {
			return r
		}
		data := oob[syscall.CmsgLen(0):l]
		switch {
		case h.Level == syscall.SOL_SOCKET && h.Type == syscall.SO_RXQ_OVFL && len(data) >= 4:
			r.drops, r.counted = binary.NativeEndian.Uint32(data), true
		case h.Level == syscall.IPPROTO_IP && h.Type == syscall.IP_PKTINFO && len(data) >= syscall.SizeofInet4Pktinfo:
			// struct in_pktinfo: the interface, the local address the
			// kernel would answer from, and the header's destination.
			pi := (*syscall.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			r.ifIndex, r.dst, r.info = int(pi.Ifindex), netip.AddrFrom4(pi.Addr), true
		}
		next := syscall.CmsgSpace(l - syscall.CmsgLen(0))
		if next > len(oob) {
			return r
		}
		oob = oob[next:]
	}
	return r
}
