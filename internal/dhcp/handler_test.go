package dhcp

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/drover/drover/internal/counter"
	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/fleet/fleettest"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
)

func TestClientKindAndBootFile(t *testing.T) {
	files := BootFiles{}
	tests := []struct {
		name     string
		mods     []dhcpv4.Modifier
		kind     string
		wantFile string
		httpCl   bool
		ipxe     bool
	}{
		{"OS client", nil, KindNone, "", false, false},
		{"BIOS PXE", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")), dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC))}, KindBIOS, "undionly.kpxe", false, false},
		{"BIOS PXE without arch option", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient"))}, KindBIOS, "undionly.kpxe", false, false},
		{"UEFI x64 PXE (arch 7)", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")), dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))}, KindUEFI, "ipxe.efi", false, false},
		{"UEFI BC PXE (arch 9)", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_BC))}, KindUEFI, "ipxe.efi", false, false},
		{"UEFI HTTP Boot", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016:UNDI:003001")), dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64_HTTP))}, KindUEFIHTTP, "http://10.0.0.1:8080/ipxe/ipxe.efi", true, false},
		{"iPXE by user class", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE")), dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC))}, KindIPXE, "http://10.0.0.1:8080/boot/T.ipxe", false, true},
		{"iPXE by option 175", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptGeneric(ipxeEncapsulated, []byte{19, 1, 1})), dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))}, KindIPXE, "http://10.0.0.1:8080/boot/T.ipxe", false, true},
		{"ARM64 UEFI: no loader", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_ARM64))}, KindUnsupported, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := dhcpv4.NewDiscovery(net.HardwareAddr{2, 0, 0, 0, 0, 1}, tt.mods...)
			if err != nil {
				t.Fatal(err)
			}
			kind := ClientKind(req)
			if kind != tt.kind {
				t.Fatalf("kind %s, want %s", kind, tt.kind)
			}
			c := ChooseBoot(kind, files, "http://10.0.0.1:8080/boot/T.ipxe", "http://10.0.0.1:8080/ipxe/ipxe.efi")
			if c.File != tt.wantFile || c.HTTPClient != tt.httpCl || c.IPXE != tt.ipxe {
				t.Errorf("boot %+v, want file %q http %v ipxe %v", c, tt.wantFile, tt.httpCl, tt.ipxe)
			}
		})
	}
	if c := ChooseBoot(KindUEFI, BootFiles{UEFI: "snponly.efi"}, "", ""); c.File != "snponly.efi" {
		t.Errorf("configured UEFI file: %+v", c)
	}
}

// testFleet serves the lab example design from a temporary store.
func testFleet(t *testing.T) (*fleet.Fleet, *store.DB) {
	return fleettest.Start(t, "../../examples/lab")
}

var (
	server   = netip.MustParseAddr("10.77.250.1")
	relay1   = net.IPv4(10, 77, 0, 1)   // p1-tor1, one subnet for the pod
	relay2   = net.IPv4(10, 77, 100, 9) // p1-tor2 swp2, a subnet per port
	stranger = net.IPv4(192, 0, 2, 1)
)

