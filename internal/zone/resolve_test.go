package zone

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

func baseIndex(t *testing.T) *Index {
	t.Helper()
	d, ps := parseText(t, readBase(t))
	if ps != nil {
		t.Fatal(ps)
	}
	return NewIndex(d)
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestResolve(t *testing.T) {
	ix := baseIndex(t)
	a := netip.MustParseAddr
	tests := []struct {
		name       string
		q          Query
		wantName   string // "" when unknown
		wantPerm   string
		wantAddr   string
		wantBMC    string
		wantVia    string
		wantReason string // substring, when unknown
		wantPort   string
	}{
		{name: "relay address and circuit-id", q: Query{Relay: a("10.10.0.4"), HasOption82: true, CircuitID: "swp3"},
			wantName: "bgo-compute-03", wantPerm: "bgo-compute-03", wantAddr: "10.10.0.13", wantBMC: "10.11.0.13", wantVia: ViaLocation, wantPort: "swp3"},
		{name: "variant name and permanent name", q: Query{Relay: a("10.10.0.4"), HasOption82: true, CircuitID: "swp21"},
			wantName: "bgo-compute-lvm-21", wantPerm: "bgo-compute-21", wantAddr: "10.10.0.31", wantBMC: "10.11.0.31", wantVia: ViaLocation, wantPort: "swp21"},
		{name: "remote-id with the switch's relay", q: Query{Relay: a("10.10.0.4"), HasOption82: true, RemoteID: "p1-tor1", CircuitID: "swp30"},
			wantName: "bgo-storage-06", wantPerm: "bgo-storage-06", wantAddr: "10.10.0.206", wantBMC: "10.11.0.206", wantVia: ViaLocation, wantPort: "swp30"},
		{name: "per-port relay address names the port", q: Query{Relay: a("10.99.0.9"), HasOption82: true, CircuitID: "swp2"},
			wantName: "bgo-storage-02", wantPerm: "bgo-storage-02", wantAddr: "10.99.0.10", wantBMC: "10.11.0.202", wantVia: ViaLocation, wantPort: "swp2"},
		{name: "per-port relay without circuit-id", q: Query{Relay: a("10.99.0.1")},
			wantName: "bgo-storage-01", wantPerm: "bgo-storage-01", wantAddr: "10.99.0.2", wantBMC: "10.11.0.201", wantVia: ViaLocation, wantPort: "swp1"},
		{name: "MAC pin", q: Query{MAC: mac("52:54:00:00:00:01")},
			wantName: "bgo-mgmt-01", wantPerm: "bgo-mgmt-01", wantAddr: "10.10.0.3", wantBMC: "10.11.0.3", wantVia: ViaPin},
		{name: "MAC pin wins over a location", q: Query{Relay: a("10.10.0.4"), HasOption82: true, CircuitID: "swp3", MAC: mac("52:54:00:00:00:01")},
			wantName: "bgo-mgmt-01", wantPerm: "bgo-mgmt-01", wantAddr: "10.10.0.3", wantBMC: "10.11.0.3", wantVia: ViaPin},
		{name: "port without a slot", q: Query{Relay: a("10.10.0.4"), HasOption82: true, CircuitID: "swp40"},
			wantReason: "port swp40 of switch p1-tor1 has no slot", wantPort: "swp40"},
		{name: "direct client forging option 82", q: Query{HasOption82: true, CircuitID: "swp3", RemoteID: "p1-tor1", MAC: mac("02:00:00:00:00:09")},
			wantReason: "option 82 from a direct client is ignored"},
		{name: "unknown relay", q: Query{Relay: a("192.0.2.1"), HasOption82: true, CircuitID: "swp3"},
			wantReason: "relay 192.0.2.1 is not a configured relay"},
		{name: "unknown relay claiming a known remote-id", q: Query{Relay: a("192.0.2.1"), HasOption82: true, RemoteID: "p1-tor1", CircuitID: "swp3"},
			wantReason: "relay 192.0.2.1 is not the configured relay 10.10.0.4 of switch p1-tor1"},
		{name: "remote-id disagreeing with relay", q: Query{Relay: a("10.99.0.1"), HasOption82: true, RemoteID: "p1-tor1", CircuitID: "swp1"},
			wantReason: "remote-id \"p1-tor1\" names switch p1-tor1 but relay 10.99.0.1 belongs to p1-tor2"},
		{name: "circuit-id disagreeing with per-port relay", q: Query{Relay: a("10.99.0.1"), HasOption82: true, CircuitID: "swp2"},
			wantReason: "circuit-id \"swp2\" disagrees with relay address 10.99.0.1", wantPort: "swp1"},
		{name: "relay without circuit-id", q: Query{Relay: a("10.10.0.4"), HasOption82: true},
			wantReason: "switch p1-tor1 relayed no circuit-id"},
		{name: "direct client, no pin", q: Query{MAC: mac("02:00:00:00:00:09")},
			wantReason: "direct client with no MAC pin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := ix.Resolve(tt.q)
			if tt.wantName == "" {
				if id.Known() {
					t.Fatalf("resolved to %s, want unknown", id.Slot.Name)
				}
				if !strings.Contains(id.Reason, tt.wantReason) {
					t.Errorf("reason %q, want it to contain %q", id.Reason, tt.wantReason)
				}
				if id.Port != tt.wantPort {
					t.Errorf("port %q, want %q", id.Port, tt.wantPort)
				}
				return
			}
			if !id.Known() {
				t.Fatalf("unknown (%s), want %s", id.Reason, tt.wantName)
			}
			s := id.Slot
			if id.Zone == nil || id.Zone.Name != s.Zone {
				t.Errorf("identity carries zone %v, want %s", id.Zone, s.Zone)
			}
			got := []string{s.Name, s.PermanentName, s.Address.String(), s.BMCAddress.String(), id.Via, id.Port, s.Zone, s.Pod}
			want := []string{tt.wantName, tt.wantPerm, tt.wantAddr, tt.wantBMC, tt.wantVia, tt.wantPort, "bgo", "p1"}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("got %v, want %v", got, want)
					break
				}
			}
		})
	}
}

