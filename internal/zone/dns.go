package zone

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"text/template"
	"time"
)

// DNSZone is how drover's authoritative DNS serves a zone's domain (`dns:` in a
// zone file). Zones sharing a domain must agree on it.
type DNSZone struct {
	Meta Meta
	// TTL of every record drover serves (default 5m).
	TTL string `yaml:"ttl"`
	// Records names a host's record in a network other than boot, relative to
	// the domain (default "{{.Name}}.{{.Network}}"); the boot network's record
	// is the permanent name itself.
	Records string `yaml:"records"`
	// Contact is the mailbox of the SOA (default hostmaster@DOMAIN).
	Contact string `yaml:"contact"`
	// Nameservers are the NS records (default: ns1, ns2, ... under the domain,
	// one per dns_servers address, or ns1.DOMAIN when there are none).
	Nameservers []*Nameserver `yaml:"nameservers"`
	// Notify are the secondaries told of every change (address or address:port).
	Notify []string `yaml:"notify"`
}

// Nameserver is an NS record; an address makes drover serve its A record
// when the name is inside the domain.
type Nameserver struct {
	Meta    Meta
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
}

// DefaultDNSTTL is the TTL of drover's records when the zone sets none.
const DefaultDNSTTL = 5 * time.Minute

// DNSPolicy is a zone's DNS settings with defaults filled in.
type DNSPolicy struct {
	Domain      string
	TTL         time.Duration
	Contact     string // as a mailbox, user@domain
	Nameservers []NameserverSpec
	Notify      []netip.AddrPort
	records     *template.Template
}

// NameserverSpec is a parsed Nameserver; Address is invalid when none was given.
type NameserverSpec struct {
	Name    string
	Address netip.Addr
}

// RecordFields are what a record-name template can use.
type RecordFields struct {
	Name    string // the permanent name (or, for a variant CNAME, the name)
	Network string
	Zone    string
	Pod     string
	Role    string
}

// DNSPolicy returns the zone's DNS settings with defaults.
func (z *Zone) DNSPolicy() DNSPolicy {
	d := &z.DNSZone
	p := DNSPolicy{Domain: z.Domain, TTL: DefaultDNSTTL, Contact: d.Contact, records: z.dnsRecords}
	if t, err := time.ParseDuration(d.TTL); err == nil && d.TTL != "" {
		p.TTL = t
	}
	if p.Contact == "" {
		p.Contact = "hostmaster@" + z.Domain
	}
	for _, ns := range d.Nameservers {
		a, _ := netip.ParseAddr(ns.Address)
		p.Nameservers = append(p.Nameservers, NameserverSpec{Name: strings.TrimSuffix(strings.ToLower(ns.Name), "."), Address: a})
	}
	if len(p.Nameservers) == 0 {
		for i, a := range z.dns {
			p.Nameservers = append(p.Nameservers, NameserverSpec{Name: fmt.Sprintf("ns%d.%s", i+1, z.Domain), Address: a})
		}
	}
	if len(p.Nameservers) == 0 {
		p.Nameservers = []NameserverSpec{{Name: "ns1." + z.Domain}}
	}
	for _, s := range d.Notify {
		if ap, ok := parseAddrPort(s, 53); ok {
			p.Notify = append(p.Notify, ap)
		}
	}
	return p
}

// RecordName is a host's name in a network other than boot, relative to the domain.
func (p DNSPolicy) RecordName(f RecordFields) string {
	if p.records == nil { // the default, {{.Name}}.{{.Network}}, without a template per record
		return strings.ToLower(f.Name + "." + f.Network)
	}
	var b bytes.Buffer
	if err := p.records.Execute(&b, f); err != nil {
		return f.Name + "." + f.Network
	}
	return strings.ToLower(b.String())
}

func parseAddrPort(s string, port uint16) (netip.AddrPort, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, ap.Addr().Is4()
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, port), true
}

