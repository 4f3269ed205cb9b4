package zone

import (
	"fmt"
	"net"
	"net/netip"
)

// Query is what a DHCP request says about where it comes from.
type Query struct {
	Relay       netip.Addr // giaddr; invalid for a direct client
	HasOption82 bool
	CircuitID   string
	RemoteID    string
	MAC         net.HardwareAddr
	// ZTP: the client says it is a switch's ZTP client, so an unmapped lom
	// port is not presumed to hold a BMC.
	ZTP bool
}

// How an identity was established.
const (
	ViaLocation = "location" // trusted option 82 (or a per-port relay address)
	ViaPin      = "pin"      // a MAC pin
)

// Identity is the answer to "who is this machine?".
type Identity struct {
	Slot   *Slot  // nil when unknown
	Via    string // ViaLocation or ViaPin when known
	Zone   *Zone  // the zone the request came from (always set with Slot), with its settings
	Switch string // the location as reported, even when it has no slot
	Port   string
	Reason string // why the machine is unknown
	// BMC is set when the request came through a lom switch: the client is a
	// BMC, never a host, and BMCOf is the host slot whose BMC it is (nil on a
	// lom port the design does not map).
	BMC   bool
	BMCOf *Slot
}

// Known reports whether the machine has a slot.
func (id Identity) Known() bool { return id.Slot != nil }

type relayEntry struct {
	sw   *Switch
	port string // set for per-port switches: the relay address names the port
}

// Index resolves identities against one design. It is read-only after
// NewIndex and safe for concurrent use.
type Index struct {
	design    *Design
	relays    map[netip.Addr]relayEntry
	remoteIDs map[string]*Switch
	switches  map[string]*Switch
	podOf     map[string]string // switch name -> "zone/pod"
	slots     map[string]*Slot  // by key; a port slot's key is switch/port
	bmcPorts  map[string]*Slot  // lom switch/port -> the host slot whose BMC it serves
	zones     map[string]*Zone
	macs      map[string]*Slot
	ignoreAll bool // every zone ignores unknown machines
}

// NewIndex builds the lookup tables for a validated design.
func NewIndex(d *Design) *Index {
	ix := &Index{
		design:    d,
		relays:    map[netip.Addr]relayEntry{},
		remoteIDs: map[string]*Switch{},
		switches:  map[string]*Switch{},
		podOf:     map[string]string{},
		slots:     make(map[string]*Slot, len(d.Slots)),
		macs:      map[string]*Slot{},
		bmcPorts:  map[string]*Slot{},
		zones:     make(map[string]*Zone, len(d.Zones)),
		ignoreAll: len(d.Zones) > 0,
	}
	for _, z := range d.Zones {
		ix.zones[z.Name] = z
		if z.UnknownMachines != UnknownIgnore {
			ix.ignoreAll = false
		}
		for _, p := range z.Pods {
			for _, sw := range p.Switches {
				ix.switches[sw.Name] = sw
				ix.podOf[sw.Name] = z.Name + "/" + p.Name
				if sw.relay.IsValid() {
					ix.relays[sw.relay] = relayEntry{sw: sw}
				}
				if sw.RemoteID != "" {
					ix.remoteIDs[sw.RemoteID] = sw
				}
				if sw.BootNetwork == ShapePerPort {
					for _, port := range sw.ports {
						_, gw, _ := sw.PortSubnet(port)
						if gw.IsValid() {
							ix.relays[gw] = relayEntry{sw: sw, port: port}
						}
					}
				}
			}
		}
	}
	for _, s := range d.Slots {
		ix.slots[s.Key] = s
		if s.MAC != "" {
			ix.macs[s.MAC] = s
		}
		if s.BMCPort != "" {
			ix.bmcPorts[s.BMCPort] = s
		}
	}
	return ix
}

// Design is the design the index was built from.
func (ix *Index) Design() *Design { return ix.design }

// TrustedRelay reports whether addr is a configured relay address.
func (ix *Index) TrustedRelay(addr netip.Addr) bool {
	_, ok := ix.relays[addr]
	return ok
}

// Slot returns the slot with the given key.
func (ix *Index) Slot(key string) *Slot { return ix.slots[key] }

// PodKey is the "zone/pod" the slot belongs to: the unit that servers
// sharing a database divide among themselves.
func (s *Slot) PodKey() string { return s.Zone + "/" + s.Pod }

// SwitchPod is the "zone/pod" a switch of the design belongs to.
func (ix *Index) SwitchPod(name string) (string, bool) {
	p, ok := ix.podOf[name]
	return p, ok
}

// Zone returns the zone with the given name, or nil.
func (ix *Index) Zone(name string) *Zone { return ix.zones[name] }

