package zone

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"
)

var (
	labelRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	switchRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
)

// owner remembers who claimed a unique value first, for "also at" messages.
type owner struct {
	pos  Pos
	what string
}

type slotSource struct {
	pos     Pos                     // where the slot was defined (the mapping or pin)
	field   string                  // its field path, for errors
	netPos  map[string]Pos          // where an overridden address was written
	netFld  map[string]string       // its field path
	subnets map[string]netip.Prefix // the subnet each address must be a host of
}

type compiler struct {
	d         *Design
	errs      *problems
	zones     map[string]owner
	switches  map[string]owner
	names     map[string]owner
	addrs     map[netip.Addr]owner
	relays    map[netip.Addr]owner
	remoteIDs map[string]owner
	ports     map[string]owner // switch/port
	macs      map[string]owner
	subnets   []subnetOwner
	src       map[*Slot]*slotSource
	missing   map[string]bool  // pod/role without an addressing rule, reported once
	switchIDs map[string]owner // zone/id of switches
	managed   []managedSwitch  // switches placed in slots, filled once all switches are known
	pools     []poolOwner
	loms      []lomMapping
	// brokenRoles are zone/role pairs with a host mapping in error: a BMC
	// port naming one of their hosts is not reported again.
	brokenRoles map[string]bool
	order       []string // the environment order the first zone setting one gave
	orderAt     Pos
}

// lomMapping is a lom switch mapping, resolved once every host slot exists.
type lomMapping struct {
	z     *Zone
	p     *Pod
	sw    *Switch
	mp    *Mapping
	ports []string
	from  int
}

type poolOwner struct {
	first, last netip.Addr
	owner
}

type subnetOwner struct {
	prefix netip.Prefix
	owner
}

func compile(d *Design, errs *problems) {
	c := &compiler{
		d: d, errs: errs,
		zones: map[string]owner{}, switches: map[string]owner{}, names: map[string]owner{},
		addrs: map[netip.Addr]owner{}, relays: map[netip.Addr]owner{}, remoteIDs: map[string]owner{},
		ports: map[string]owner{}, macs: map[string]owner{}, src: map[*Slot]*slotSource{},
		missing: map[string]bool{}, brokenRoles: map[string]bool{}, switchIDs: map[string]owner{},
	}
	for _, z := range d.Zones {
		c.zone(z)
	}
	c.checkOrder()
	c.checkOverlaps()
	c.checkManaged()
	c.checkLoMs()
	c.checkSwitchConfigs()
	c.checkPower()
	c.checkSlots()
	c.checkDomains()
	sort.Slice(d.Slots, func(i, j int) bool { return SlotLess(d.Slots[i], d.Slots[j]) })
}

// claim records a unique value, or reports it as a duplicate of the first claim.
func claim[K comparable](c *compiler, m map[K]owner, key K, pos Pos, field, what, fix string) bool {
	if first, dup := m[key]; dup {
		c.errs.add(pos, field, fix, "%s is already used by %s at %s", what, first.what, first.pos)
		return false
	}
	m[key] = owner{pos: pos, what: what}
	return true
}

func oneOf[T ~string](c *compiler, m *Meta, field string, value T, allowed ...T) {
	names := make([]string, len(allowed))
	for i, a := range allowed {
		if value == a {
			return
		}
		names[i] = string(a)
	}
	c.errs.add(m.PosOf(field), m.PathOf(field), "use one of: "+strings.Join(names, ", "), "%q is not allowed", value)
}

func (c *compiler) zone(z *Zone) {
	m := &z.Meta
	switch {
	case !m.Has("zone"):
		c.errs.add(m.At, "zone", "start the file with `zone: NAME`, e.g. `zone: bgo`", "missing zone name")
	case !labelRE.MatchString(z.Name):
		c.errs.add(m.PosOf("zone"), "zone", "use lower-case letters, digits and dashes", "%q is not a valid zone name", z.Name)
	default:
		claim(c, c.zones, z.Name, m.PosOf("zone"), "zone", "zone "+z.Name, "give each zone file its own zone name")
	}
	if !m.Has("environment") {
		c.errs.add(m.At, "environment", "add `environment: prod`, `test` or `dev`", "missing environment class")
	} else {
		oneOf(c, m, "environment", z.Environment, "prod", "test", "dev")
	}
	if !m.Has("domain") {
		c.errs.add(m.At, "domain", "add `domain:` with the zone's DNS domain, e.g. bgo.cloud.example.org", "missing DNS domain")
	} else if !validDomain(z.Domain) {
		c.errs.add(m.PosOf("domain"), "domain", "write a DNS domain like bgo.cloud.example.org", "%q is not a valid DNS domain", z.Domain)
	}
	for i, s := range z.DNSServers {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			c.errs.add(m.PosOf("dns_servers"), fmt.Sprintf("dns_servers[%d]", i), "write IPv4 addresses", "%q is not an IPv4 address", s)
			continue
		}
		z.dns = append(z.dns, a)
	}
	c.sshKeys(z)
	c.duration(m, "lease_time", z.LeaseTime)
	c.duration(&z.Timeouts.Meta, "commissioning", z.Timeouts.Commissioning)
	c.duration(&z.Timeouts.Meta, "deploying", z.Timeouts.Deploying)
	if z.UnknownMachines == "" {
		z.UnknownMachines = UnknownDiscover
	} else {
		oneOf(c, m, "unknown_machines", z.UnknownMachines, UnknownDiscover, UnknownIgnore)
	}
	if z.OnReplace == "" {
		z.OnReplace = ReplaceReinstall
	} else {
		oneOf(c, m, "on_replace", z.OnReplace, ReplaceReinstall, ReplaceHold)
	}
	if z.Power == "" {
		z.Power = PowerNone
	} else {
		c.powerDriver(m, z.Power)
	}
	naming := c.naming(z)

	c.fabric(z)
	z.profiles = map[string]*Profile{}
	for _, p := range z.Profiles {
		c.profile(p)
		z.profiles[p.Name] = p
	}
	z.roles = map[string]*Role{}
	for _, r := range z.Roles {
		c.role(z, r)
		z.roles[r.Name] = r
	}
	c.addressing(z, &z.Addressing)
	c.rollout(z)
	c.dns(z)

	pods := map[string]*Pod{}
	for _, p := range z.Pods {
		if !labelRE.MatchString(p.Name) {
			c.errs.add(p.Meta.At, p.Meta.Path, "use lower-case letters, digits and dashes", "%q is not a valid pod name", p.Name)
		}
		pods[p.Name] = p
		c.pod(z, p, naming)
	}
	if len(z.Pods) == 0 && m.Has("zone") {
		c.errs.add(m.At, "pods", "add a `pods:` section with at least one pod", "the zone has no pods")
	}
	for i, pin := range z.Pins {
		c.pin(z, pin, i, pods, naming)
	}
	c.overrides(z)
}

