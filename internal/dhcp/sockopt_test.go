package dhcp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
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

func TestParseControl(t *testing.T) {
	// in_pktinfo: interface 7, spec_dst 10.0.0.9, destination 255.255.255.255.
	info := append(u32(7), 10, 0, 0, 9, 255, 255, 255, 255)
	pktinfo := cmsg(syscall.IPPROTO_IP, syscall.IP_PKTINFO, info)
	drops := cmsg(syscall.SOL_SOCKET, syscall.SO_RXQ_OVFL, u32(70000))
	tooLong := cmsg(syscall.SOL_SOCKET, syscall.SO_RXQ_OVFL, u32(5))
	(*syscall.Cmsghdr)(unsafe.Pointer(&tooLong[0])).SetLen(len(tooLong) + 8)
	shortInfo := cmsg(syscall.IPPROTO_IP, syscall.IP_PKTINFO, info[:8])
	bcast := netip.MustParseAddr("255.255.255.255")
	withInfo := received{ifIndex: 7, dst: bcast, info: true}
	for _, c := range []struct {
		name string
		oob  []byte
		want received
	}{
		{"nothing", nil, received{}},
		{"interface and destination only", pktinfo, withInfo},
		{"drops after the interface", append(append([]byte{}, pktinfo...), drops...), received{ifIndex: 7, dst: bcast, info: true, drops: 70000, counted: true}},
		{"drops first", append(append([]byte{}, drops...), pktinfo...), received{ifIndex: 7, dst: bcast, info: true, drops: 70000, counted: true}},
		{"packet info too short", shortInfo, received{}},
		{"header cut short", drops[:syscall.SizeofCmsghdr-1], received{}},
		{"length past the buffer", tooLong, received{}},
		{"interface, then a length past the buffer", append(append([]byte{}, pktinfo...), tooLong...), withInfo},
		{"zero length", make([]byte, 32), received{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := parseControl(c.oob); got != c.want {
				t.Errorf("parseControl = %+v; want %+v", got, c.want)
			}
		})
	}
}

// The kernel's IP_PKTINFO reads as x/net/ipv4 reads it: the interface a
// datagram came in on and the address it was sent to.
func TestParseControlPacketInfo(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pc := ipv4.NewPacketConn(conn)
	if err := pc.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true); err != nil {
		t.Fatal(err)
	}
	out, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 7), Port: conn.LocalAddr().(*net.UDPAddr).Port})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	out.Write([]byte("hello"))
	buf, oob := make([]byte, 1500), make([]byte, 128)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, oobn, _, _, err := conn.ReadMsgUDP(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	var want ipv4.ControlMessage
	if err := want.Parse(oob[:oobn]); err != nil {
		t.Fatal(err)
	}
	got := parseControl(oob[:oobn])
	if !got.info || got.ifIndex != want.IfIndex || got.dst.String() != want.Dst.String() || got.dst.String() != "127.0.0.7" {
		t.Errorf("parseControl = %+v; x/net reads interface %d, destination %s", got, want.IfIndex, want.Dst)
	}
}

// The kernel's own count: a socket with the smallest buffer, sent more
// than it holds, reports what it dropped with the first datagram queued
// after the drops.
func TestParseControlDropsFromTheKernel(t *testing.T) {
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
		rc := parseControl(oob[:oobn])
		return rc.drops, rc.counted
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
		t.Fatalf("drops = %d, %v; want %d: %d datagrams sent, %d queued", n, ok, sent-queued, sent, queued)
	}
}

func FuzzParseControl(f *testing.F) {
	f.Add(cmsg(syscall.SOL_SOCKET, syscall.SO_RXQ_OVFL, u32(3)))
	f.Add(append(cmsg(syscall.IPPROTO_IP, syscall.IP_PKTINFO, make([]byte, 12)), 1, 2, 3))
	f.Fuzz(func(t *testing.T, oob []byte) {
		if rc := parseControl(oob); rc.info && !rc.dst.Is4() {
			t.Errorf("destination %s is not IPv4", rc.dst)
		}
	})
}