func TestUnknownPolicy(t *testing.T) {
	ix := baseIndex(t)
	if p := ix.UnknownPolicy(ix.Resolve(Query{Relay: netip.MustParseAddr("10.10.0.4"), CircuitID: "swp47"})); p != "discover" {
		t.Errorf("policy %q, want discover (the zone's default)", p)
	}
	d, ps := parseText(t, strings.Replace(readBase(t), "dns_servers:", "unknown_machines: ignore\ndns_servers:", 1))
	if ps != nil {
		t.Fatal(ps)
	}
	ix = NewIndex(d)
	for _, q := range []Query{{Relay: netip.MustParseAddr("10.10.0.4"), CircuitID: "swp47"}, {MAC: mac("02:00:00:00:00:01")}} {
		if p := ix.UnknownPolicy(ix.Resolve(q)); p != "ignore" {
			t.Errorf("policy for %+v = %q, want ignore", q, p)
		}
	}
}

func TestNaming(t *testing.T) {
	tests := []struct {
		name, naming string
		key          string
		wantName     string
		wantPerm     string
	}{
		{"default", "", "p1-tor1/swp7", "bgo-compute-07", "bgo-compute-07"},
		{"default with variant", "", "p1-tor1/swp22", "bgo-compute-lvm-22", "bgo-compute-22"},
		{"three digits", "naming: {id_digits: 3}\n", "p1-tor1/swp7", "bgo-compute-007", "bgo-compute-007"},
		{"template", "naming: {template: \"{{.Role}}{{with .Variant}}-{{.}}{{end}}-{{.ID}}-{{.Zone}}\"}\n", "p1-tor1/swp22", "compute-lvm-22-bgo", "compute-22-bgo"},
		{"template with location", "naming: {template: \"{{.Zone}}-{{.Pod}}-{{.Role}}{{.Num}}\"}\n", "p1-tor1/swp7", "bgo-p1-compute7", "bgo-p1-compute7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ps := parseText(t, strings.Replace(readBase(t), "dns_servers:", tt.naming+"dns_servers:", 1))
			if ps != nil {
				t.Fatal(ps)
			}
			s := NewIndex(d).Slot(tt.key)
			if s == nil {
				t.Fatalf("no slot %s", tt.key)
			}
			if s.Name != tt.wantName || s.PermanentName != tt.wantPerm {
				t.Errorf("names %q/%q, want %q/%q", s.Name, s.PermanentName, tt.wantName, tt.wantPerm)
			}
			if s.FQDN() != tt.wantPerm+".bgo.example.org" {
				t.Errorf("fqdn %q", s.FQDN())
			}
		})
	}
}