// dns checks a zone's dns section.
func (c *compiler) dns(z *Zone) {
	d := &z.DNSZone
	m := &d.Meta
	c.duration(m, "ttl", d.TTL)
	if t, err := time.ParseDuration(d.TTL); err == nil && d.TTL != "" && (t < time.Second || t > 7*24*time.Hour) {
		c.errs.add(m.PosOf("ttl"), m.PathOf("ttl"), "write a TTL from 1s to 168h, e.g. 5m", "%s is out of range", d.TTL)
	}
	if d.Records != "" {
		t, err := template.New("records").Option("missingkey=error").Parse(d.Records)
		if err != nil {
			c.errs.add(m.PosOf("records"), m.PathOf("records"), "fields: .Name .Network .Zone .Pod .Role, e.g. {{.Name}}.{{.Network}}", "bad template: %v", err)
		} else {
			var b bytes.Buffer
			err := t.Execute(&b, RecordFields{Name: "host-01", Network: "storage", Zone: z.Name, Pod: "p1", Role: "compute"})
			if err != nil || !validDomain(strings.ToLower(b.String())) {
				c.errs.add(m.PosOf("records"), m.PathOf("records"), "render DNS labels joined by dots, e.g. {{.Name}}.{{.Network}}", "the template renders %q, not a DNS name", b.String())
			} else {
				z.dnsRecords = t
			}
		}
	}
	if d.Contact != "" {
		user, domain, ok := strings.Cut(d.Contact, "@")
		if !ok || user == "" || strings.ContainsAny(user, " \t") || !validDomain(domain) {
			c.errs.add(m.PosOf("contact"), m.PathOf("contact"), "write a mailbox like hostmaster@example.org", "%q is not a mailbox", d.Contact)
		}
	}
	for i, ns := range d.Nameservers {
		nm := &ns.Meta
		if !validDomain(strings.TrimSuffix(strings.ToLower(ns.Name), ".")) {
			c.errs.add(nm.PosOf("name"), fmt.Sprintf("%s[%d].name", m.PathOf("nameservers"), i), "write a host name like ns1."+z.Domain, "%q is not a DNS name", ns.Name)
		}
		if ns.Address != "" {
			if a, err := netip.ParseAddr(ns.Address); err != nil || !a.Is4() {
				c.errs.add(nm.PosOf("address"), fmt.Sprintf("%s[%d].address", m.PathOf("nameservers"), i), "write an IPv4 address", "%q is not an IPv4 address", ns.Address)
			}
		}
	}
	for i, s := range d.Notify {
		if _, ok := parseAddrPort(s, 53); !ok {
			c.errs.add(m.PosOf("notify"), fmt.Sprintf("%s[%d]", m.PathOf("notify"), i), "write an IPv4 address, optionally with :port", "%q is not an IPv4 address", s)
		}
	}
}

// checkDomains makes zones that share a domain agree on how it is served,
// and every DNS name a host gets unique.
func (c *compiler) checkDomains() {
	first := map[string]*Zone{}
	for _, z := range c.d.Zones {
		f, ok := first[z.Domain]
		if !ok {
			first[z.Domain] = z
			continue
		}
		a, b := f.DNSPolicy(), z.DNSPolicy()
		if fmt.Sprint(a.TTL, a.Contact, a.Nameservers, a.Notify, f.DNSZone.Records) != fmt.Sprint(b.TTL, b.Contact, b.Nameservers, b.Notify, z.DNSZone.Records) {
			m := &z.DNSZone.Meta
			c.errs.add(m.At, "dns", "write the same dns section in every zone of domain "+z.Domain+" (or leave it out of all but one)",
				"zone %s serves domain %s differently from zone %s", z.Name, z.Domain, f.Name)
		}
	}
	policies := map[string]DNSPolicy{}
	for _, z := range c.d.Zones {
		policies[z.Name] = z.DNSPolicy()
	}
	names := map[string]owner{}
	const fix = "give dns.records a template that keeps hosts and networks apart, e.g. {{.Name}}.{{.Network}}"
	for _, s := range c.d.Slots {
		p, ok := policies[s.Zone]
		if !ok {
			continue
		}
		src := c.src[s]
		hostNames := []string{s.PermanentName}
		if s.Name != s.PermanentName {
			hostNames = append(hostNames, s.Name)
		}
		for _, n := range hostNames {
			if !claim(c, names, n+"."+s.Domain, src.pos, src.field, fmt.Sprintf("DNS name %s.%s", n, s.Domain), fix) {
				return // one collision says what is wrong; the rest would repeat it
			}
			for _, na := range s.Networks {
				if na.Network == "boot" {
					continue
				}
				fqdn := p.RecordName(RecordFields{Name: n, Network: na.Network, Zone: s.Zone, Pod: s.Pod, Role: s.Role}) + "." + s.Domain
				if !claim(c, names, fqdn, src.pos, src.field, fmt.Sprintf("DNS name %s (%s in %s)", fqdn, n, na.Network), fix) {
					return
				}
			}
		}
	}
}

// Prefix is the network's subnet.
func (n *Network) Prefix() netip.Prefix { return n.prefix }
