package zone

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

// Fabric is how drover provisions the zone's switches: their ASNs and, per
// network OS, the templates their configuration is rendered from.
type Fabric struct {
	Meta Meta
	ASN  int64       `yaml:"asn"` // a switch's ASN is ASN + its id, unless it sets asn
	OS   []*SwitchOS `yaml:"os,keyed"`
	os   map[string]*SwitchOS
}

// SwitchOS is one network OS's provisioning: the ONIE installer that puts it
// on a bare switch and the templates rendered for each switch running it.
type SwitchOS struct {
	Meta Meta
	Name string
	// Installer is the ONIE installer image, a path under the artifact root.
	Installer string            `yaml:"installer"`
	Templates map[string]string `yaml:"templates"` // name -> template file; "ztp" is the script the switch runs
	tmpl      *template.Template
	names     []string // template names, sorted
	digest    string
}

// Network OSes drover answers ZTP for.
const (
	OSCumulus = "cumulus" // Cumulus Linux ZTP: option 239, a script
	OSSONiC   = "sonic"   // SONiC ZTP: option 67 (ztp.json) or 239 (a script)
	OSEOS     = "eos"     // Arista EOS ZTP: option 67, a script URL
	OSNXOS    = "nxos"    // Cisco NX-OS POAP: options 66 and 67
)

// ZTPScript is the template every network OS needs: what the switch runs.
const ZTPScript = "ztp"

// SwitchRole is the role name of switches' management slots; designs cannot define it.
const SwitchRole = "switch"

var templateNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Switch returns the zone's switch with that name, or nil.
func (z *Zone) Switch(name string) *Switch {
	for _, p := range z.Pods {
		for _, sw := range p.Switches {
			if sw.Name == name {
				return sw
			}
		}
	}
	return nil
}

// NetworkOS returns the fabric's provisioning of a network OS, or nil.
func (z *Zone) NetworkOS(name string) *SwitchOS { return z.Fabric.os[name] }

// Installer is the ONIE installer for the switch's OS ("" when there is none).
func (sw *Switch) Installer() string {
	if o := sw.zone.NetworkOS(sw.OS); o != nil {
		return o.Installer
	}
	return ""
}

// Managed reports whether drover provisions the switch (its management port is in a slot).
func (sw *Switch) Managed() bool { return sw.mgmt != nil }

// ManagementSlot is the slot of the switch's management port, nil when drover does not provision it.
func (sw *Switch) ManagementSlot() *Slot { return sw.mgmt }

// UplinkNames are the switch's fabric uplinks, in order.
func (sw *Switch) UplinkNames() []string { return append([]string(nil), sw.uplinks...) }

