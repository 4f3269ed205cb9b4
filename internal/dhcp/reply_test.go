package dhcp

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestNewReply: a reply started by newReply encodes as one the library's
// NewReplyFromRequest starts, with the same message type and server.
func TestNewReply(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	relayInfo := dhcpv4.OptRelayAgentInfo(
		dhcpv4.OptGeneric(dhcpv4.AgentCircuitIDSubOption, []byte("Ethernet7")),
		dhcpv4.OptGeneric(dhcpv4.AgentRemoteIDSubOption, []byte("leaf-a1")))
	tests := []struct {
		name string
		mt   dhcpv4.MessageType
		mods []dhcpv4.Modifier
	}{
		{"direct discover", dhcpv4.MessageTypeOffer, nil},
		{"relayed with option 82", dhcpv4.MessageTypeAck, []dhcpv4.Modifier{
			dhcpv4.WithGatewayIP(net.IPv4(10, 1, 0, 1)), dhcpv4.WithOption(relayInfo)}},
		{"client identifier, broadcast flag", dhcpv4.MessageTypeNak, []dhcpv4.Modifier{
			dhcpv4.WithBroadcast(true), dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 0x52, 0x54, 0, 0x12, 0x34, 0x56}))}},
	}
	server := netip.MustParseAddr("192.168.250.1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			built, err := dhcpv4.NewDiscovery(mac, tt.mods...)
			if err != nil {
				t.Fatal(err)
			}
			// As the server sees it: parsed from the wire.
			req, err := dhcpv4.FromBytes(built.ToBytes())
			if err != nil {
				t.Fatal(err)
			}
			want, err := dhcpv4.NewReplyFromRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			want.UpdateOption(dhcpv4.OptMessageType(tt.mt))
			want.UpdateOption(dhcpv4.OptServerIdentifier(server.AsSlice()))
			got, _ := (&Handler{}).newReply(req, tt.mt, server)
			if g, w := got.Packet.ToBytes(), want.ToBytes(); !bytes.Equal(g, w) {
				t.Errorf("newReply encodes as\n%s\nwant\n%s", got.Packet.Summary(), want.Summary())
			}
		})
	}
}

// TestReplyOptionEncoding: each option encodes as the library's constructor for it
// does, and values set one after another do not overwrite each other.
func TestReplyOptionEncoding(t *testing.T) {
	tests := []struct {
		name string
		set  func(o *replyOptions)
		want dhcpv4.Option
	}{
		{"lease time", func(o *replyOptions) { o.seconds(dhcpv4.OptionIPAddressLeaseTime, 90*time.Minute) },
			dhcpv4.OptIPAddressLeaseTime(90 * time.Minute)},
		{"renew time, rounded down", func(o *replyOptions) { o.seconds(dhcpv4.OptionRenewTimeValue, 1500*time.Millisecond) },
			dhcpv4.OptRenewTimeValue(1500 * time.Millisecond)},
		{"subnet mask /22", func(o *replyOptions) { o.mask(dhcpv4.OptionSubnetMask, netip.MustParsePrefix("10.1.4.0/22")) },
			dhcpv4.OptSubnetMask(net.CIDRMask(22, 32))},
		{"subnet mask /32", func(o *replyOptions) { o.mask(dhcpv4.OptionSubnetMask, netip.MustParsePrefix("10.1.4.9/32")) },
			dhcpv4.OptSubnetMask(net.CIDRMask(32, 32))},
		{"subnet mask /0", func(o *replyOptions) { o.mask(dhcpv4.OptionSubnetMask, netip.MustParsePrefix("0.0.0.0/0")) },
			dhcpv4.OptSubnetMask(net.CIDRMask(0, 32))},
		{"router", func(o *replyOptions) { o.addr(dhcpv4.OptionRouter, netip.MustParseAddr("10.1.4.1")) },
			dhcpv4.OptRouter(net.IPv4(10, 1, 4, 1))},
		{"two name servers", func(o *replyOptions) {
			o.addrs(dhcpv4.OptionDomainNameServer, netip.MustParseAddr("10.0.0.53"), netip.MustParseAddr("10.0.1.53"))
		}, dhcpv4.OptDNS(net.IPv4(10, 0, 0, 53), net.IPv4(10, 0, 1, 53))},
		{"host name", func(o *replyOptions) { o.str(dhcpv4.OptionHostName, "r01-n07") }, dhcpv4.OptHostName("r01-n07")},
		{"boot file", func(o *replyOptions) { o.str(dhcpv4.OptionBootfileName, "http://10.0.0.1:8080/boot/t.ipxe") },
			dhcpv4.OptBootFileName("http://10.0.0.1:8080/boot/t.ipxe")},
		{"generic bytes", func(o *replyOptions) { o.bytes(ipxeEncapsulated, 176, 1, 1) },
			dhcpv4.OptGeneric(ipxeEncapsulated, []byte{176, 1, 1})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A buffer with no room left: the value lands in a new array.
			o := &replyOptions{m: dhcpv4.Options{}, buf: make([]byte, 0, 1)}
			o.str(dhcpv4.OptionDomainName, "before")
			tt.set(o)
			o.str(dhcpv4.OptionMessage, "after")
			if got, want := o.m.Get(tt.want.Code), tt.want.Value.ToBytes(); !bytes.Equal(got, want) {
				t.Errorf("%s = %v, want %v", tt.want.Code, got, want)
			}
			if got := string(o.m.Get(dhcpv4.OptionDomainName)); got != "before" {
				t.Errorf("the value set before reads %q", got)
			}
			if got := string(o.m.Get(dhcpv4.OptionMessage)); got != "after" {
				t.Errorf("the value set after reads %q", got)
			}
		})
	}
}

