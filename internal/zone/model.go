// Package zone is the design of a zone: the file format, its validation with
// file:line:column errors, and the rules that turn a switch port into a slot
// with a name and addresses.
package zone

import (
	"net/netip"
	"reflect"
	"text/template"

	"gopkg.in/yaml.v3"
)

// Zone is one design file: one location run as a unit.
type Zone struct {
	Meta            Meta
	Name            string              `yaml:"zone"`
	Environment     string              `yaml:"environment"`
	Domain          string              `yaml:"domain"`
	DNSServers      []string            `yaml:"dns_servers"`
	SSHKeys         []string            `yaml:"ssh_keys"`
	LeaseTime       string              `yaml:"lease_time"`
	Naming          Naming              `yaml:"naming"`
	UnknownMachines UnknownPolicy       `yaml:"unknown_machines"`
	OnReplace       ReplacePolicy       `yaml:"on_replace"`
	Power           PowerDriver         `yaml:"power"`
	Timeouts        Timeouts            `yaml:"timeouts"`
	Rollout         Rollout             `yaml:"rollout"`
	DNSZone         DNSZone             `yaml:"dns"`
	Fabric          Fabric              `yaml:"fabric"`
	Addressing      Addressing          `yaml:"addressing"`
	Profiles        []*Profile          `yaml:"profiles,keyed"`
	Roles           []*Role             `yaml:"roles,keyed"`
	Pods            []*Pod              `yaml:"pods,keyed"`
	Pins            []*Pin              `yaml:"pins"`
	Overrides       []*Override         `yaml:"overrides,keyed"`
	dns             []netip.Addr        // parsed DNSServers
	dnsRecords      *template.Template  // parsed DNS.Records; nil: the default
	sshKeys         []string            // SSHKeys with key files read
	roles           map[string]*Role    // by name, filled by validation
	profiles        map[string]*Profile // by name, filled by validation
}

// Naming overrides how host names are built.
type Naming struct {
	Meta     Meta
	Template string `yaml:"template"`
	IDDigits int    `yaml:"id_digits"`
}

// UnknownPolicy is what a zone does with a machine that has no slot.
type UnknownPolicy string

// Unknown-machine policies.
const (
	UnknownDiscover UnknownPolicy = "discover" // record it; boot nothing that installs (the default)
	UnknownIgnore   UnknownPolicy = "ignore"   // do not answer it at all
)

// ReplacePolicy is what a slot does with new hardware that shows up in it.
type ReplacePolicy string

// Replacement policies.
const (
	ReplaceReinstall ReplacePolicy = "reinstall" // install it into the slot's identity (the default)
	ReplaceHold      ReplacePolicy = "hold"      // wait for an operator
)

// PowerDriver is how drover talks to a slot's BMC.
type PowerDriver string

// Power drivers.
const (
	PowerNone    PowerDriver = "none"    // drover does not drive the BMC (the default)
	PowerIPMI    PowerDriver = "ipmi"    // IPMI 2.0 over LAN (RMCP+), UDP port 623
	PowerRedfish PowerDriver = "redfish" // reserved: refused by validation until a driver exists
)

// DefaultBMCSessions bounds BMC sessions at once per BMC network when the
// design does not say.
const DefaultBMCSessions = 8

// Timeouts are the watchdogs for work states, as Go durations ("45m").
type Timeouts struct {
	Meta          Meta
	Commissioning string `yaml:"commissioning"`
	Deploying     string `yaml:"deploying"`
}

// Profile is how a role is installed.
type Profile struct {
	Meta      Meta
	Name      string
	Kernel    string            `yaml:"kernel"`
	Initrds   []string          `yaml:"initrd"`
	Args      string            `yaml:"args"`
	Templates map[string]string `yaml:"templates"`
	// Image is the OS image the install agent writes to disk: an artifact
	// of the catalogue, "NAME" (the channel named like the zone's
	// environment) or "NAME@CHANNEL".
	Image  string `yaml:"image"`
	digest string // what the profile installs, for plans to see a change
}

// Role is what a slot runs.
type Role struct {
	Meta     Meta
	Name     string
	Profile  string         `yaml:"profile"`
	Firmware string         `yaml:"firmware"`
	Power    PowerDriver    `yaml:"power"`
	Classes  []string       `yaml:"classes"`
	Params   map[string]any `yaml:"params"`
	Variants []*Variant     `yaml:"variants,keyed"`
}

// Variant is a flavour of a role with its own classes, parameters or profile.
type Variant struct {
	Meta    Meta
	Name    string
	Profile string         `yaml:"profile"`
	Classes []string       `yaml:"classes"`
	Params  map[string]any `yaml:"params"`
}

// Pod is a failure domain: its networks and its switches.
type Pod struct {
	Meta       Meta
	Name       string
	Networks   []*Network `yaml:"networks,keyed"`
	Addressing Addressing `yaml:"addressing"`
	Switches   []*Switch  `yaml:"switches,keyed"`
}

// Network is a pod subnet. "boot" and "bmc" are special; others (storage,
// transport, ...) give every host an address derived the same way.
type Network struct {
	Meta    Meta
	Name    string
	Subnet  string `yaml:"subnet"`
	Gateway string `yaml:"gateway"`
	VLAN    int    `yaml:"vlan"`
	Pool    string `yaml:"pool"` // boot network only: addresses for unknown machines, "first-last"
	// Sessions bounds BMC sessions at once on a bmc network (default DefaultBMCSessions).
	Sessions int `yaml:"sessions"`
	prefix   netip.Prefix
	gateway  netip.Addr
	pool     [2]netip.Addr
}