func relayed(giaddr net.IP, circuit, remote string) dhcpv4.Modifier {
	return func(d *dhcpv4.DHCPv4) {
		d.GatewayIPAddr = giaddr
		d.HopCount = 1
		var subs []dhcpv4.Option
		if circuit != "" {
			subs = append(subs, dhcpv4.OptGeneric(dhcpv4.AgentCircuitIDSubOption, []byte(circuit)))
		}
		if remote != "" {
			subs = append(subs, dhcpv4.OptGeneric(dhcpv4.AgentRemoteIDSubOption, []byte(remote)))
		}
		d.UpdateOption(dhcpv4.OptRelayAgentInfo(subs...))
	}
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func handle(t *testing.T, h *Handler, req *dhcpv4.DHCPv4) (*Reply, error) {
	t.Helper()
	return h.Handle(context.Background(), req, Inbound{Server: server})
}

func TestDORAThroughRelay(t *testing.T) {
	fl, st := testFleet(t)
	h := &Handler{Leases: fl, HTTPPort: 8080, Stats: &counter.Set{}}
	mac := mustMAC("52:54:00:aa:00:01")

	disc, _ := dhcpv4.NewDiscovery(mac, relayed(relay1, "swp2", "p1-tor1"), dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE")))
	rep, err := handle(t, h, disc)
	if err != nil || rep == nil {
		t.Fatalf("discover: %v", err)
	}
	off := rep.Packet
	if off.MessageType() != dhcpv4.MessageTypeOffer || !off.YourIPAddr.Equal(net.IPv4(10, 77, 0, 12)) {
		t.Fatalf("offer %s", off.Summary())
	}
	if rep.To.String() != "10.77.0.1:67" {
		t.Errorf("relayed reply goes to %s, want the relay at 10.77.0.1:67", rep.To)
	}
	if off.HostName() != "lab-compute-02" || off.DomainName() != "lab.drover.test" || !off.Router()[0].Equal(net.IPv4(10, 77, 0, 1)) ||
		off.SubnetMask().String() != "ffffff00" || off.IPAddressLeaseTime(0) != time.Hour || !off.ServerIdentifier().Equal(server.AsSlice()) {
		t.Errorf("offer options %s", off.Summary())
	}
	if rai := off.RelayAgentInfo(); rai == nil || string(rai.Get(dhcpv4.AgentCircuitIDSubOption)) != "swp2" || string(rai.Get(dhcpv4.AgentRemoteIDSubOption)) != "p1-tor1" {
		t.Errorf("option 82 not echoed: %v", rai)
	}
	if !strings.HasPrefix(off.BootFileName, "http://10.77.250.1:8080/boot/") || !strings.HasSuffix(off.BootFileName, ".ipxe") {
		t.Errorf("iPXE boot file %q", off.BootFileName)
	}
	if v := off.GetOneOption(ipxeEncapsulated); string(v) != "\xb0\x01\x01" {
		t.Errorf("option 175 = %q, want 176=1", v)
	}

	req, _ := dhcpv4.NewRequestFromOffer(off, relayed(relay1, "swp2", "p1-tor1"), dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE")))
	rep, err = handle(t, h, req)
	if err != nil || rep.Packet.MessageType() != dhcpv4.MessageTypeAck || !rep.Packet.YourIPAddr.Equal(net.IPv4(10, 77, 0, 12)) {
		t.Fatalf("ack: %v %v", err, rep)
	}
	if rep.Packet.BootFileName != off.BootFileName {
		t.Errorf("ack boot file %q differs from offer %q", rep.Packet.BootFileName, off.BootFileName)
	}
	for name, want := range map[string]int64{"rx_DISCOVER": 1, "rx_REQUEST": 1, "tx_OFFER": 1, "tx_ACK": 1,
		"relay|p1-tor1|OFFER": 1, "relay|p1-tor1|ACK": 1} {
		if got := h.Stats.Get(name); got != want {
			t.Errorf("counter %s = %d, want %d", name, got, want)
		}
	}
	m, ok := fl.Machine(mac.String())
	if !ok || m.Name != "lab-compute-02" || m.State != "deploying" {
		t.Fatalf("machine %+v", m)
	}
	// The timeline names the boot script without its ticket (a credential) and without a placeholder.
	waitFor(t, func() bool {
		tl, _ := st.Timeline(context.Background(), m.ID, 0, 0)
		for _, e := range tl {
			if e.Kind == machine.KindDHCPAck {
				if !strings.Contains(e.Reason, "boot file its iPXE script") || strings.Contains(e.Reason, "TICKET") || strings.Contains(e.Reason, "/boot/") {
					t.Fatalf("ack entry %q", e.Reason)
				}
				return true
			}
		}
		return false
	})
	// Renewing: unicast from the client's address, through the relay.
	renew, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), relayed(relay1, "swp2", ""))
	renew.ClientIPAddr = net.IPv4(10, 77, 0, 12)
	if rep, err = handle(t, h, renew); err != nil || rep.Packet.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("renew: %v %v", err, rep)
	}
	// Init-reboot asking for someone else's address: NAK, broadcast through the relay.
	reboot, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), relayed(relay1, "swp2", ""),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 11))))
	rep, err = handle(t, h, reboot)
	if err != nil || rep.Packet.MessageType() != dhcpv4.MessageTypeNak || !rep.Packet.IsBroadcast() || !strings.Contains(rep.Packet.Message(), "address is 10.77.0.12") {
		t.Fatalf("init-reboot with a wrong address: %v %v", err, rep)
	}
	// A REQUEST for another server's offer is not ours to answer.
	other, _ := dhcpv4.NewRequestFromOffer(off, relayed(relay1, "swp2", ""))
	other.UpdateOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 9, 9, 9)))
	if rep, _ := handle(t, h, other); rep != nil {
		t.Errorf("answered a request for another server: %v", rep.Packet.Summary())
	}
	// INFORM gets configuration and no address.
	inform, _ := dhcpv4.NewInform(mac, net.IPv4(10, 77, 0, 12), relayed(relay1, "swp2", ""))
	rep, err = handle(t, h, inform)
	if err != nil || rep.Packet.MessageType() != dhcpv4.MessageTypeAck || !rep.Packet.YourIPAddr.Equal(net.IPv4zero) || rep.Packet.IPAddressLeaseTime(0) != 0 || rep.Packet.HostName() != "lab-compute-02" {
		t.Fatalf("inform: %v %v", err, rep)
	}
	// DECLINE marks the address and the machine's timeline says so.
	decline, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 12))), relayed(relay1, "swp2", ""))
	if rep, err := handle(t, h, decline); rep != nil || err != nil {
		t.Fatalf("decline answered: %v %v", rep, err)
	}
	if rep, _ := handle(t, h, disc); rep != nil {
		t.Errorf("declined address offered again: %s", rep.Packet.Summary())
	}
	fl.Tick()
	waitFor(t, func() bool {
		tl, _ := st.Timeline(context.Background(), m.ID, 0, 0)
		return hasKind(tl, "address-declined")
	})
}