// fabric checks the zone's fabric section: ASN range and each OS's templates,
// parsed now so that a syntax error is reported at its file and line.
func (c *compiler) fabric(z *Zone) {
	f := &z.Fabric
	f.os = map[string]*SwitchOS{}
	if f.Meta.Has("asn") && (f.ASN < 1 || f.ASN > 4294967295) {
		c.errs.add(f.Meta.PosOf("asn"), f.Meta.PathOf("asn"), "use a private ASN such as 65000 or 4200000000", "ASN %d is out of range", f.ASN)
	}
	for _, o := range f.OS {
		m := &o.Meta
		f.os[o.Name] = o
		if !slices.Contains([]string{OSCumulus, OSSONiC, OSEOS, OSNXOS}, o.Name) {
			c.errs.add(m.At, m.Path, "use one of: cumulus, sonic, eos, nxos", "drover provisions no network OS %q", o.Name)
			continue
		}
		if _, ok := o.Templates[ZTPScript]; !ok {
			c.errs.add(m.At, m.PathOf("templates."+ZTPScript), "add `ztp: FILE`: the script the switch runs after its ZTP DHCP", "the OS has no ztp template")
		}
		if o.Installer != "" && (filepath.IsAbs(o.Installer) || strings.Contains("/"+o.Installer+"/", "/../")) {
			c.errs.add(m.PosOf("installer"), m.PathOf("installer"), "write a path under drover serve's --artifacts, e.g. onie/cumulus-linux-5.9.bin", "%q is not a relative artifact path", o.Installer)
		}
		h := sha256.New()
		fmt.Fprintf(h, "%s\x00", o.Installer)
		o.tmpl = template.New(o.Name).Option("missingkey=error")
		for name := range o.Templates {
			o.names = append(o.names, name)
		}
		sort.Strings(o.names)
		for _, name := range o.names {
			pos, field := m.PosOf("templates."+name), m.PathOf("templates."+name)
			if !templateNameRE.MatchString(name) {
				c.errs.add(pos, field, "use lower-case letters, digits, dots, dashes and underscores", "%q is not a valid template name", name)
				continue
			}
			file := o.Templates[name]
			if !filepath.IsAbs(file) {
				file = filepath.Join(filepath.Dir(m.At.File), file)
			}
			b, err := os.ReadFile(file)
			if err != nil {
				c.errs.add(pos, field, "paths are relative to the zone file", "template file %s cannot be read: %v", file, errors.Unwrap(err))
				continue
			}
			fmt.Fprintf(h, "%s\x00%d\x00%s", name, len(b), b)
			// Each template is named by its file, so errors read file:line:col.
			if _, err := o.tmpl.New(file).Parse(string(b)); err != nil {
				c.templateProblem(err, pos, field)
			}
			o.Templates[name] = file
		}
		o.digest = hex.EncodeToString(h.Sum(nil))
	}
}

var templateErrRE = regexp.MustCompile(`^template: (.+?):(\d+):(?:(\d+):)? ?(.*)$`)

// templateProblem reports a text/template error at the template file's line
// (and column) when the error names them, else at the design field.
func (c *compiler) templateProblem(err error, pos Pos, field string) {
	msg := err.Error()
	if m := templateErrRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[2])
		col, _ := strconv.Atoi(m[3])
		if col == 0 {
			col = 1
		}
		pos, msg = Pos{File: m[1], Line: line, Col: col}, m[4]
	}
	c.errs.add(pos, field, "fix the template: fields are in docs/switches.md", "%s", msg)
}

// switchFields checks what a switch needs when drover provisions it, and its uplinks.
func (c *compiler) switchFields(z *Zone, sw *Switch) {
	m := &sw.Meta
	sw.portSlots, sw.bmcSlots = map[string]*Slot{}, map[string]*Slot{}
	for _, n := range c.portList(m, "uplinks", sw.Uplinks, "write ranges like swp49-swp52") {
		if _, dup := sw.portIndex[n]; dup {
			c.errs.add(m.PosOf("uplinks"), m.PathOf("uplinks"), "list fabric uplinks apart from the host ports", "port %s is both a host port and an uplink", n)
			continue
		}
		if slices.Contains(sw.uplinks, n) {
			c.errs.add(m.PosOf("uplinks"), m.PathOf("uplinks"), "list each uplink once", "uplink %s is declared twice", n)
			continue
		}
		sw.uplinks = append(sw.uplinks, n)
	}
	if m.Has("asn") && (sw.ASN < 1 || sw.ASN > 4294967295) {
		c.errs.add(m.PosOf("asn"), m.PathOf("asn"), "use a private ASN such as 65001", "ASN %d is out of range", sw.ASN)
	}
	if m.Has("id") {
		if sw.ID < 1 {
			c.errs.add(m.PosOf("id"), m.PathOf("id"), "use a number from 1", "invalid switch id %d", sw.ID)
		} else {
			claim(c, c.switchIDs, z.Name+"/"+strconv.Itoa(sw.ID), m.PosOf("id"), m.PathOf("id"), fmt.Sprintf("switch id %d (%s)", sw.ID, sw.Name), "give each switch of the zone its own id")
		}
	}
	if m.Has("os") && z.Fabric.os[sw.OS] == nil {
		var names []string
		for _, o := range z.Fabric.OS {
			names = append(names, o.Name)
		}
		fix := "add it under `fabric: {os: {" + sw.OS + ": {templates: {ztp: FILE}}}}`"
		if len(names) > 0 {
			fix = "use one of the fabric's: " + strings.Join(names, ", ") + ", or " + fix
		}
		c.errs.add(m.PosOf("os"), m.PathOf("os"), fix, "unknown network OS %q", sw.OS)
	}
}

