// Package dnszone turns a design into the DNS zones drover serves with
// authority: a forward zone per domain (A for every slot in every network,
// CNAME from a variant name to the permanent name) and the reverse zones of
// the pods' subnets (PTR), each with its SOA and NS. It is pure: the
// nameserver serves what it builds, and `drover dns export` writes it out.
package dnszone

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/drover/drover/internal/zone"
)

// SOA timers drover writes; the negative-caching TTL is the zone's TTL.
const (
	Refresh = 15 * time.Minute
	Retry   = 5 * time.Minute
	Expire  = 14 * 24 * time.Hour
)

// Zone is one DNS zone drover is authoritative for.
type Zone struct {
	Origin string // fully qualified, lower case, with the trailing dot
	Notify []netip.AddrPort
	soa    *dns.SOA
	rrs    []dns.RR            // every record but the SOA, sorted
	names  map[string][]dns.RR // owner → its records
	exists map[string]bool     // owners and the empty non-terminals above them
	digest string
}

// Set is every zone drover serves, found by the longest matching origin.
type Set struct {
	zones  []*Zone
	origin map[string]*Zone
}

// Build makes the zones of a design, all with serial 0 (see Set.Serials).
func Build(d *zone.Design) *Set {
	b := builder{zones: map[string]*building{}}
	policies := map[string]zone.DNSPolicy{}
	for _, z := range d.Zones {
		if _, ok := policies[z.Domain]; !ok {
			policies[z.Domain] = z.DNSPolicy()
		}
	}
	for _, z := range d.Zones {
		p := policies[z.Domain]
		b.zone(p.Domain, p)
		for _, pod := range z.Pods {
			for _, n := range pod.Networks {
				for _, rz := range reverseZones(n.Prefix()) {
					b.zone(rz, p)
				}
			}
		}
	}
	for _, s := range d.Slots {
		p := policies[s.Domain]
		ttl := uint32(p.TTL.Seconds())
		perm := dns.Fqdn(s.PermanentName + "." + s.Domain)
		for _, na := range s.Networks {
			a := na.Address.Addr()
			if !a.IsValid() {
				continue
			}
			name, variant := perm, ""
			if s.Name != s.PermanentName {
				variant = dns.Fqdn(s.Name + "." + s.Domain)
			}
			if na.Network != "boot" {
				f := zone.RecordFields{Name: s.PermanentName, Network: na.Network, Zone: s.Zone, Pod: s.Pod, Role: s.Role}
				name = dns.Fqdn(p.RecordName(f) + "." + s.Domain)
				if variant != "" {
					f.Name = s.Name
					variant = dns.Fqdn(p.RecordName(f) + "." + s.Domain)
				}
			}
			b.add(&dns.A{Hdr: hdr(name, dns.TypeA, ttl), A: a.AsSlice()})
			if variant != "" {
				b.add(&dns.CNAME{Hdr: hdr(variant, dns.TypeCNAME, ttl), Target: name})
			}
			rev, _ := dns.ReverseAddr(a.String())
			for _, rz := range reverseZones(na.Address.Masked()) {
				b.zone(rz, p)
			}
			b.add(&dns.PTR{Hdr: hdr(rev, dns.TypePTR, ttl), Ptr: name})
		}
	}
	return b.finish()
}