func hasKind(tl []machine.Entry, kind machine.Kind) bool {
	for _, e := range tl {
		if e.Kind == kind {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met")
}

func TestIdentityRules(t *testing.T) {
	fl, _ := testFleet(t)
	h := &Handler{Leases: fl, HTTPPort: 8080, Stats: &counter.Set{}}
	tests := []struct {
		name    string
		mac     string
		mods    []dhcpv4.Modifier
		want    string // yiaddr, or "" for no reply
		state   string // machine state afterwards, "" for no record
		replyTo string
	}{
		{"per-port relay (ISC dhcrelay style)", "52:54:00:aa:00:02", []dhcpv4.Modifier{relayed(relay2, "swp2", "")}, "10.77.100.10", "deploying", "10.77.100.9:67"},
		{"undefined port on a per-port switch", "52:54:00:aa:00:03", []dhcpv4.Modifier{relayed(net.IPv4(10, 77, 100, 33), "swp5", "")}, "10.77.100.34", "discovered", "10.77.100.33:67"},
		{"undefined port on a pod switch: discovery pool", "52:54:00:aa:00:04", []dhcpv4.Modifier{relayed(relay1, "swp7", "p1-tor1")}, "10.77.0.200", "discovered", "10.77.0.1:67"},
		{"direct client forging option 82", "52:54:00:aa:00:05", []dhcpv4.Modifier{relayed(nil, "swp1", "p1-tor1")}, "", "discovered", ""},
		{"unknown relay", "52:54:00:aa:00:06", []dhcpv4.Modifier{relayed(stranger, "swp1", "")}, "", "discovered", ""},
		{"MAC pin without option 82", "52:54:00:77:00:01", nil, "10.77.0.3", "deploying", "255.255.255.255:68"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := dhcpv4.NewDiscovery(mustMAC(tt.mac), tt.mods...)
			if req.GatewayIPAddr == nil {
				req.GatewayIPAddr = net.IPv4zero
			}
			rep, err := handle(t, h, req)
			if tt.want == "" {
				if rep != nil {
					t.Fatalf("answered with %s", rep.Packet.Summary())
				}
			} else {
				if err != nil || rep == nil {
					t.Fatalf("no offer: %v", err)
				}
				if got := rep.Packet.YourIPAddr.String(); got != tt.want || rep.To.String() != tt.replyTo {
					t.Fatalf("offered %s to %s, want %s to %s", got, rep.To, tt.want, tt.replyTo)
				}
			}
			m, ok := fl.Machine(tt.mac)
			if tt.state == "" && ok || tt.state != "" && string(m.State) != tt.state {
				t.Errorf("machine state %q, want %q", m.State, tt.state)
			}
		})
	}
	// Offers are counted by the switch that relayed them, however many
	// per-port addresses it relays from.
	want := map[string]int64{"relay|p1-tor2|OFFER": 2, "relay|p1-tor1|OFFER": 1}
	for k, v := range h.Stats.Snapshot() {
		if strings.HasPrefix(k, "relay|") && want[k] != v {
			t.Errorf("counter %s = %d, want %d", k, v, want[k])
		}
		delete(want, k)
	}
	if len(want) > 0 {
		t.Errorf("counters missing: %v", want)
	}
}

func TestMalformedPacketsAreDropped(t *testing.T) {
	h := &Handler{Leases: fakeLeaser{}, HTTPPort: 8080, Stats: &counter.Set{}}
	notReq, _ := dhcpv4.NewDiscovery(mustMAC("02:00:00:00:00:01"))
	notReq.OpCode = dhcpv4.OpcodeBootReply
	noType, _ := dhcpv4.New(dhcpv4.WithHwAddr(mustMAC("02:00:00:00:00:01")))
	for _, req := range []*dhcpv4.DHCPv4{notReq, noType} {
		if rep, err := handle(t, h, req); rep != nil || err == nil {
			t.Errorf("answered %v %v", rep, err)
		}
	}
}

// fakeLeaser answers every client with one address: the handler's encoding
// and routing are what the fuzz target exercises, not the fleet.
type fakeLeaser struct{}

func (fakeLeaser) Offer(_ context.Context, r fleet.Request) (fleet.Assignment, error) {
	return fleet.Assignment{Addr: netip.MustParseAddr("10.0.0.5"), Prefix: netip.MustParsePrefix("10.0.0.0/24"), LeaseTime: time.Hour, Ticket: "t"}, nil
}
func (f fakeLeaser) Ack(ctx context.Context, r fleet.Request) (fleet.Assignment, error) {
	if r.Requested != netip.MustParseAddr("10.0.0.5") {
		return fleet.Assignment{}, &fleet.Refusal{Reason: "wrong address"}
	}
	return f.Offer(ctx, r)
}
func (f fakeLeaser) Inform(r fleet.Request) (fleet.Assignment, error) {
	return f.Offer(context.Background(), r)
}
func (fakeLeaser) Release(string, netip.Addr) {}
func (fakeLeaser) Decline(string, netip.Addr) {}

func FuzzHandle(f *testing.F) {
	mac := mustMAC("52:54:00:aa:00:01")
	disc, _ := dhcpv4.NewDiscovery(mac, relayed(relay1, "swp2", "p1-tor1"), dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE")))
	f.Add(disc.ToBytes())
	req, _ := dhcpv4.NewRequestFromOffer(disc)
	f.Add(req.ToBytes())
	inform, _ := dhcpv4.NewInform(mac, net.IPv4(10, 0, 0, 5))
	f.Add(inform.ToBytes())
	f.Add([]byte{1, 1, 6, 0})
	h := &Handler{Leases: fakeLeaser{}, HTTPPort: 8080, Stats: &counter.Set{}}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		rep, err := h.Handle(context.Background(), req, Inbound{Server: server})
		if err != nil || rep == nil {
			return
		}
		out := rep.Packet.ToBytes()
		back, err := dhcpv4.FromBytes(out)
		if err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if back.OpCode != dhcpv4.OpcodeBootReply || back.TransactionID != req.TransactionID {
			t.Fatalf("reply %s does not answer %s", back.Summary(), req.Summary())
		}
	})
}
