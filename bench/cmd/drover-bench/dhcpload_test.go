package main

import (
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestBuildPacket(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 1, 2}
	relay := netip.MustParseAddr("10.200.0.2")
	for _, tc := range []struct {
		name                string
		kind                byte
		requested, serverID netip.Addr
		want                dhcpv4.MessageType
	}{
		{"discover", 1, netip.Addr{}, netip.Addr{}, dhcpv4.MessageTypeDiscover},
		{"request", 3, netip.MustParseAddr("10.200.0.11"), netip.MustParseAddr("10.200.0.1"), dhcpv4.MessageTypeRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := make([]byte, 300)
			for i := range b {
				b[i] = 0xee // a reused buffer: nothing of the last packet may remain
			}
			buildPacket(b, tc.kind, 77, mac, relay, tc.requested, tc.serverID)
			m, err := dhcpv4.FromBytes(b)
			if err != nil {
				t.Fatal(err)
			}
			if m.MessageType() != tc.want || m.TransactionID != [4]byte{0, 0, 0, 77} || m.HopCount != 1 {
				t.Errorf("type %v xid %v hops %d", m.MessageType(), m.TransactionID, m.HopCount)
			}
			if m.GatewayIPAddr.String() != "10.200.0.2" || m.ClientHWAddr.String() != mac.String() {
				t.Errorf("giaddr %v chaddr %v", m.GatewayIPAddr, m.ClientHWAddr)
			}
			if got := m.RequestedIPAddress(); tc.requested.IsValid() != (got != nil) || (got != nil && got.String() != tc.requested.String()) {
				t.Errorf("requested %v, want %v", got, tc.requested)
			}
			if got := m.ServerIdentifier(); tc.serverID.IsValid() != (got != nil) || (got != nil && got.String() != tc.serverID.String()) {
				t.Errorf("server id %v, want %v", got, tc.serverID)
			}
		})
	}
}

func TestReplyOptions(t *testing.T) {
	offer, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer), dhcpv4.WithServerIP(net.IPv4(10, 200, 0, 1)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 200, 0, 1))), dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(10, 200, 0, 1))))
	if err != nil {
		t.Fatal(err)
	}
	full := offer.ToBytes()
	for _, tc := range []struct {
		name     string
		b        []byte
		kind     byte
		serverID string
	}{
		{"offer", full, 2, "10.200.0.1"},
		{"header only", full[:240], 0, "invalid IP"},
		{"cut inside an option", full[:243], 0, "invalid IP"},
		{"wrong lengths", append(append([]byte{}, full[:240]...), 53, 2, 5, 5, 54, 3, 1, 2, 3, 255), 0, "invalid IP"},
		{"pads then ACK", append(append([]byte{}, full[:240]...), 0, 0, 53, 1, 5, 255), 5, "invalid IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, id := replyOptions(tc.b)
			if kind != tc.kind || id.String() != tc.serverID {
				t.Errorf("got %d %v, want %d %s", kind, id, tc.kind, tc.serverID)
			}
		})
	}
}

func FuzzReplyOptions(f *testing.F) {
	f.Add(make([]byte, 240))
	f.Add(append(make([]byte, 240), 53, 1, 2, 54, 4, 10, 0, 0, 1, 255))
	f.Add(append(make([]byte, 240), 53, 200))
	f.Fuzz(func(t *testing.T, b []byte) {
		replyOptions(b)
	})
}