// Resolve finds the slot a request comes from. A MAC pin wins; otherwise option 82
// counts only when the relay address (giaddr) is a configured relay, so that a
// direct client or an unknown relay cannot claim a location.
func (ix *Index) Resolve(q Query) Identity {
	if len(q.MAC) > 0 {
		if s := ix.macs[q.MAC.String()]; s != nil {
			return Identity{Slot: s, Via: ViaPin, Zone: ix.zones[s.Zone]}
		}
	}
	if !q.Relay.IsValid() || q.Relay.IsUnspecified() {
		if q.HasOption82 {
			return Identity{Reason: "option 82 from a direct client is ignored: only configured relays can name a location"}
		}
		return Identity{Reason: "direct client with no MAC pin"}
	}
	entry, trusted := ix.relays[q.Relay]
	sw := entry.sw
	if q.RemoteID != "" {
		if byRID := ix.remoteIDs[q.RemoteID]; byRID != nil {
			switch {
			case sw != nil && sw != byRID:
				return Identity{Zone: sw.zone, Reason: fmt.Sprintf("remote-id %q names switch %s but relay %s belongs to %s", q.RemoteID, byRID.Name, q.Relay, sw.Name)}
			case !trusted && byRID.relay.IsValid():
				return Identity{Zone: byRID.zone, Reason: fmt.Sprintf("relay %s is not the configured relay %s of switch %s", q.Relay, byRID.relay, byRID.Name)}
			case !trusted && !podContains(byRID.pod, "boot", q.Relay) && !(byRID.Kind == "lom" && podContains(byRID.pod, "bmc", q.Relay)):
				return Identity{Zone: byRID.zone, Reason: fmt.Sprintf("relay %s is outside the networks switch %s relays from", q.Relay, byRID.Name)}
			}
			sw, trusted = byRID, true
		}
	}
	if !trusted {
		return Identity{Reason: fmt.Sprintf("relay %s is not a configured relay; its option 82 is ignored", q.Relay)}
	}
	port := q.CircuitID
	if entry.port != "" {
		if q.CircuitID != "" && q.CircuitID != entry.port {
			return Identity{Zone: sw.zone, Switch: sw.Name, Port: entry.port,
				Reason: fmt.Sprintf("circuit-id %q disagrees with relay address %s, which is port %s of %s", q.CircuitID, q.Relay, entry.port, sw.Name)}
		}
		port = entry.port
	}
	if port == "" {
		return Identity{Zone: sw.zone, Switch: sw.Name, BMC: sw.Kind == "lom", Reason: fmt.Sprintf("switch %s relayed no circuit-id", sw.Name)}
	}
	if host := ix.bmcPorts[sw.Name+"/"+port]; host != nil {
		return Identity{Zone: sw.zone, Switch: sw.Name, Port: port, BMC: true, BMCOf: host, Via: ViaLocation, Reason: "the BMC of " + host.Name}
	}
	s := ix.slots[sw.Name+"/"+port]
	if s == nil && sw.Kind == "lom" && !q.ZTP {
		// An unmapped lom port is presumed a BMC: recorded, never given an address.
		return Identity{Zone: sw.zone, Switch: sw.Name, Port: port, BMC: true, Reason: fmt.Sprintf("port %s of lom switch %s serves no host in the design", port, sw.Name)}
	}
	if s == nil {
		return Identity{Zone: sw.zone, Switch: sw.Name, Port: port, Reason: fmt.Sprintf("port %s of switch %s has no slot in the design", port, sw.Name)}
	}
	return Identity{Slot: s, Via: ViaLocation, Zone: sw.zone, Switch: sw.Name, Port: port}
}

func podContains(p *Pod, network string, a netip.Addr) bool {
	n := podNetwork(p, network)
	return n != nil && n.prefix.Contains(a)
}

// BMCNetwork is the bmc network of a slot's pod: its subnet, gateway and the
// bound on BMC sessions at once on it.
type BMCNetwork struct {
	Key      string // zone/pod: what the session bound is counted by
	Prefix   netip.Prefix
	Gateway  netip.Addr
	Sessions int
}

// BMCNetwork returns the bmc network of slot s's pod, or false when it has none.
func (ix *Index) BMCNetwork(s *Slot) (BMCNetwork, bool) {
	z := ix.zones[s.Zone]
	if z == nil {
		return BMCNetwork{}, false
	}
	for _, p := range z.Pods {
		if p.Name != s.Pod {
			continue
		}
		n := podNetwork(p, "bmc")
		if n == nil || !n.prefix.IsValid() {
			return BMCNetwork{}, false
		}
		sessions := n.Sessions
		if sessions < 1 {
			sessions = DefaultBMCSessions
		}
		return BMCNetwork{Key: z.Name + "/" + p.Name, Prefix: n.prefix, Gateway: n.gateway, Sessions: sessions}, true
	}
	return BMCNetwork{}, false
}

// UnknownPolicy is what to do with a machine that has no slot.
func (ix *Index) UnknownPolicy(id Identity) UnknownPolicy {
	if id.Zone != nil {
		return id.Zone.UnknownMachines
	}
	if ix.ignoreAll {
		return UnknownIgnore
	}
	return UnknownDiscover
}

// DiscoveryLease is where an unknown machine may get an address: the host
// address of its port on a per-port switch, or its pod's discovery pool.
type DiscoveryLease struct {
	Prefix  netip.Prefix
	Gateway netip.Addr
	Fixed   netip.Addr // set for a per-port switch's port
	First   netip.Addr // pool range, when Fixed is not set
	Last    netip.Addr
	Zone    *Zone
}

// Discovery returns the network an unknown machine at id's location boots on,
// or false when its location gives no usable network.
func (ix *Index) Discovery(id Identity) (DiscoveryLease, bool) {
	sw := ix.switches[id.Switch]
	if sw == nil {
		return DiscoveryLease{}, false
	}
	if sw.BootNetwork == ShapePerPort {
		pfx, gw, host := sw.PortSubnet(id.Port)
		if !pfx.IsValid() {
			return DiscoveryLease{}, false
		}
		return DiscoveryLease{Prefix: pfx, Gateway: gw, Fixed: host, Zone: sw.zone}, true
	}
	for _, n := range sw.pod.Networks {
		if n.Name == "boot" && n.pool[0].IsValid() {
			return DiscoveryLease{Prefix: n.prefix, Gateway: n.gateway, First: n.pool[0], Last: n.pool[1], Zone: sw.zone}, true
		}
	}
	return DiscoveryLease{}, false
}
