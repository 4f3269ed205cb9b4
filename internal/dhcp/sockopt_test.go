package dhcp

import (
	"encoding/binary"
	"net"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// cmsg is one control message as the kernel lays it out.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, syscall.CmsgSpace(len(data)))
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(syscall.CmsgLen(len(data)))
	copy(b[syscall.CmsgLen(0):], data)
	return b
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func TestSocketDrops(t *testing.T) {
	pktinfo := cmsg(syscall.IPPROTO_IP, syscall.IP_PKTINFO, make([]byte, 12))
	drops := cmsg(syscall.SOL_SOCKET, syscall.SO_RXQ_OVFL, u32(70000))
	tooLong := cmsg(syscall.SOL_SOCKET, syscall.SO_RXQ_OVFL, u32(5))
	(*syscall.Cmsghdr)(unsafe.Pointer(&tooLong[0])).SetLen(len(tooLong) + 8)
	for _, c := range []struct {
		name string
		oob  []byte
		want uint32
		ok   bool
	}{
		{"nothing", nil, 0, false},
		{"interface and destination only", pktinfo, 0, false},
		{"drops after the interface", append(append([]byte{}, pktinfo...), drops...), 70000, true},
		{"drops first", append(append([]byte{}, drops...), pktinfo...), 70000, true},
		{"header cut short", drops[:syscall.SizeofCmsghdr-1], 0, false},
		{"length past the buffer", tooLong, 0, false},
		{"zero length", make([]byte, 32), 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got, ok := socketDrops(c.oob); got != c.want || ok != c.ok {
				t.Errorf("socketDrops = %d, %v; want %d, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

// The kernel's own count: a socket with the smallest buffer, sent more
// than it holds, reports what it dropped with the first datagram queued
// after the drops.
func TestSocketDropsFromTheKernel(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw, _ := conn.SyscallConn()
	raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RXQ_OVFL, 1)
		setReadBuffer(int(fd), 1) // the kernel rounds it up to its minimum
	})
	if got := readBuffer(conn); got <= 0 || got > 64<<10 {
		t.Fatalf("receive buffer %d bytes, want the kernel's small minimum", got)
	}
	out, err := net.DialUDP("udp4", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	const sent = 200
	for range sent {
		out.Write(make([]byte, 300))
	}
	buf, oob := make([]byte, 1500), make([]byte, 64)
	read := func() (uint32, bool) {
		_, oobn, _, _, err := conn.ReadMsgUDP(buf, oob)
		if err != nil {
			t.Fatal(err)
		}
		return socketDrops(oob[:oobn])
	}
	queued := 0
	for ; ; queued++ {
		conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, _, _, err := conn.ReadMsgUDP(buf, oob); err != nil {
			break
		}
	}
	conn.SetReadDeadline(time.Time{})
	out.Write(make([]byte, 300))
	n, ok := read()
	if !ok || int(n) != sent-queued {
		t.Fatalf("socketDrops = %d, %v; want %d: %d datagrams sent, %d queued", n, ok, sent-queued, sent, queued)
	}
}

func FuzzSocketDrops(f *testing.F) {
	f.Add(cmsg(syscall.SOL_SOCKET, syscall.SO_RXQ_OVFL, u32(3)))
	f.Add(append(cmsg(syscall.IPPROTO_IP, syscall.IP_PKTINFO, make([]byte, 12)), 1, 2, 3))
	f.Fuzz(func(t *testing.T, oob []byte) { socketDrops(oob) })
}