func hdr(name string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: strings.ToLower(name), Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

// reverseZones are the in-addr.arpa zones covering an IPv4 subnet, cut at
// octet boundaries no finer than /24 (a /22 is four /24 zones, a /26 lives
// in its /24, a /16 is one zone).
func reverseZones(p netip.Prefix) []string {
	if !p.IsValid() || !p.Addr().Is4() {
		return nil
	}
	p = p.Masked()
	bits := min(24, max(8, (p.Bits()+7)/8*8))
	n := 1
	if p.Bits() < bits {
		n = 1 << (bits - p.Bits())
	}
	a := p.Addr().As4()
	start := binary.BigEndian.Uint32(a[:]) &^ (1<<(32-bits) - 1)
	out := make([]string, 0, n)
	for i := range n {
		v := start + uint32(i)<<(32-bits)
		var labels []string
		for o := bits/8 - 1; o >= 0; o-- {
			labels = append(labels, strconv.Itoa(int(v>>(24-8*o)&0xff)))
		}
		out = append(out, strings.Join(labels, ".")+".in-addr.arpa.")
	}
	return out
}

type building struct {
	origin string
	policy zone.DNSPolicy
	rrs    []dns.RR
}

type builder struct {
	zones map[string]*building
}

func (b *builder) zone(origin string, p zone.DNSPolicy) {
	origin = strings.ToLower(dns.Fqdn(origin))
	if _, ok := b.zones[origin]; !ok {
		b.zones[origin] = &building{origin: origin, policy: p}
	}
}

// add puts a record into the most specific zone that holds its owner name.
func (b *builder) add(rr dns.RR) {
	name := rr.Header().Name
	for _, i := range dns.Split(name) {
		if z, ok := b.zones[name[i:]]; ok {
			z.rrs = append(z.rrs, rr)
			return
		}
	}
}

func (b *builder) finish() *Set {
	set := &Set{origin: map[string]*Zone{}}
	for _, bz := range b.zones {
		z := &Zone{Origin: bz.origin, Notify: bz.policy.Notify, names: map[string][]dns.RR{}, exists: map[string]bool{}}
		p := bz.policy
		ttl := uint32(p.TTL.Seconds())
		var rrs []dns.RR
		for _, ns := range p.Nameservers {
			rrs = append(rrs, &dns.NS{Hdr: hdr(z.Origin, dns.TypeNS, ttl), Ns: dns.Fqdn(ns.Name)})
			if ns.Address.IsValid() && dns.IsSubDomain(z.Origin, dns.Fqdn(ns.Name)) && !strings.HasSuffix(z.Origin, ".arpa.") {
				rrs = append(rrs, &dns.A{Hdr: hdr(ns.Name+".", dns.TypeA, ttl), A: ns.Address.AsSlice()})
			}
		}
		rrs = append(rrs, bz.rrs...)
		sortRecords(rrs)
		rrs = dedup(rrs)
		user, domain, _ := strings.Cut(p.Contact, "@")
		z.soa = &dns.SOA{Hdr: hdr(z.Origin, dns.TypeSOA, ttl), Ns: dns.Fqdn(p.Nameservers[0].Name),
			Mbox:    strings.ReplaceAll(user, ".", `\.`) + "." + dns.Fqdn(domain),
			Refresh: uint32(Refresh.Seconds()), Retry: uint32(Retry.Seconds()), Expire: uint32(Expire.Seconds()), Minttl: ttl}
		z.rrs = rrs
		h := sha256.New()
		fmt.Fprintln(h, z.soa.Ns, z.soa.Mbox, z.soa.Minttl, z.soa.Hdr.Ttl)
		for _, rr := range rrs {
			fmt.Fprintln(h, rr.String())
		}
		z.digest = hex.EncodeToString(h.Sum(nil))
		z.names[z.Origin] = append(z.names[z.Origin], z.soa)
		for _, rr := range rrs {
			name := rr.Header().Name
			z.names[name] = append(z.names[name], rr)
		}
		for name := range z.names {
			for _, i := range dns.Split(name) {
				if dns.CountLabel(name[i:]) < dns.CountLabel(z.Origin) {
					break
				}
				z.exists[name[i:]] = true
			}
		}
		set.zones = append(set.zones, z)
		set.origin[z.Origin] = z
	}
	sort.Slice(set.zones, func(i, j int) bool { return set.zones[i].Origin < set.zones[j].Origin })
	return set
}

// sortRecords orders records for output: by owner in DNS order (labels
// from the right, RFC 4034 6.1, numeric labels by value so that .2 sorts
// before .10), then type, then text.
func sortRecords(rrs []dns.RR) {
	type keyed struct {
		key, text string
		rr        dns.RR
	}
	ks := make([]keyed, len(rrs))
	for i, rr := range rrs {
		labels := dns.SplitDomainName(rr.Header().Name)
		slices.Reverse(labels)
		for j, l := range labels {
			if n, err := strconv.Atoi(l); err == nil && n >= 0 && len(l) <= 3 {
				labels[j] = fmt.Sprintf("%03d", n)
			}
		}
		ks[i] = keyed{key: strings.Join(labels, "\x00") + fmt.Sprintf("\x00%05d", rr.Header().Rrtype), text: rr.String(), rr: rr}
	}
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].key != ks[j].key {
			return ks[i].key < ks[j].key
		}
		return ks[i].text < ks[j].text
	})
	for i := range ks {
		rrs[i] = ks[i].rr
	}
}

func dedup(rrs []dns.RR) []dns.RR {
	out := rrs[:0]
	for i, rr := range rrs {
		if i > 0 && dns.IsDuplicate(rr, rrs[i-1]) {
			continue
		}
		out = append(out, rr)
	}
	return out
}

// Zones are the set's zones in origin order.
func (s *Set) Zones() []*Zone { return s.zones }

// Zone is the zone with exactly that origin.
func (s *Set) Zone(origin string) *Zone { return s.origin[strings.ToLower(dns.Fqdn(origin))] }

// Find is the zone with the longest origin that holds name, or nil.
func (s *Set) Find(name string) *Zone {
	name = strings.ToLower(dns.Fqdn(name))
	for _, i := range dns.Split(name) {
		if z, ok := s.origin[name[i:]]; ok {
			return z
		}
	}
	return nil
}

// Serials gives every zone its serial: a zone whose content is unchanged
// since prev keeps its serial; a new or changed zone gets the design's
// applied time (seconds since 1970, as BIND's "unixtime" serials), and
// always more than it had before, so secondaries see every change.
func (s *Set) Serials(prev *Set, applied time.Time) {
	at := uint32(applied.Unix())
	for _, z := range s.zones {
		var old *Zone
		if prev != nil {
			old = prev.origin[z.Origin]
		}
		switch {
		case old == nil:
			z.soa.Serial = at
		case old.digest == z.digest:
			z.soa.Serial = old.soa.Serial
		default:
			z.soa.Serial = at
			if !serialGreater(at, old.soa.Serial) {
				z.soa.Serial = old.soa.Serial + 1
			}
		}
	}
}

// serialGreater is RFC 1982 serial number arithmetic.
func serialGreater(a, b uint32) bool { return a != b && int32(a-b) > 0 }

// SOA is the zone's SOA record.
func (z *Zone) SOA() *dns.SOA { return z.soa }

// Serial is the zone's serial.
func (z *Zone) Serial() uint32 { return z.soa.Serial }

// Records are every record of the zone but the SOA, in output order.
func (z *Zone) Records() []dns.RR { return z.rrs }

// Lookup is an owner name's records; exists is false when the name is not
// in the zone at all (NXDOMAIN), true for an empty non-terminal.
func (z *Zone) Lookup(name string) (rrs []dns.RR, exists bool) {
	name = strings.ToLower(name)
	return z.names[name], z.exists[name]
}

// WriteTo writes the zone as a BIND master file.
func (z *Zone) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "; zone %s, written by drover; serial %d\n$ORIGIN %s\n", z.Origin, z.soa.Serial, z.Origin)
	b.WriteString(z.soa.String() + "\n")
	for _, rr := range z.rrs {
		b.WriteString(rr.String() + "\n")
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