func TestAddressing(t *testing.T) {
	tests := []struct {
		name   string
		edit   [2]string
		key    string
		wantNs string // network=address,...
	}{
		{"zone offset", [2]string{}, "p1-tor1/swp1", "boot=10.10.0.11/24,bmc=10.11.0.11/24"},
		{"pod rule with first id", [2]string{"    switches:\n      p1-tor1:", "    addressing:\n      compute: {offset: 100, first_id: 5}\n    switches:\n      p1-tor1:"},
			"p1-tor1/swp5", "boot=10.10.0.101/24,bmc=10.11.0.101/24"},
		{"extra network", [2]string{"      bmc: {subnet", "      storage: {subnet: 10.12.0.0/24}\n      bmc: {subnet"},
			"p1-tor1/swp2", "boot=10.10.0.12/24,storage=10.12.0.12/24,bmc=10.11.0.12/24"},
		{"per-port boot, pod rule elsewhere", [2]string{}, "p1-tor2/swp2", "boot=10.99.0.10/29,bmc=10.11.0.202/24"},
		{"override", [2]string{"pins:", "overrides:\n  bgo-compute-02: {boot: 10.10.0.250, bmc: 10.11.0.250}\npins:"},
			"p1-tor1/swp2", "boot=10.10.0.250/24,bmc=10.11.0.250/24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := readBase(t)
			if tt.edit[0] != "" {
				text = strings.Replace(text, tt.edit[0], tt.edit[1], 1)
			}
			d, ps := parseText(t, text)
			if ps != nil {
				t.Fatal(ps)
			}
			s := NewIndex(d).Slot(tt.key)
			var parts []string
			for _, n := range s.Networks {
				parts = append(parts, n.Network+"="+n.Address.String())
			}
			if got := strings.Join(parts, ","); got != tt.wantNs {
				t.Errorf("networks %s, want %s", got, tt.wantNs)
			}
		})
	}
}

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"swp1-swp3", "swp1,swp2,swp3", false},
		{"swp7-9", "swp7,swp8,swp9", false},
		{"Ethernet1/11-Ethernet1/12", "Ethernet1/11,Ethernet1/12", false},
		{"ge-0/0/1-ge-0/0/2", "ge-0/0/1,ge-0/0/2", false},
		{"ge-0/0/1", "ge-0/0/1", false},
		{"eth08-eth10", "eth08,eth09,eth10", false},
		{"swp5", "swp5", false},
		{"swp3-swp1", "", true},
		{"", "", true},
		{"swp1 swp2", "", true},
		{"swp1-swp99999", "", true},
	}
	for _, tt := range tests {
		got, err := ParsePortRange(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParsePortRange(%q) error %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if strings.Join(got, ",") != tt.want {
			t.Errorf("ParsePortRange(%q) = %v, want %s", tt.in, got, tt.want)
		}
	}
}

func TestDiff(t *testing.T) {
	d, ps := parseText(t, readBase(t))
	if ps != nil {
		t.Fatal(ps)
	}
	text := strings.NewReplacer(
		"{ports: swp30, role: storage, ids: 6}", "{ports: swp30, role: compute, ids: 30}",
		"compute: 10", "compute: 11",
		"{ports: swp1-swp2, role: storage, ids: 1-2}", "{ports: swp1, role: storage, ids: 1}",
	).Replace(readBase(t))
	text = strings.Replace(text, "ports: [swp1-swp48]\n        slots:\n", "ports: [swp1-swp48]\n        slots:\n          - {ports: swp40, role: storage, ids: 40}\n", 1)
	next, ps := parseText(t, text)
	if ps != nil {
		t.Fatal(ps)
	}
	if p := Diff(d.Slots, d.Slots); !p.Empty() {
		t.Fatalf("diff of a design with itself: %+v", p)
	}
	p := Diff(d.Slots, next.Slots)
	if len(p.Added) != 1 || p.Added[0].Key != "p1-tor1/swp40" {
		t.Errorf("added %v", p.Added)
	}
	if len(p.Removed) != 1 || p.Removed[0].Key != "p1-tor2/swp2" {
		t.Errorf("removed %v", p.Removed)
	}
	reinstall := 0
	for _, c := range p.Changed {
		if c.Reinstall {
			reinstall++
			if c.Key != "p1-tor1/swp30" {
				t.Errorf("reinstall for %s", c.Key)
			}
		}
	}
	// 22 compute slots move by one address; swp30 changes role (and so name and address).
	if len(p.Changed) != 23 || reinstall != 1 {
		t.Errorf("changed %d (reinstall %d), want 23 (1)", len(p.Changed), reinstall)
	}
	var b strings.Builder
	p.Write(&b)
	for _, want := range []string{"zone bgo, pod p1:", "  + bgo-storage-40", "  - bgo-storage-02", "  ! bgo-compute-30", "role storage -> compute", "(reinstall)", "Plan: 1 to add, 23 to change (1 need reinstall), 1 to remove."} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("plan output lacks %q:\n%s", want, b.String())
		}
	}
}