// TestReleasedReplyReused: a reply built in a released reply's memory encodes
// as one built fresh, with nothing left over from the reply before it.
func TestReleasedReplyReused(t *testing.T) {
	server := netip.MustParseAddr("10.0.0.1")
	request := func(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		built, err := dhcpv4.NewDiscovery(net.HardwareAddr{2, 0, 0, 0, 0, 9}, mods...)
		if err != nil {
			t.Fatal(err)
		}
		req, err := dhcpv4.FromBytes(built.ToBytes())
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	// The first reply fills every field and option the second leaves out.
	first := request(dhcpv4.WithGatewayIP(net.IPv4(10, 1, 0, 1)), dhcpv4.WithBroadcast(true),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 2, 0, 0, 0, 0, 9})))
	second := request()
	build := func(h *Handler, req *dhcpv4.DHCPv4, full bool) *Reply {
		rep, o := h.newReply(req, dhcpv4.MessageTypeAck, server)
		if full {
			rep.Packet.BootFileName = "boot.ipxe"
			o.str(dhcpv4.OptionHostName, "a-much-longer-host-name-than-the-buffer-holds-at-first")
			o.addrs(dhcpv4.OptionDomainNameServer, server, server, server)
		}
		o.seconds(dhcpv4.OptionIPAddressLeaseTime, time.Hour)
		return h.route(req, rep, false)
	}
	fresh := build(&Handler{}, second, false)
	want, wantTo := fresh.Packet.ToBytes(), fresh.To.String()

	h := &Handler{}
	prev := build(h, first, true)
	if prev.To.String() != "10.1.0.1:67" {
		t.Fatalf("first reply goes to %s", prev.To)
	}
	h.Release(prev)
	h.Release(prev) // a second release of the same reply is harmless
	// sync.Pool may drop what it holds; try until the memory comes back.
	for i := 0; i < 100; i++ {
		got := build(h, second, false)
		if g := got.Packet.ToBytes(); !bytes.Equal(g, want) || got.To.String() != wantTo || !got.Bcast {
			t.Fatalf("reused reply encodes as\n%s\nto %s, want\n%s\nto %s", got.Packet.Summary(), got.To, fresh.Packet.Summary(), wantTo)
		}
		h.Release(got)
	}
}