// Boot network shapes of a switch.
const (
	ShapePod     = "pod"      // one pod subnet on the switch's gateway interface; circuit-id names the port
	ShapePerPort = "per-port" // a small routed subnet per port; giaddr differs per port
)

// Switch is a ToR, LoM or core switch with its slot mappings.
type Switch struct {
	Meta        Meta
	Name        string
	Kind        string     `yaml:"kind"`
	BootNetwork string     `yaml:"boot_network"`
	Relay       string     `yaml:"relay"`
	RemoteID    string     `yaml:"remote_id"`
	Ports       []string   `yaml:"ports"`
	PortSubnets string     `yaml:"port_subnets"`
	PortPrefix  int        `yaml:"port_prefix"`
	Slots       []*Mapping `yaml:"slots"`
	// A switch drover provisions (its management port is in a slot) has a
	// network OS of the zone's fabric, an id and fabric uplinks.
	OS        string   `yaml:"os"`
	ID        int      `yaml:"id"`
	ASN       int64    `yaml:"asn"`
	Uplinks   []string `yaml:"uplinks"`
	relay     netip.Addr
	uplinks   []string         // every uplink port, in order
	mgmt      *Slot            // the slot of its management port, when drover provisions it
	portSlots map[string]*Slot // port -> the slot on it: a host, or a switch's management port
	bmcSlots  map[string]*Slot // lom port -> the host whose BMC is on it
	ports     []string         // every declared port, in order
	portIndex map[string]int   // port name -> position in ports
	portBlock netip.Prefix
	zone      *Zone
	pod       *Pod
}

// Mapping puts a role on a range of ports with an explicit id range. With
// bmc_of instead of role (on a `lom` switch) the ports are the BMC ports of
// the hosts with that role and those ids.
type Mapping struct {
	Meta      Meta
	Ports     string        `yaml:"ports"`
	Role      string        `yaml:"role"`
	BMCOf     string        `yaml:"bmc_of"`
	Switch    string        `yaml:"switch"` // the port is this switch's management port
	Variant   string        `yaml:"variant"`
	IDs       string        `yaml:"ids"`
	OnReplace ReplacePolicy `yaml:"on_replace"`
}

// Pin gives a slot to a MAC address where no relay adds option 82.
type Pin struct {
	Meta      Meta
	MAC       string        `yaml:"mac"`
	Pod       string        `yaml:"pod"`
	Role      string        `yaml:"role"`
	Variant   string        `yaml:"variant"`
	ID        int           `yaml:"id"`
	OnReplace ReplacePolicy `yaml:"on_replace"`
	Switch    string        `yaml:"switch"` // the MAC is this switch's management port
}

// Override sets explicit addresses for one host (by permanent name), per network.
type Override struct {
	Meta      Meta
	Name      string
	Addresses map[string]string
}

func (o *Override) unmarshalNode(d *decoder, n *yaml.Node, path string) {
	o.Meta = Meta{At: d.pos(n), Path: path, fields: map[string]Pos{}}
	o.Addresses = map[string]string{}
	if n.Kind != yaml.MappingNode {
		d.errs.add(d.pos(n), path, "write `network: address` pairs, e.g. `boot: 10.10.0.5`", "expected a mapping, found %s", kindName(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := d.resolve(n.Content[i]), d.resolve(n.Content[i+1])
		if k == nil || val == nil {
			continue
		}
		if s, ok := d.scalar(val, path+"."+k.Value, "write an IPv4 address"); ok {
			o.Meta.fields[k.Value] = d.pos(val)
			o.Addresses[k.Value] = s
		}
	}
}

// Addressing is the rule that places a role's hosts in a pod's networks:
// the first id lands at network + offset + 1, the next at +2, and so on.
type Addressing struct {
	Meta  Meta
	Rules []*AddressRule
}

// AddressRule is one role's placement. Written either as `compute: 10`
// (ids from 1) or as `compute: {offset: 10, first_id: 41}`.
type AddressRule struct {
	Meta    Meta
	Role    string
	Offset  int `yaml:"offset"`
	FirstID int `yaml:"first_id"`
}

func (a *Addressing) unmarshalNode(d *decoder, n *yaml.Node, path string) {
	a.Meta = Meta{At: d.pos(n), Path: path, fields: map[string]Pos{}}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errs.add(d.pos(n), path, "write `role: offset` pairs", "expected a mapping, found %s", kindName(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := d.resolve(n.Content[i]), d.resolve(n.Content[i+1])
		if k == nil || val == nil {
			continue
		}
		rulePath := path + "." + k.Value
		if _, dup := a.Meta.fields[k.Value]; dup {
			d.errs.add(d.pos(k), rulePath, "remove one of them", "duplicate key %q", k.Value)
			continue
		}
		a.Meta.fields[k.Value] = d.pos(val)
		r := &AddressRule{Role: k.Value, FirstID: 1}
		if val.Kind == yaml.ScalarNode {
			d.decode(val, reflectValueOf(&r.Offset), rulePath)
			r.Meta = Meta{At: d.pos(val), Path: rulePath, fields: map[string]Pos{}}
		} else {
			d.decode(val, reflectValueOf(r), rulePath)
			if !r.Meta.Has("first_id") {
				r.FirstID = 1
			}
		}
		r.Role = k.Value
		a.Rules = append(a.Rules, r)
	}
}

func (a *Addressing) rule(role string) *AddressRule {
	for _, r := range a.Rules {
		if r.Role == role {
			return r
		}
	}
	return nil
}

func reflectValueOf(ptr any) reflect.Value { return reflect.ValueOf(ptr).Elem() }