func (c *compiler) duration(m *Meta, field, value string) {
	if value == "" {
		return
	}
	if d, err := time.ParseDuration(value); err != nil || d <= 0 {
		c.errs.add(m.PosOf(field), m.PathOf(field), "write a duration like 45m or 2h", "%q is not a positive duration", value)
	}
}

func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if !labelRE.MatchString(l) {
			return false
		}
	}
	return true
}

// nameFields are what a naming template can use.
type nameFields struct {
	Zone, Role, Variant, ID, Pod, Switch, Port string
	Num                                        int
}

type namer struct {
	tmpl   *template.Template
	digits int
}

func (n namer) name(f nameFields) (string, error) {
	f.ID = fmt.Sprintf("%0*d", n.digits, f.Num)
	if n.tmpl == nil {
		if f.Variant == "" {
			return f.Zone + "-" + f.Role + "-" + f.ID, nil
		}
		return f.Zone + "-" + f.Role + "-" + f.Variant + "-" + f.ID, nil
	}
	var b strings.Builder
	if err := n.tmpl.Execute(&b, f); err != nil {
		return "", err
	}
	return b.String(), nil
}

func (c *compiler) naming(z *Zone) namer {
	n := namer{digits: 2}
	m := &z.Naming.Meta
	if z.Naming.IDDigits != 0 {
		if z.Naming.IDDigits < 1 || z.Naming.IDDigits > 8 {
			c.errs.add(m.PosOf("id_digits"), m.PathOf("id_digits"), "use a number from 1 to 8", "%d digits is out of range", z.Naming.IDDigits)
		} else {
			n.digits = z.Naming.IDDigits
		}
	}
	if z.Naming.Template != "" {
		t, err := template.New("name").Option("missingkey=error").Parse(z.Naming.Template)
		if err != nil {
			c.errs.add(m.PosOf("template"), m.PathOf("template"), "fields: .Zone .Role .Variant .ID .Pod .Switch .Port .Num", "bad template: %v", err)
		} else {
			n.tmpl = t
		}
	}
	return n
}

func (c *compiler) profile(p *Profile) {
	m := &p.Meta
	if !labelRE.MatchString(p.Name) {
		c.errs.add(m.At, m.Path, "use lower-case letters, digits and dashes", "%q is not a valid profile name", p.Name)
	}
	if p.Kernel == "" {
		c.errs.add(m.At, m.PathOf("kernel"), "add `kernel:` with the kernel's artifact path", "the profile has no kernel")
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%q\x00%s\x00%s\x00", p.Kernel, p.Initrds, p.Args, p.Image)
	names := make([]string, 0, len(p.Templates))
	for name := range p.Templates {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b, _ := os.ReadFile(p.templatePath(p.Templates[name]))
		fmt.Fprintf(h, "%s\x00%d\x00%s", name, len(b), b)
	}
	p.digest = hex.EncodeToString(h.Sum(nil))[:16]
	if p.Image != "" {
		name, channel, _ := strings.Cut(p.Image, "@")
		if !labelRE.MatchString(name) || strings.Contains(p.Image, "@") && !labelRE.MatchString(channel) {
			c.errs.add(m.PosOf("image"), m.PathOf("image"), "write NAME or NAME@CHANNEL, lower-case letters, digits and dashes (see `drover artifacts list`)", "%q is not an image reference", p.Image)
		}
	}
	for name, path := range p.Templates {
		if !labelRE.MatchString(name) {
			c.errs.add(m.PosOf("templates."+name), m.PathOf("templates."+name), "use lower-case letters, digits and dashes", "%q is not a valid template name", name)
		}
		if filepath.IsAbs(path) {
			continue
		}
		full := filepath.Join(filepath.Dir(m.At.File), path)
		if _, err := os.Stat(full); err != nil {
			c.errs.add(m.PosOf("templates."+name), m.PathOf("templates."+name), "paths are relative to the zone file", "template file %s does not exist", full)
		}
	}
}

// ImageRef is the catalogue name and channel of the profile's image in zone
// z: the channel defaults to the zone's environment, prod when it has none.
// ok is false when the profile installs without an image.
func (p *Profile) ImageRef(z *Zone) (name, channel string, ok bool) {
	if p.Image == "" {
		return "", "", false
	}
	name, channel, _ = strings.Cut(p.Image, "@")
	if channel == "" {
		channel = z.Environment
	}
	if channel == "" {
		channel = "prod"
	}
	return name, channel, true
}

// sshKeys reads ssh_keys: each entry is a public key, or a file of them
// relative to the zone file.
func (c *compiler) sshKeys(z *Zone) {
	m := &z.Meta
	for i, k := range z.SSHKeys {
		k = strings.TrimSpace(k)
		if isPublicKey(k) {
			z.sshKeys = append(z.sshKeys, k)
			continue
		}
		path := k
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(m.At.File), path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			c.errs.add(m.PosOf("ssh_keys"), fmt.Sprintf("ssh_keys[%d]", i), "give a public key (ssh-ed25519 AAAA...) or a .pub file relative to the zone file", "cannot read %s: %v", path, errors.Unwrap(err))
			continue
		}
		n := 0
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); isPublicKey(line) {
				z.sshKeys = append(z.sshKeys, line)
				n++
			}
		}
		if n == 0 {
			c.errs.add(m.PosOf("ssh_keys"), fmt.Sprintf("ssh_keys[%d]", i), "put OpenSSH public keys in it, one per line", "%s holds no public key", path)
		}
	}
}

func isPublicKey(s string) bool {
	f := strings.Fields(s)
	return len(f) >= 2 && (strings.HasPrefix(f[0], "ssh-") || strings.HasPrefix(f[0], "ecdsa-") || strings.HasPrefix(f[0], "sk-"))
}

// AuthorizedKeys are the SSH public keys installed machines of the zone accept.
func (z *Zone) AuthorizedKeys() []string { return append([]string(nil), z.sshKeys...) }