// mgmtMapping reads a `switch:` mapping: the port is that switch's management port.
func (c *compiler) mgmtMapping(z *Zone, p *Pod, sw *Switch, mp *Mapping) {
	m := &mp.Meta
	for _, f := range []string{"role", "bmc_of", "variant", "ids", "on_replace"} {
		if m.Has(f) {
			c.errs.add(m.PosOf(f), m.PathOf(f), "put the switch's management port in an entry of its own: {ports: PORT, switch: NAME}", "a switch mapping has no %s", f)
			return
		}
	}
	ports, err := ParsePortRange(mp.Ports)
	switch {
	case !m.Has("ports"):
		c.errs.add(m.At, m.PathOf("ports"), "add `ports: PORT`, the port the switch's management port is cabled to", "missing ports")
		return
	case err != nil:
		c.errs.add(m.PosOf("ports"), m.PathOf("ports"), "write a single port like swp7", "%v", err)
		return
	case len(ports) != 1:
		c.errs.add(m.PosOf("ports"), m.PathOf("ports"), "write one entry per switch", "a switch has one management port, not %d", len(ports))
		return
	case sw.BootNetwork == ShapePerPort:
		c.errs.add(m.PosOf("switch"), m.PathOf("switch"), "cable management ports to a switch with `boot_network: pod` (the pod's lom switch)", "a per-port switch cannot serve management ports")
		return
	}
	port := ports[0]
	if len(sw.ports) > 0 {
		if _, ok := sw.portIndex[port]; !ok {
			c.errs.add(m.PosOf("ports"), m.PathOf("ports"), "add it to the switch's `ports:`", "port %s is not declared on switch %s", port, sw.Name)
			return
		}
	}
	if !claim(c, c.ports, sw.Name+"/"+port, m.PosOf("ports"), m.PathOf("ports"), "port "+port+" of "+sw.Name, "map each port once") {
		return
	}
	// The management address is on the network the relay serves: a lom
	// switch relaying from the bmc network gives the switch an address there.
	network := podNetwork(p, "boot")
	if bmc := podNetwork(p, "bmc"); bmc != nil && sw.relay.IsValid() && bmc.prefix.Contains(sw.relay) {
		network = bmc
	}
	c.managed = append(c.managed, managedSwitch{z: z, p: p, m: m, name: mp.Switch, network: network,
		slot: &Slot{Key: sw.Name + "/" + port, Switch: sw.Name, Port: port}})
}

// managedSwitch is a switch placed in a slot (by port or MAC), filled once every switch is known.
type managedSwitch struct {
	z       *Zone
	p       *Pod
	m       *Meta
	name    string
	network *Network
	slot    *Slot
}

// switchPin reads a pin with `switch:`: the MAC is that switch's management port.
func (c *compiler) switchPin(z *Zone, pin *Pin, pods map[string]*Pod) {
	m := &pin.Meta
	for _, f := range []string{"role", "variant", "id", "on_replace"} {
		if m.Has(f) {
			c.errs.add(m.PosOf(f), m.PathOf(f), "a switch pin is {mac: MAC, switch: NAME}", "a switch pin has no %s", f)
			return
		}
	}
	sw := z.Switch(pin.Switch)
	if sw == nil {
		c.errs.add(m.PosOf("switch"), m.PathOf("switch"), "name one of the zone's switches", "unknown switch %q", pin.Switch)
		return
	}
	if m.Has("pod") && pin.Pod != sw.pod.Name {
		c.errs.add(m.PosOf("pod"), m.PathOf("pod"), "remove it: a switch pin is in its switch's pod", "switch %s is in pod %s", sw.Name, sw.pod.Name)
		return
	}
	c.managed = append(c.managed, managedSwitch{z: z, p: sw.pod, m: m, name: pin.Switch, network: podNetwork(sw.pod, "boot"),
		slot: &Slot{Key: "pin/" + z.Name + "/switch/" + pin.Switch, MAC: pin.MAC}})
}