func TestNaturalLess(t *testing.T) {
	ordered := []string{"Ethernet1/2", "Ethernet1/10", "Ethernet2/1", "ge-0/0/2", "ge-0/0/10", "p1-tor1/swp1", "p1-tor1/swp2", "p1-tor1/swp10", "p1-tor2/swp1", "p2", "p10", "swp", "swp01", "swp1", "swp2"}
	for i := range ordered {
		for j := range ordered {
			if got, want := NaturalLess(ordered[i], ordered[j]), i < j; got != want {
				t.Errorf("NaturalLess(%q, %q) = %v, want %v", ordered[i], ordered[j], got, want)
			}
		}
	}
}

// TestResolveBMC: a request through a lom switch is a BMC: it resolves to the
// host slot its port serves, never to a host identity of its own.
func TestResolveBMC(t *testing.T) {
	text := strings.Replace(readBase(t), "      p1-tor2:", `      p1-lom1:
        kind: lom
        relay: 10.11.0.2
        remote_id: p1-lom1
        ports: [swp1-swp48]
        slots:
          - {ports: swp1-swp2, bmc_of: compute, ids: 1-2}
          - {ports: swp3, bmc_of: storage, ids: 6}
      p1-tor2:`, 1)
	d, ps := parseText(t, text)
	if ps != nil {
		t.Fatal(ps)
	}
	ix := NewIndex(d)
	a := netip.MustParseAddr
	tests := []struct {
		name       string
		q          Query
		wantHost   string // "" for a BMC on a port that serves no host
		wantReason string
	}{
		{"lom port names a host", Query{Relay: a("10.11.0.2"), HasOption82: true, CircuitID: "swp2"}, "bgo-compute-02", ""},
		{"by remote-id", Query{Relay: a("10.11.0.2"), HasOption82: true, RemoteID: "p1-lom1", CircuitID: "swp3"}, "bgo-storage-06", ""},
		{"undefined lom port", Query{Relay: a("10.11.0.2"), HasOption82: true, CircuitID: "swp9"}, "", "port swp9 of lom switch p1-lom1 serves no host"},
		{"no circuit-id", Query{Relay: a("10.11.0.2"), HasOption82: true}, "", "relayed no circuit-id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := ix.Resolve(tt.q)
			if id.Known() || !id.BMC {
				t.Fatalf("identity %+v: want a BMC and no host slot", id)
			}
			if tt.wantHost == "" {
				if id.BMCOf != nil || !strings.Contains(id.Reason, tt.wantReason) {
					t.Fatalf("BMC of %v (%s), want none: %s", id.BMCOf, id.Reason, tt.wantReason)
				}
				return
			}
			if id.BMCOf == nil || id.BMCOf.Name != tt.wantHost || id.BMCOf.BMCPort == "" {
				t.Fatalf("BMC of %+v, want %s", id.BMCOf, tt.wantHost)
			}
			n, ok := ix.BMCNetwork(id.BMCOf)
			if !ok || n.Prefix.String() != "10.11.0.0/24" || n.Gateway.String() != "10.11.0.1" || n.Sessions != DefaultBMCSessions || n.Key != "bgo/p1" {
				t.Fatalf("BMC network %+v", n)
			}
		})
	}
	if s := ix.Slot("p1-tor1/swp1"); s.BMCPort != "p1-lom1/swp1" {
		t.Errorf("bgo-compute-01's BMC port %q", s.BMCPort)
	}
}

func TestSwitchPod(t *testing.T) {
	ix := baseIndex(t)
	for _, z := range ix.Design().Zones {
		for _, p := range z.Pods {
			for _, sw := range p.Switches {
				if got, ok := ix.SwitchPod(sw.Name); !ok || got != z.Name+"/"+p.Name {
					t.Errorf("%s: %q %v, want %s/%s", sw.Name, got, ok, z.Name, p.Name)
				}
			}
		}
	}
	if _, ok := ix.SwitchPod("no-such-switch"); ok {
		t.Error("an unknown switch has a pod")
	}
}