// TemplatePath resolves a profile's template file relative to its zone file.
func (p *Profile) TemplatePath(name string) (string, bool) {
	path, ok := p.Templates[name]
	if !ok {
		return "", false
	}
	return p.templatePath(path), true
}

func (p *Profile) templatePath(path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(filepath.Dir(p.Meta.At.File), path)
}

func (c *compiler) role(z *Zone, r *Role) {
	m := &r.Meta
	if !labelRE.MatchString(r.Name) {
		c.errs.add(m.At, m.Path, "use lower-case letters, digits and dashes", "%q is not a valid role name", r.Name)
	}
	if r.Name == SwitchRole {
		c.errs.add(m.At, m.Path, "choose another name: switches' management slots use the role name switch", "role name %q is reserved", r.Name)
	}
	if r.Profile != "" && z.profiles[r.Profile] == nil {
		c.errs.add(m.PosOf("profile"), m.PathOf("profile"), "define it under `profiles:` or fix the name", "unknown profile %q", r.Profile)
	}
	if r.Firmware != "" {
		oneOf(c, m, "firmware", r.Firmware, "bios", "uefi")
	}
	if r.Power != "" {
		c.powerDriver(m, r.Power)
	}
	for _, v := range r.Variants {
		if !labelRE.MatchString(v.Name) {
			c.errs.add(v.Meta.At, v.Meta.Path, "use lower-case letters, digits and dashes", "%q is not a valid variant name", v.Name)
		}
		if v.Profile != "" && z.profiles[v.Profile] == nil {
			c.errs.add(v.Meta.PosOf("profile"), v.Meta.PathOf("profile"), "define it under `profiles:` or fix the name", "unknown profile %q", v.Profile)
		}
	}
}

// Variant returns a variant of the role.
func (r *Role) Variant(name string) *Variant {
	for _, v := range r.Variants {
		if v.Name == name {
			return v
		}
	}
	return nil
}

// Merged is what a host of this role and variant gets: the role's classes
// with the variant's added, and the role's parameters with the variant's on
// top (a variant parameter overrides the role's).
func (r *Role) Merged(variant string) (classes []string, params map[string]any) {
	classes, params = slices.Clone(r.Classes), map[string]any{}
	for k, v := range r.Params {
		params[k] = v
	}
	if v := r.Variant(variant); v != nil {
		classes = append(classes, v.Classes...)
		for k, val := range v.Params {
			params[k] = val
		}
	}
	return classes, params
}

// checkRole reports an unknown role or variant at the field that names it.
func (c *compiler) checkRole(z *Zone, m *Meta, role, variant string) *Role {
	if role == "" {
		c.errs.add(m.At, m.PathOf("role"), "add `role:` naming one of the zone's roles", "missing role")
		return nil
	}
	r := z.roles[role]
	if r == nil {
		c.errs.add(m.PosOf("role"), m.PathOf("role"), "define it under `roles:` or use one of: "+strings.Join(roleNames(z), ", "), "unknown role %q", role)
		return nil
	}
	if variant != "" && r.Variant(variant) == nil {
		var names []string
		for _, v := range r.Variants {
			names = append(names, v.Name)
		}
		fix := "role " + role + " has no variants"
		if len(names) > 0 {
			fix = "variants of " + role + ": " + strings.Join(names, ", ")
		}
		c.errs.add(m.PosOf("variant"), m.PathOf("variant"), fix, "unknown variant %q of role %q", variant, role)
		return nil
	}
	return r
}

func roleNames(z *Zone) []string {
	names := make([]string, 0, len(z.Roles))
	for _, r := range z.Roles {
		names = append(names, r.Name)
	}
	return names
}

func (c *compiler) addressing(z *Zone, a *Addressing) {
	for _, r := range a.Rules {
		if z.roles[r.Role] == nil && r.Role != SwitchRole {
			c.errs.add(a.Meta.PosOf(r.Role), r.Meta.Path, "addressing rules are keyed by role name, or `switch` for provisioned switches", "unknown role %q", r.Role)
		}
		if r.Offset < 0 {
			c.errs.add(r.Meta.PosOf("offset"), r.Meta.Path, "use an offset of 0 or more", "negative offset %d", r.Offset)
		}
		if r.FirstID < 1 {
			c.errs.add(r.Meta.PosOf("first_id"), r.Meta.PathOf("first_id"), "ids start at 1", "first_id %d is below 1", r.FirstID)
		}
	}
}

func (c *compiler) pod(z *Zone, p *Pod, naming namer) {
	c.addressing(z, &p.Addressing)
	var boot *Network
	for _, n := range p.Networks {
		c.network(p, n)
		if n.Name == "boot" {
			boot = n
		}
	}
	if boot == nil {
		c.errs.add(p.Meta.At, p.Meta.PathOf("networks.boot"), "add `networks: {boot: {subnet: ..., gateway: ...}}`", "the pod has no boot network")
	}
	for _, sw := range p.Switches {
		c.switchDef(z, p, boot, sw, naming)
	}
}

func (c *compiler) network(p *Pod, n *Network) {
	m := &n.Meta
	if !labelRE.MatchString(n.Name) {
		c.errs.add(m.At, m.Path, "use lower-case letters, digits and dashes", "%q is not a valid network name", n.Name)
	}
	pfx, err := netip.ParsePrefix(n.Subnet)
	switch {
	case !m.Has("subnet"):
		c.errs.add(m.At, m.PathOf("subnet"), "add `subnet: 10.10.0.0/22`", "missing subnet")
		return
	case err != nil || !pfx.Addr().Is4():
		c.errs.add(m.PosOf("subnet"), m.PathOf("subnet"), "write an IPv4 subnet like 10.10.0.0/22", "%q is not an IPv4 subnet", n.Subnet)
		return
	case pfx.Masked() != pfx:
		c.errs.add(m.PosOf("subnet"), m.PathOf("subnet"), "write the network address: "+pfx.Masked().String(), "%s has host bits set", n.Subnet)
		return
	case pfx.Bits() > 30:
		c.errs.add(m.PosOf("subnet"), m.PathOf("subnet"), "use a /30 or larger", "%s has no room for hosts", n.Subnet)
		return
	}
	if m.Has("sessions") {
		switch {
		case n.Name != "bmc":
			c.errs.add(m.PosOf("sessions"), m.PathOf("sessions"), "move it to the pod's bmc network", "only the bmc network bounds BMC sessions")
		case n.Sessions < 1:
			c.errs.add(m.PosOf("sessions"), m.PathOf("sessions"), fmt.Sprintf("use a number from 1 (default %d)", DefaultBMCSessions), "sessions must be at least 1")
		}
	}
	n.prefix = pfx
	c.subnets = append(c.subnets, subnetOwner{pfx, owner{m.PosOf("subnet"), fmt.Sprintf("pod %s network %s", p.Name, n.Name)}})
	if n.Gateway != "" {
		gw, err := netip.ParseAddr(n.Gateway)
		if err != nil || !gw.Is4() {
			c.errs.add(m.PosOf("gateway"), m.PathOf("gateway"), "write an IPv4 address", "%q is not an IPv4 address", n.Gateway)
			return
		}
		if problem := hostProblem(pfx, gw, netip.Addr{}); problem != "" {
			c.errs.add(m.PosOf("gateway"), m.PathOf("gateway"), "use a host address of "+pfx.String(), "gateway %s %s", gw, problem)
			return
		}
		n.gateway = gw
		c.pool(n)
	} else if n.Name == "boot" {
		c.errs.add(m.At, m.PathOf("gateway"), "add `gateway:` with the router address of the boot network", "the boot network has no gateway")
	}
}