// checkManaged turns every placed switch into its management slot: named
// after the switch, addressed by the `switch` addressing rule and its id.
func (c *compiler) checkManaged() {
	for _, ms := range c.managed {
		z, m := ms.z, ms.m
		sw := z.Switch(ms.name)
		if sw == nil {
			c.errs.add(m.PosOf("switch"), m.PathOf("switch"), "name one of the zone's switches", "unknown switch %q", ms.name)
			continue
		}
		sm := &sw.Meta
		switch {
		case sw.mgmt != nil:
			c.errs.add(m.PosOf("switch"), m.PathOf("switch"), "give each switch one management port", "switch %s's management port is already %s", sw.Name, sw.mgmt.Key)
			continue
		case !labelRE.MatchString(sw.Name):
			c.errs.add(sm.At, sm.Path, "name a provisioned switch with lower-case letters, digits and dashes: it becomes a DNS name", "%q is not a DNS label", sw.Name)
			continue
		case !sm.Has("os"):
			c.errs.add(sm.At, sm.PathOf("os"), "add `os: cumulus` (or sonic, eos, nxos): the network OS it is provisioned for", "switch %s is provisioned but has no os", sw.Name)
			continue
		case !sm.Has("id"):
			c.errs.add(sm.At, sm.PathOf("id"), "add `id: N`: its management address and ASN derive from it", "switch %s is provisioned but has no id", sw.Name)
			continue
		case z.Fabric.os[sw.OS] == nil || sw.ID < 1:
			continue // reported at the switch
		case ms.network == nil || !ms.network.prefix.IsValid():
			continue // the pod's missing network is reported at the pod
		}
		rule := ms.p.Addressing.rule(SwitchRole)
		if rule == nil {
			rule = z.Addressing.rule(SwitchRole)
		}
		if rule == nil {
			if key := ms.p.Name + "/" + SwitchRole; !c.missing[key] {
				c.missing[key] = true
				c.errs.add(m.PosOf("switch"), m.PathOf("switch"), "add `switch: OFFSET` under the zone's or pod "+ms.p.Name+"'s `addressing:`", "no addressing rule for switches in pod %s", ms.p.Name)
			}
			continue
		}
		addr, ok := addOffset(ms.network.prefix, rule.Offset+sw.ID-rule.FirstID+1)
		if !ok {
			c.errs.add(sm.PosOf("id"), sm.PathOf("id"), "use a smaller offset or a larger subnet", "%s: offset %d + id %d falls outside %s network %s", sw.Name, rule.Offset, sw.ID, ms.network.Name, ms.network.prefix)
			continue
		}
		if sw.ASN == 0 && z.Fabric.ASN > 0 {
			sw.ASN = z.Fabric.ASN + int64(sw.ID)
		}
		s := ms.slot
		s.Zone, s.Environment, s.Pod, s.Role, s.ID = z.Name, z.Environment, ms.p.Name, SwitchRole, sw.ID
		s.Name, s.PermanentName, s.Domain, s.OnReplace, s.NetworkOS = sw.Name, sw.Name, z.Domain, ReplaceReinstall, sw.OS
		s.Networks = []NetAddress{{Network: ms.network.Name, Address: netip.PrefixFrom(addr, ms.network.prefix.Bits()), Gateway: ms.network.gateway}}
		s.Address, s.Prefix, s.Gateway = addr, ms.network.prefix, ms.network.gateway
		if ms.network.Name == "bmc" {
			s.BMCAddress = netip.Addr{} // the switch's own address, not a BMC's
		}
		sw.mgmt = s
		c.src[s] = &slotSource{pos: m.PosOf("switch"), field: m.PathOf("switch"), netPos: map[string]Pos{}, netFld: map[string]string{},
			subnets: map[string]netip.Prefix{ms.network.Name: ms.network.prefix}}
		c.d.Slots = append(c.d.Slots, s)
	}
}

// checkSwitchConfigs ties every slot to the switch ports it uses and renders
// each provisioned switch's templates once, so that a template error is a
// design error (at the template's line) and never reaches a switch.
func (c *compiler) checkSwitchConfigs() {
	byName := map[string]*Switch{}
	for _, z := range c.d.Zones {
		for _, p := range z.Pods {
			for _, sw := range p.Switches {
				byName[sw.Name] = sw
			}
		}
	}
	for _, s := range c.d.Slots {
		if sw := byName[s.Switch]; sw != nil {
			sw.portSlots[s.Port] = s
		}
		if lom, port, ok := strings.Cut(s.BMCPort, "/"); ok && byName[lom] != nil {
			byName[lom].bmcSlots[port] = s
		}
	}
	for _, z := range c.d.Zones {
		for _, p := range z.Pods {
			for _, sw := range p.Switches {
				if sw.mgmt == nil {
					continue
				}
				if _, err := sw.Render(SwitchRuntime{URL: "http://drover.invalid:8080", Server: "192.0.2.1", Token: "TOKEN"}); err != nil {
					var te *TemplateError
					if errors.As(err, &te) {
						c.templateProblem(te.Err, te.Meta.PosOf("templates."+te.Name), te.Meta.PathOf("templates."+te.Name))
					}
					continue
				}
				// Like a profile's digest, it changes with what provisions the
				// switch (its OS's templates and installer), so a plan marks
				// the switches for provisioning again; a design change that only
				// changes what the templates render (a host renamed) does not.
				sw.mgmt.ProfileDigest = z.Fabric.os[sw.OS].digest[:16]
			}
		}
	}
}

// SwitchRuntime is what a switch's configuration needs from the server
// answering it: drover's base URL, the DHCP server its relay forwards to, and
// the switch's token.
type SwitchRuntime struct {
	URL    string // drover's machine HTTP base, e.g. http://10.0.0.1:8080
	Server string // the DHCP server address the switch's relay forwards to
	Token  string // the switch's install token: opens its files and phone-home
}

// SwitchConfig is what a switch's templates see (docs/switches.md).
type SwitchConfig struct {
	Name, Zone, Pod, Domain, Kind, OS string
	ID                                int
	ASN                               int64      // 0 when neither the switch nor the fabric sets one
	RouterID                          netip.Addr // the management address
	Mgmt                              NetAddress
	BootNetwork                       string // pod or per-port
	Relay                             RelayConfig
	Ports                             []PortConfig
	Uplinks                           []string
	Networks                          []NetworkConfig
	DNSServers                        []netip.Addr
	URL, Token, PhoneHome             string
	Files                             map[string]string // template name -> URL of the rendered file
}

// RelayConfig is how the switch relays DHCP so that drover can tell where a request came from.
type RelayConfig struct {
	Enabled  bool         // the switch has ports to relay for
	Shape    string       // pod: giaddr Address, circuit-id = port, remote-id RemoteID; per-port: giaddr = the port's address
	Address  netip.Addr   // giaddr of a pod-shaped switch
	RemoteID string       // option 82 remote-id (sub-option 2)
	Servers  []string     // where to relay: drover's DHCP server
	Ports    []PortConfig // the ports relayed for: every declared port
}

// PortConfig is one switch port as the design uses it.
type PortConfig struct {
	Name        string
	Description string       // "HOST (role compute)", "bmc of HOST", "mgmt of SWITCH"; "" when unused
	Host        string       // the host, BMC's host or switch on the port
	Use         string       // host, bmc, mgmt or "" (unused)
	Address     netip.Prefix // the switch's address on a per-port subnet (gateway/prefix)
	Subnet      netip.Prefix // the port's subnet on a per-port switch
}

// NetworkConfig is one of the pod's networks.
type NetworkConfig struct {
	Name    string
	Subnet  netip.Prefix
	Gateway netip.Addr
	VLAN    int
}