// pool checks a boot network's discovery pool "first-last".
func (c *compiler) pool(n *Network) {
	m := &n.Meta
	if n.Pool == "" {
		return
	}
	if n.Name != "boot" {
		c.errs.add(m.PosOf("pool"), m.PathOf("pool"), "move the pool to the pod's boot network", "only the boot network has a pool")
		return
	}
	a, b, ok := strings.Cut(n.Pool, "-")
	first, err1 := netip.ParseAddr(strings.TrimSpace(a))
	last, err2 := netip.ParseAddr(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || !first.Is4() || !last.Is4() || last.Less(first) {
		c.errs.add(m.PosOf("pool"), m.PathOf("pool"), "write a range like 10.10.3.200-10.10.3.250", "%q is not an address range", n.Pool)
		return
	}
	for _, x := range []netip.Addr{first, last} {
		if problem := hostProblem(n.prefix, x, n.gateway); problem != "" {
			c.errs.add(m.PosOf("pool"), m.PathOf("pool"), "keep the pool inside the network's host addresses", "pool address %s %s", x, problem)
			return
		}
	}
	if n.gateway.Compare(first) >= 0 && n.gateway.Compare(last) <= 0 {
		c.errs.add(m.PosOf("pool"), m.PathOf("pool"), "keep the gateway out of the pool", "the pool %s contains the gateway %s", n.Pool, n.gateway)
		return
	}
	n.pool = [2]netip.Addr{first, last}
	c.pools = append(c.pools, poolOwner{first: first, last: last, owner: owner{m.PosOf("pool"), "pool " + n.Pool + " of " + m.Path}})
}

// hostProblem says why addr cannot be a host on pfx, or "" when it can.
func hostProblem(pfx netip.Prefix, addr, gateway netip.Addr) string {
	switch {
	case !pfx.Contains(addr):
		return "is outside " + pfx.String()
	case addr == pfx.Addr():
		return "is the network address of " + pfx.String()
	case addr == broadcast(pfx):
		return "is the broadcast address of " + pfx.String()
	case addr == gateway:
		return "is the gateway of " + pfx.String()
	}
	return ""
}

func addrToUint(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func uintToAddr(u uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b)
}

func broadcast(p netip.Prefix) netip.Addr {
	return uintToAddr(addrToUint(p.Addr()) | (1<<(32-p.Bits()) - 1))
}

// addOffset returns pfx's network address plus n, and false when it leaves the subnet.
func addOffset(pfx netip.Prefix, n int) (netip.Addr, bool) {
	size := uint64(1) << (32 - pfx.Bits())
	if n < 0 || uint64(n) >= size {
		return netip.Addr{}, false
	}
	return uintToAddr(addrToUint(pfx.Addr()) + uint32(n)), true
}

func (c *compiler) switchDef(z *Zone, p *Pod, boot *Network, sw *Switch, naming namer) {
	m := &sw.Meta
	sw.zone, sw.pod = z, p
	if !switchRE.MatchString(sw.Name) {
		c.errs.add(m.At, m.Path, "use letters, digits, dots, dashes and underscores", "%q is not a valid switch name", sw.Name)
	}
	claim(c, c.switches, sw.Name, m.At, m.Path, "switch "+sw.Name, "switch names are unique across the whole design")
	if !m.Has("kind") {
		c.errs.add(m.At, m.PathOf("kind"), "add `kind: tor`, `lom` or `core`", "missing switch kind")
	} else {
		oneOf(c, m, "kind", sw.Kind, "tor", "lom", "core")
	}
	if sw.BootNetwork == "" {
		sw.BootNetwork = ShapePod
	} else {
		oneOf(c, m, "boot_network", sw.BootNetwork, ShapePod, ShapePerPort)
	}
	if sw.RemoteID != "" {
		claim(c, c.remoteIDs, sw.RemoteID, m.PosOf("remote_id"), m.PathOf("remote_id"), "remote-id "+sw.RemoteID+" of switch "+sw.Name, "give each switch its own remote-id")
	}
	sw.portIndex = map[string]int{}
	for _, n := range c.portList(m, "ports", sw.Ports, "write ranges like swp1-swp48 or Ethernet1/1-Ethernet1/32") {
		if _, dup := sw.portIndex[n]; dup {
			c.errs.add(m.PosOf("ports"), m.PathOf("ports"), "list each port once", "port %s is declared twice", n)
			continue
		}
		sw.portIndex[n] = len(sw.ports)
		sw.ports = append(sw.ports, n)
	}
	relayNets := []*Network{boot}
	if sw.Kind == "lom" {
		// A lom switch relays for BMCs (bmc network) and may serve hosts' management ports (boot network).
		relayNets = append(relayNets, podNetwork(p, "bmc"))
	}
	switch sw.BootNetwork {
	case ShapePod:
		if sw.Relay == "" && sw.RemoteID == "" {
			c.errs.add(m.At, m.PathOf("relay"), "add `relay:` (the switch's address on the boot network) and/or `remote_id:`", "the switch has no relay address or remote-id")
		}
		if sw.Relay != "" {
			a, err := netip.ParseAddr(sw.Relay)
			if err != nil || !a.Is4() {
				c.errs.add(m.PosOf("relay"), m.PathOf("relay"), "write the IPv4 address the switch relays from", "%q is not an IPv4 address", sw.Relay)
			} else {
				sw.relay = a
				if in, names, prefixes := inNetworks(relayNets, a); !in && len(names) > 0 {
					c.errs.add(m.PosOf("relay"), m.PathOf("relay"), "use the switch's address on the "+strings.Join(names, " or ")+" network", "relay %s is outside the pod's %s network %s", a, strings.Join(names, " or "), strings.Join(prefixes, " or "))
				}
				if claim(c, c.relays, a, m.PosOf("relay"), m.PathOf("relay"), "relay address "+a.String()+" of switch "+sw.Name, "give each switch its own relay address") {
					c.addrs[a] = owner{m.PosOf("relay"), "relay address of switch " + sw.Name}
				}
			}
		}
	case ShapePerPort:
		c.portSubnets(p, sw)
	}
	c.switchFields(z, sw)
	for i, mp := range sw.Slots {
		if mp.Meta.Has("switch") {
			c.mgmtMapping(z, p, sw, mp)
			continue
		}
		if mp.Meta.Has("bmc_of") {
			c.lomMapping(z, p, sw, mp)
			continue
		}
		c.mapping(z, p, boot, sw, mp, i, naming)
	}
}

// portList expands a list of port ranges, reporting the ones that do not parse.
func (c *compiler) portList(m *Meta, field string, ranges []string, fix string) []string {
	var names []string
	for i, r := range ranges {
		ns, err := ParsePortRange(r)
		if err != nil {
			c.errs.add(m.PosOf(field), fmt.Sprintf("%s[%d]", m.PathOf(field), i), fix, "%v", err)
			continue
		}
		names = append(names, ns...)
	}
	return names
}

// inNetworks reports whether a is inside one of the (valid) networks, and their names and subnets.
func inNetworks(nets []*Network, a netip.Addr) (in bool, names, prefixes []string) {
	for _, n := range nets {
		if n == nil || !n.prefix.IsValid() {
			continue
		}
		names, prefixes = append(names, n.Name), append(prefixes, n.prefix.String())
		if n.prefix.Contains(a) {
			in = true
		}
	}
	return in, names, prefixes
}

func podNetwork(p *Pod, name string) *Network {
	for _, n := range p.Networks {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// powerDriver checks a `power:` setting.
func (c *compiler) powerDriver(m *Meta, d PowerDriver) {
	if d == PowerRedfish {
		c.errs.add(m.PosOf("power"), m.PathOf("power"), "use ipmi (most BMCs speak both) or none",
			"the redfish driver is not available yet")
		return
	}
	oneOf(c, m, "power", d, PowerIPMI, PowerNone)
}

// lomMapping reads a BMC mapping of a lom switch: its ports serve the BMCs
// of the hosts named by role (bmc_of) and ids, resolved in checkLoMs.
func (c *compiler) lomMapping(z *Zone, p *Pod, sw *Switch, mp *Mapping) {
	m := &mp.Meta
	switch {
	case sw.Kind != "lom":
		c.errs.add(m.PosOf("bmc_of"), m.PathOf("bmc_of"), "map BMC ports on the pod's `kind: lom` switch", "BMC ports belong on a lom switch")
		return
	case sw.BootNetwork == ShapePerPort:
		c.errs.add(m.PosOf("bmc_of"), m.PathOf("bmc_of"), "use `boot_network: pod` on a lom switch with BMC ports", "BMCs get addresses on the pod's bmc network, not per-port subnets")
		return
	case podNetwork(p, "bmc") == nil:
		c.errs.add(m.PosOf("bmc_of"), m.PathOf("bmc_of"), "add `bmc: {subnet: ..., gateway: ...}` to pod "+p.Name+"'s networks", "BMCs need the pod's bmc network")
		return
	case m.Has("role"):
		c.errs.add(m.PosOf("role"), m.PathOf("role"), "use bmc_of for BMC ports and role for hosts, in separate entries", "a mapping has either role or bmc_of")
		return
	}
	if z.roles[mp.BMCOf] == nil {
		c.errs.add(m.PosOf("bmc_of"), m.PathOf("bmc_of"), "name one of: "+strings.Join(roleNames(z), ", "), "unknown role %q", mp.BMCOf)
		return
	}
	if m.Has("variant") {
		c.errs.add(m.PosOf("variant"), m.PathOf("variant"), "remove it: a role and an id name one host whatever its variant", "a BMC port names its host by role and id")
	}
	if m.Has("on_replace") {
		c.errs.add(m.PosOf("on_replace"), m.PathOf("on_replace"), "set on_replace on the host's slot", "a lom port has no on_replace of its own")
	}
	ports, from, ok := c.portsAndIDs(mp, "add `ids:` naming the hosts whose BMCs these ports serve, e.g. ids: 1-%d")
	if !ok {
		return
	}
	for _, port := range ports {
		if len(sw.ports) > 0 {
			if _, ok := sw.portIndex[port]; !ok {
				c.errs.add(m.PosOf("ports"), m.PathOf("ports"), "add it to the switch's `ports:` or fix the range", "port %s is not declared on switch %s", port, sw.Name)
				return
			}
		}
		if !claim(c, c.ports, sw.Name+"/"+port, m.PosOf("ports"), m.PathOf("ports"), "port "+port+" of "+sw.Name, "map each port once") {
			return
		}
	}
	c.loms = append(c.loms, lomMapping{z: z, p: p, sw: sw, mp: mp, ports: ports, from: from})
}

// checkLoMs ties each lom port to the host slot it names: a slot of the same
// zone and pod, with that role, variant and id, and at most one BMC port.
func (c *compiler) checkLoMs() {
	// A role and an id name one host (names are unique), whatever its variant,
	// so giving a host a variant does not unplug its BMC.
	type hostKey struct {
		zone, role string
		id         int
	}
	hosts := map[hostKey]*Slot{}
	for _, s := range c.d.Slots {
		hosts[hostKey{s.Zone, s.Role, s.ID}] = s
	}
	taken := map[*Slot]owner{}
	for _, l := range c.loms {
		m := &l.mp.Meta
		for k, port := range l.ports {
			id := l.from + k
			s := hosts[hostKey{l.z.Name, l.mp.BMCOf, id}]
			what := fmt.Sprintf("%s id %d", l.mp.BMCOf, id)
			switch {
			case s == nil && c.brokenRoles[l.z.Name+"/"+l.mp.BMCOf]:
				continue
			case s == nil:
				c.errs.add(m.PosOf("ids"), m.PathOf("ids"), "map the host on a tor switch or a pin first, or fix the role or ids",
					"port %s of lom switch %s names %s, which has no slot in zone %s", port, l.sw.Name, what, l.z.Name)
				continue
			case s.Pod != l.p.Name:
				c.errs.add(m.PosOf("ids"), m.PathOf("ids"), "a BMC plugs into a lom switch of its host's pod",
					"%s is in pod %s, but lom switch %s is in pod %s", s.Name, s.Pod, l.sw.Name, l.p.Name)
				continue
			case !s.BMCAddress.IsValid():
				c.errs.add(m.PosOf("ids"), m.PathOf("ids"), "add a bmc network to pod "+l.p.Name, "%s has no BMC address", s.Name)
				continue
			}
			if first, dup := taken[s]; dup {
				c.errs.add(m.PosOf("ports"), m.PathOf("ports"), "give each host one BMC port",
					"%s's BMC is already on %s", s.Name, first.what)
				continue
			}
			taken[s] = owner{pos: m.PosOf("ports"), what: l.sw.Name + "/" + port}
			s.BMCPort = l.sw.Name + "/" + port
		}
	}
}

// checkPower gives every slot its power driver (the role's, else the zone's),
// which needs a BMC address to talk to.
func (c *compiler) checkPower() {
	for _, s := range c.d.Slots {
		z := c.d.Zone(s.Zone)
		if z == nil || z.roles[s.Role] == nil {
			continue
		}
		r := z.roles[s.Role]
		d, m := z.Power, &z.Meta
		if r.Power != "" {
			d, m = r.Power, &r.Meta
		}
		if d == PowerNone || d == "" {
			continue
		}
		if !s.BMCAddress.IsValid() {
			c.errs.add(m.PosOf("power"), m.PathOf("power"), "add a bmc network to pod "+s.Pod+", or set `power: none` for the role",
				"%s has no BMC address for the %s driver", s.Name, d)
			continue
		}
		s.Power = d
	}
}

// portSubnets carves a per-port switch's block into one small subnet per declared
// port, in declaration order: the first usable address is the switch's (the relay
// address, giaddr), the second is the host's.
func (c *compiler) portSubnets(p *Pod, sw *Switch) {
	m := &sw.Meta
	if sw.PortPrefix == 0 {
		sw.PortPrefix = 29
	}
	if sw.PortPrefix < 16 || sw.PortPrefix > 30 {
		c.errs.add(m.PosOf("port_prefix"), m.PathOf("port_prefix"), "use a prefix length from 16 to 30 (30 leaves one host per port)", "/%d cannot hold a switch address and a host", sw.PortPrefix)
		return
	}
	if len(sw.ports) == 0 {
		c.errs.add(m.At, m.PathOf("ports"), "declare the ports in order, e.g. `ports: [swp1-swp48]`: each gets the next subnet", "a per-port switch needs its ports declared")
	}
	block, err := netip.ParsePrefix(sw.PortSubnets)
	switch {
	case !m.Has("port_subnets"):
		c.errs.add(m.At, m.PathOf("port_subnets"), "add `port_subnets:` with the block the per-port subnets are carved from", "a per-port switch needs port_subnets")
		return
	case err != nil || !block.Addr().Is4():
		c.errs.add(m.PosOf("port_subnets"), m.PathOf("port_subnets"), "write an IPv4 block like 10.99.0.0/24", "%q is not an IPv4 subnet", sw.PortSubnets)
		return
	case block.Masked() != block:
		c.errs.add(m.PosOf("port_subnets"), m.PathOf("port_subnets"), "write the network address: "+block.Masked().String(), "%s has host bits set", sw.PortSubnets)
		return
	case block.Bits() > sw.PortPrefix:
		c.errs.add(m.PosOf("port_subnets"), m.PathOf("port_subnets"), "use a larger block or a longer port_prefix", "%s is smaller than one /%d", block, sw.PortPrefix)
		return
	}
	if need := len(sw.ports); need > 1<<(sw.PortPrefix-block.Bits()) {
		c.errs.add(m.PosOf("port_subnets"), m.PathOf("port_subnets"), "use a larger block or a longer port_prefix", "%s holds %d /%d subnets but the switch declares %d ports", block, 1<<(sw.PortPrefix-block.Bits()), sw.PortPrefix, need)
		return
	}
	sw.portBlock = block
	c.subnets = append(c.subnets, subnetOwner{block, owner{m.PosOf("port_subnets"), "per-port subnets of switch " + sw.Name}})
	for _, port := range sw.ports {
		pfx, gw, _ := sw.PortSubnet(port)
		claim(c, c.relays, gw, m.PosOf("port_subnets"), m.PathOf("port_subnets"), fmt.Sprintf("relay address %s of %s %s", gw, sw.Name, port), "")
		c.addrs[gw] = owner{m.PosOf("port_subnets"), fmt.Sprintf("switch %s port %s (%s)", sw.Name, port, pfx)}
	}
}

// PortSubnet returns the subnet, switch address and host address of a per-port switch's port.
func (sw *Switch) PortSubnet(port string) (pfx netip.Prefix, gateway, host netip.Addr) {
	i, ok := sw.portIndex[port]
	if !ok || !sw.portBlock.IsValid() {
		return netip.Prefix{}, netip.Addr{}, netip.Addr{}
	}
	size := uint32(1) << (32 - sw.PortPrefix)
	base := addrToUint(sw.portBlock.Addr()) + uint32(i)*size
	return netip.PrefixFrom(uintToAddr(base), sw.PortPrefix), uintToAddr(base + 1), uintToAddr(base + 2)
}

// portsAndIDs reads a mapping's port range and id range, which must be as
// long; missingIDs is the fix for a missing id range (%d: the port count).
func (c *compiler) portsAndIDs(mp *Mapping, missingIDs string) (ports []string, from int, ok bool) {
	m := &mp.Meta
	if !m.Has("ports") {
		c.errs.add(m.At, m.PathOf("ports"), "add `ports: swp1-swp20`", "missing ports")
		return nil, 0, false
	}
	ports, err := ParsePortRange(mp.Ports)
	if err != nil {
		c.errs.add(m.PosOf("ports"), m.PathOf("ports"), "write a range like swp1-swp20 or a single port", "%v", err)
		return nil, 0, false
	}
	if !m.Has("ids") {
		c.errs.add(m.At, m.PathOf("ids"), fmt.Sprintf(missingIDs, len(ports)), "missing id range")
		return nil, 0, false
	}
	from, to, err := ParseIDRange(mp.IDs)
	if err != nil {
		c.errs.add(m.PosOf("ids"), m.PathOf("ids"), "write a range like 1-20 or a single id", "%v", err)
		return nil, 0, false
	}
	if n := to - from + 1; n != len(ports) {
		c.errs.add(m.PosOf("ids"), m.PathOf("ids"), fmt.Sprintf("make both ranges the same length, e.g. ids: %d-%d", from, from+len(ports)-1),
			"%d ids for %d ports (%s)", n, len(ports), mp.Ports)
		return nil, 0, false
	}
	return ports, from, true
}

func (c *compiler) mapping(z *Zone, p *Pod, boot *Network, sw *Switch, mp *Mapping, i int, naming namer) {
	m := &mp.Meta
	before := len(c.errs.list)
	defer func() {
		if len(c.errs.list) > before {
			c.brokenRoles[z.Name+"/"+mp.Role] = true
		}
	}()
	role := c.checkRole(z, m, mp.Role, mp.Variant)
	ports, from, ok := c.portsAndIDs(mp, "add `ids: 1-%d` so adding switches never renumbers hosts")
	if !ok {
		return
	}
	onReplace := z.OnReplace
	if mp.OnReplace != "" {
		oneOf(c, m, "on_replace", mp.OnReplace, ReplaceReinstall, ReplaceHold)
		onReplace = mp.OnReplace
	}
	for k, port := range ports {
		if len(sw.ports) > 0 {
			if _, ok := sw.portIndex[port]; !ok {
				c.errs.add(m.PosOf("ports"), m.PathOf("ports"), "add it to the switch's `ports:` or fix the range", "port %s is not declared on switch %s", port, sw.Name)
				return
			}
		}
		if !claim(c, c.ports, sw.Name+"/"+port, m.PosOf("ports"), m.PathOf("ports"), "port "+port+" of "+sw.Name, "map each port once") || role == nil {
			continue
		}
		s := &Slot{
			Key: sw.Name + "/" + port, Switch: sw.Name, Port: port,
		}
		c.fillSlot(z, p, boot, s, role, mp.Variant, from+k, onReplace, m, "ids", naming, sw)
	}
}

func (c *compiler) pin(z *Zone, pin *Pin, i int, pods map[string]*Pod, naming namer) {
	m := &pin.Meta
	mac, err := net.ParseMAC(pin.MAC)
	if err != nil || len(mac) != 6 {
		c.errs.add(m.PosOf("mac"), m.PathOf("mac"), "write a MAC like 52:54:00:12:34:56", "%q is not an Ethernet MAC address", pin.MAC)
		return
	}
	pin.MAC = mac.String()
	claim(c, c.macs, pin.MAC, m.PosOf("mac"), m.PathOf("mac"), "MAC "+pin.MAC, "pin each MAC once")
	if m.Has("switch") {
		c.switchPin(z, pin, pods)
		return
	}
	role := c.checkRole(z, m, pin.Role, pin.Variant)
	p := pods[pin.Pod]
	if p == nil {
		c.errs.add(m.PosOf("pod"), m.PathOf("pod"), "name one of the zone's pods", "unknown pod %q", pin.Pod)
		return
	}
	if pin.ID < 1 {
		c.errs.add(m.PosOf("id"), m.PathOf("id"), "add `id:` with a number from 1", "missing or invalid id")
		return
	}
	onReplace := z.OnReplace
	if pin.OnReplace != "" {
		oneOf(c, m, "on_replace", pin.OnReplace, ReplaceReinstall, ReplaceHold)
		onReplace = pin.OnReplace
	}
	if role == nil {
		return
	}
	var boot *Network
	for _, n := range p.Networks {
		if n.Name == "boot" {
			boot = n
		}
	}
	s := &Slot{Key: fmt.Sprintf("pin/%s/%s/%d", z.Name, pin.Role, pin.ID), MAC: pin.MAC}
	c.fillSlot(z, p, boot, s, role, pin.Variant, pin.ID, onReplace, m, "id", naming, nil)
}

// fillSlot derives a slot's name and addresses and adds it to the design.
func (c *compiler) fillSlot(z *Zone, p *Pod, boot *Network, s *Slot, role *Role, variant string, id int, onReplace ReplacePolicy, m *Meta, field string, naming namer, sw *Switch) {
	s.Zone, s.Environment, s.Pod, s.Role, s.Variant, s.ID = z.Name, z.Environment, p.Name, role.Name, variant, id
	s.Domain, s.OnReplace, s.Firmware, s.Profile = z.Domain, onReplace, role.Firmware, role.Profile
	if v := role.Variant(variant); v != nil && v.Profile != "" {
		s.Profile = v.Profile
	}
	if pr := z.profiles[s.Profile]; pr != nil {
		s.ProfileDigest = pr.digest
	}
	f := nameFields{Zone: z.Name, Role: role.Name, Variant: variant, Pod: p.Name, Num: id, Switch: s.Switch, Port: s.Port}
	name, err := naming.name(f)
	if err == nil {
		f.Variant = ""
		s.PermanentName, err = naming.name(f)
	}
	nm := &z.Naming.Meta
	switch {
	case err != nil:
		c.errs.add(nm.PosOf("template"), nm.PathOf("template"), "fields: .Zone .Role .Variant .ID .Pod .Switch .Port .Num", "naming %s: %v", s.Key, err)
		return
	case !labelRE.MatchString(name) || !labelRE.MatchString(s.PermanentName):
		c.errs.add(nm.PosOf("template"), nm.PathOf("template"), "names must be lower-case DNS labels", "the template makes %q for %s", name, s.Key)
		return
	}
	s.Name = name
	src := &slotSource{pos: m.PosOf(field), field: m.PathOf(field), netPos: map[string]Pos{}, netFld: map[string]string{}, subnets: map[string]netip.Prefix{}}
	c.src[s] = src

	rule := p.Addressing.rule(role.Name)
	if rule == nil {
		rule = z.Addressing.rule(role.Name)
	}
	for _, n := range p.Networks {
		if !n.prefix.IsValid() {
			continue
		}
		na := NetAddress{Network: n.Name, Gateway: n.gateway}
		if n.Name == "boot" && sw != nil && sw.BootNetwork == ShapePerPort {
			pfx, gw, host := sw.PortSubnet(s.Port)
			if !pfx.IsValid() {
				continue
			}
			na = NetAddress{Network: "boot", Address: netip.PrefixFrom(host, pfx.Bits()), Gateway: gw}
			src.subnets[n.Name] = pfx
		} else {
			src.subnets[n.Name] = n.prefix
			if rule == nil {
				if key := p.Name + "/" + role.Name; !c.missing[key] {
					c.missing[key] = true
					c.errs.add(m.PosOf("role"), m.PathOf("role"), fmt.Sprintf("add `%s: OFFSET` under the zone's or pod %s's `addressing:`", role.Name, p.Name),
						"no addressing rule for role %s in pod %s", role.Name, p.Name)
				}
				continue
			}
			addr, ok := addOffset(n.prefix, rule.Offset+id-rule.FirstID+1)
			if !ok {
				c.errs.add(c.src[s].pos, c.src[s].field, "use a smaller offset or a larger subnet", "%s: offset %d + id %d falls outside %s network %s", name, rule.Offset, id, n.Name, n.prefix)
				continue
			}
			na.Address = netip.PrefixFrom(addr, n.prefix.Bits())
		}
		s.Networks = append(s.Networks, na)
	}
	c.setPrimary(s)
	c.d.Slots = append(c.d.Slots, s)
}

// setPrimary copies the boot and BMC addresses out of Networks for quick access.
func (c *compiler) setPrimary(s *Slot) {
	for _, na := range s.Networks {
		switch na.Network {
		case "boot":
			s.Address, s.Prefix, s.Gateway = na.Address.Addr(), na.Address.Masked(), na.Gateway
		case "bmc":
			s.BMCAddress = na.Address.Addr()
		}
	}
}

func (c *compiler) overrides(z *Zone) {
	if len(z.Overrides) == 0 {
		return
	}
	byName := map[string]*Slot{}
	for _, s := range c.d.Slots {
		if s.Zone == z.Name {
			byName[s.PermanentName] = s
		}
	}
	for _, o := range z.Overrides {
		m := &o.Meta
		s := byName[o.Name]
		if s == nil {
			c.errs.add(m.At, m.Path, "overrides are keyed by a host's permanent name, e.g. "+z.Name+"-mgmt-01", "no host is named %q", o.Name)
			continue
		}
		nets := make([]string, 0, len(o.Addresses))
		for n := range o.Addresses {
			nets = append(nets, n)
		}
		sort.Strings(nets)
		for _, netName := range nets {
			a, err := netip.ParseAddr(o.Addresses[netName])
			if err != nil || !a.Is4() {
				c.errs.add(m.PosOf(netName), m.PathOf(netName), "write an IPv4 address", "%q is not an IPv4 address", o.Addresses[netName])
				continue
			}
			found := false
			for i := range s.Networks {
				if s.Networks[i].Network == netName {
					s.Networks[i].Address = netip.PrefixFrom(a, s.Networks[i].Address.Bits())
					c.src[s].netPos[netName] = m.PosOf(netName)
					c.src[s].netFld[netName] = m.PathOf(netName)
					found = true
				}
			}
			if !found {
				c.errs.add(m.PosOf(netName), m.PathOf(netName), "use one of the networks of pod "+s.Pod, "pod %s has no network %q", s.Pod, netName)
			}
		}
		c.setPrimary(s)
	}
}

// checkSlots checks what can only be checked once every slot exists: unique names
// and addresses, and addresses that are usable hosts of their network.
func (c *compiler) checkSlots() {
	for _, s := range c.d.Slots {
		src := c.src[s]
		claim(c, c.names, s.PermanentName, src.pos, src.field, "name "+s.PermanentName+" ("+s.Key+")", "give the slots different roles or ids")
		if s.Name != s.PermanentName {
			claim(c, c.names, s.Name, src.pos, src.field, "name "+s.Name+" ("+s.Key+")", "give the slots different roles or ids")
		}
		for _, na := range s.Networks {
			pos, field := src.pos, src.field
			if p, ok := src.netPos[na.Network]; ok {
				pos, field = p, src.netFld[na.Network]
			}
			a := na.Address.Addr()
			if problem := hostProblem(src.subnets[na.Network], a, na.Gateway); problem != "" {
				c.errs.add(pos, field, "choose offsets or overrides that land on host addresses", "%s's %s address %s %s", s.Name, na.Network, a, problem)
				continue
			}
			if !claim(c, c.addrs, a, pos, field, fmt.Sprintf("%s address %s of %s", na.Network, a, s.Name), "change the role's addressing offset or the override") {
				continue
			}
			for _, p := range c.pools {
				if a.Compare(p.first) >= 0 && a.Compare(p.last) <= 0 {
					c.errs.add(pos, field, "move the pool or the role's offset", "%s's %s address %s is inside the %s at %s", s.Name, na.Network, a, p.what, p.pos)
				}
			}
		}
	}
}

func (c *compiler) checkOverlaps() {
	sort.Slice(c.subnets, func(i, j int) bool {
		return addrToUint(c.subnets[i].prefix.Addr()) < addrToUint(c.subnets[j].prefix.Addr())
	})
	// Sorted by start, a subnet can only overlap ones that start before it ends;
	// keeping the furthest end seen makes this linear after the sort.
	var last *subnetOwner
	for i := range c.subnets {
		cur := &c.subnets[i]
		if last != nil && last.prefix.Overlaps(cur.prefix) {
			c.errs.add(cur.pos, "", "give every network its own range", "subnet %s (%s) overlaps %s (%s) at %s", cur.prefix, cur.what, last.prefix, last.what, last.pos)
		}
		if last == nil || addrToUint(broadcast(cur.prefix)) > addrToUint(broadcast(last.prefix)) {
			last = cur
		}
	}
}

// String is a one-line summary of the design.
func (d *Design) String() string {
	pods, switches := 0, 0
	for _, z := range d.Zones {
		pods += len(z.Pods)
		for _, p := range z.Pods {
			switches += len(p.Switches)
		}
	}
	return strconv.Itoa(len(d.Zones)) + " zones, " + strconv.Itoa(pods) + " pods, " + strconv.Itoa(switches) + " switches, " + strconv.Itoa(len(d.Slots)) + " slots"
}