// Config is what the switch's templates are rendered with.
func (sw *Switch) Config(rt SwitchRuntime) SwitchConfig {
	z, p := sw.zone, sw.pod
	cfg := SwitchConfig{Name: sw.Name, Zone: z.Name, Pod: p.Name, Domain: z.Domain, Kind: sw.Kind, OS: sw.OS, ID: sw.ID, ASN: sw.ASN,
		BootNetwork: sw.BootNetwork, Uplinks: append([]string(nil), sw.uplinks...), DNSServers: z.dns,
		URL: rt.URL, Token: rt.Token, PhoneHome: rt.URL + "/phone-home", Files: map[string]string{}}
	if sw.mgmt != nil {
		cfg.Mgmt, cfg.RouterID = sw.mgmt.Networks[0], sw.mgmt.Address
	}
	for _, n := range p.Networks {
		cfg.Networks = append(cfg.Networks, NetworkConfig{Name: n.Name, Subnet: n.prefix, Gateway: n.gateway, VLAN: n.VLAN})
	}
	for _, port := range sw.ports {
		pc := PortConfig{Name: port}
		switch s, bmc := sw.portSlots[port], sw.bmcSlots[port]; {
		case s.IsSwitch():
			pc.Host, pc.Use, pc.Description = s.Name, "mgmt", fmt.Sprintf("mgmt of switch %s (%s/%s)", s.Name, sw.Name, port)
		case s != nil:
			pc.Host, pc.Use, pc.Description = s.Name, "host", fmt.Sprintf("%s (%s %s)", s.Name, s.Role, s.Key)
		case bmc != nil:
			pc.Host, pc.Use, pc.Description = bmc.Name, "bmc", fmt.Sprintf("bmc of %s (%s/%s)", bmc.Name, sw.Name, port)
		}
		if sw.BootNetwork == ShapePerPort {
			pfx, gw, _ := sw.PortSubnet(port)
			pc.Subnet, pc.Address = pfx, netip.PrefixFrom(gw, pfx.Bits())
		}
		cfg.Ports = append(cfg.Ports, pc)
	}
	// Every host port is relayed: a machine on a port without a slot is how
	// drover discovers new hardware.
	cfg.Relay.Ports = cfg.Ports
	cfg.Relay.Enabled = len(cfg.Relay.Ports) > 0
	cfg.Relay.Shape, cfg.Relay.RemoteID = sw.BootNetwork, sw.RemoteID
	if sw.BootNetwork == ShapePod {
		cfg.Relay.Address = sw.RelayAddr()
		if !cfg.Relay.Address.IsValid() {
			_, cfg.Relay.Address = p.Boot()
		}
	}
	if rt.Server != "" {
		cfg.Relay.Servers = []string{rt.Server}
	}
	if o := z.Fabric.os[sw.OS]; o != nil {
		for _, name := range o.names {
			cfg.Files[name] = fmt.Sprintf("%s/ztp/files/%s?token=%s", rt.URL, name, rt.Token)
		}
	}
	return cfg
}

// TemplateError is a switch template that failed to render.
type TemplateError struct {
	Switch, OS, Name string
	Meta             *Meta // the OS's, for the design field
	Err              error
}

func (e *TemplateError) Error() string {
	return fmt.Sprintf("switch %s: %s template %s: %v", e.Switch, e.OS, e.Name, e.Err)
}

func (e *TemplateError) Unwrap() error { return e.Err }

// Render renders every template of the switch's OS, all or nothing: name ->
// content. An error is a *TemplateError naming the template file and line.
func (sw *Switch) Render(rt SwitchRuntime) (map[string]string, error) {
	o := sw.zone.Fabric.os[sw.OS]
	if o == nil || o.tmpl == nil {
		return nil, fmt.Errorf("switch %s: network OS %q is not in the fabric", sw.Name, sw.OS)
	}
	cfg := sw.Config(rt)
	out := make(map[string]string, len(o.names))
	for _, name := range o.names {
		t := o.tmpl.Lookup(o.Templates[name])
		if t == nil {
			return nil, fmt.Errorf("switch %s: template %s did not parse", sw.Name, name)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, cfg); err != nil {
			return nil, &TemplateError{Switch: sw.Name, OS: sw.OS, Name: name, Meta: &o.Meta, Err: err}
		}
		out[name] = b.String()
	}
	return out, nil
}
