package dnszone

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/drover/drover/internal/zone"
)

func load(t *testing.T, edit func(string) string) *zone.Design {
	t.Helper()
	b, err := os.ReadFile("../zone/testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if edit != nil {
		text = edit(text)
	}
	path := filepath.Join(t.TempDir(), "bgo.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := zone.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestReverseZones(t *testing.T) {
	tests := []struct {
		prefix string
		want   []string
	}{
		{"10.10.0.0/24", []string{"0.10.10.in-addr.arpa."}},
		{"10.10.0.64/26", []string{"0.10.10.in-addr.arpa."}},
		{"10.99.0.4/30", []string{"0.99.10.in-addr.arpa."}},
		{"10.20.4.0/22", []string{"4.20.10.in-addr.arpa.", "5.20.10.in-addr.arpa.", "6.20.10.in-addr.arpa.", "7.20.10.in-addr.arpa."}},
		{"172.16.0.0/16", []string{"16.172.in-addr.arpa."}},
		{"172.16.0.0/15", []string{"16.172.in-addr.arpa.", "17.172.in-addr.arpa."}},
		{"10.0.0.0/8", []string{"10.in-addr.arpa."}},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			if got := reverseZones(netip.MustParsePrefix(tt.prefix)); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// answer is the text of an owner's records of one type.
func answer(z *Zone, name string, t uint16) []string {
	rrs, _ := z.Lookup(name)
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == t {
			f := strings.Fields(rr.String())
			out = append(out, f[len(f)-1])
		}
	}
	return out
}

func TestBuild(t *testing.T) {
	set := Build(load(t, nil))
	var origins []string
	for _, z := range set.Zones() {
		origins = append(origins, z.Origin)
	}
	want := []string{"0.10.10.in-addr.arpa.", "0.11.10.in-addr.arpa.", "0.99.10.in-addr.arpa.", "bgo.example.org."}
	if !slices.Equal(origins, want) {
		t.Fatalf("zones %v, want %v", origins, want)
	}
	fwd := set.Find("BGO-compute-01.bgo.example.org")
	if fwd == nil || fwd.Origin != "bgo.example.org." {
		t.Fatalf("Find: %v", fwd)
	}
	tests := []struct {
		zone, name string
		rtype      uint16
		want       []string
	}{
		{"bgo.example.org.", "bgo-compute-01.bgo.example.org.", dns.TypeA, []string{"10.10.0.11"}},
		{"bgo.example.org.", "bgo-compute-01.bmc.bgo.example.org.", dns.TypeA, []string{"10.11.0.11"}},
		{"bgo.example.org.", "bgo-compute-lvm-21.bgo.example.org.", dns.TypeCNAME, []string{"bgo-compute-21.bgo.example.org."}},
		{"bgo.example.org.", "bgo-compute-lvm-21.bmc.bgo.example.org.", dns.TypeCNAME, []string{"bgo-compute-21.bmc.bgo.example.org."}},
		{"bgo.example.org.", "bgo.example.org.", dns.TypeNS, []string{"ns1.bgo.example.org."}},
		{"bgo.example.org.", "ns1.bgo.example.org.", dns.TypeA, []string{"10.10.0.53"}},
		{"0.10.10.in-addr.arpa.", "11.0.10.10.in-addr.arpa.", dns.TypePTR, []string{"bgo-compute-01.bgo.example.org."}},
		{"0.11.10.in-addr.arpa.", "11.0.11.10.in-addr.arpa.", dns.TypePTR, []string{"bgo-compute-01.bmc.bgo.example.org."}},
		{"0.10.10.in-addr.arpa.", "0.10.10.in-addr.arpa.", dns.TypeNS, []string{"ns1.bgo.example.org."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := answer(set.Zone(tt.zone), tt.name, tt.rtype); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if _, exists := fwd.Lookup("bmc.bgo.example.org."); !exists {
		t.Error("bmc.bgo.example.org is an empty non-terminal: it exists")
	}
	if _, exists := fwd.Lookup("nosuch.bgo.example.org."); exists {
		t.Error("nosuch.bgo.example.org exists")
	}
	soa := fwd.SOA()
	if soa.Ns != "ns1.bgo.example.org." || soa.Mbox != "hostmaster.bgo.example.org." || soa.Minttl != 300 {
		t.Errorf("SOA %v", soa)
	}
}

func TestPolicyFromTheDesign(t *testing.T) {
	d := load(t, func(s string) string {
		return strings.Replace(s, "dns_servers: [10.10.0.53]\n", `dns_servers: [10.10.0.53]
dns:
  ttl: 1h
  records: "{{.Network}}-{{.Name}}"
  contact: dns.admin@example.org
  nameservers:
    - {name: ns.example.net}
    - {name: a.ns.bgo.example.org, address: 10.10.0.54}
`, 1)
	})
	fwd := Build(d).Zone("bgo.example.org")
	if got := answer(fwd, "bmc-bgo-compute-01.bgo.example.org.", dns.TypeA); !slices.Equal(got, []string{"10.11.0.11"}) {
		t.Errorf("record template: %v", got)
	}
	if got := answer(fwd, "bgo.example.org.", dns.TypeNS); !slices.Equal(got, []string{"a.ns.bgo.example.org.", "ns.example.net."}) {
		t.Errorf("NS %v", got)
	}
	if got := answer(fwd, "a.ns.bgo.example.org.", dns.TypeA); !slices.Equal(got, []string{"10.10.0.54"}) {
		t.Errorf("glue %v", got)
	}
	soa := fwd.SOA()
	if soa.Ns != "ns.example.net." || soa.Mbox != `dns\.admin.example.org.` || soa.Hdr.Ttl != 3600 {
		t.Errorf("SOA %v", soa)
	}
}

func TestSerials(t *testing.T) {
	d := load(t, nil)
	t0 := time.Unix(1_800_000_000, 0)
	first := Build(d)
	first.Serials(nil, t0)
	if got := first.Zone("bgo.example.org").Serial(); got != 1_800_000_000 {
		t.Fatalf("first serial %d", got)
	}
	same := Build(d)
	same.Serials(first, t0.Add(time.Hour))
	if got := same.Zone("bgo.example.org").Serial(); got != 1_800_000_000 {
		t.Errorf("unchanged zone got serial %d, want it kept", got)
	}
	changed := Build(load(t, func(s string) string { return strings.Replace(s, "compute: 10", "compute: 20", 1) }))
	changed.Serials(same, t0) // the same second (or a clock that went back)
	if got := changed.Zone("bgo.example.org").Serial(); got != 1_800_000_001 {
		t.Errorf("changed zone in the same second: serial %d, want 1800000001", got)
	}
}

func TestZoneFile(t *testing.T) {
	set := Build(load(t, nil))
	set.Serials(nil, time.Unix(1_800_000_000, 0))
	var b strings.Builder
	if _, err := set.Zone("bgo.example.org").WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	zp := dns.NewZoneParser(strings.NewReader(b.String()), "", "")
	n := 0
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if n == 0 && rr.Header().Rrtype != dns.TypeSOA {
			t.Fatalf("first record %v, want the SOA", rr)
		}
		n++
	}
	if err := zp.Err(); err != nil {
		t.Fatal(err)
	}
	if want := 1 + len(set.Zone("bgo.example.org").Records()); n != want {
		t.Errorf("zone file has %d records, want %d", n, want)
	}
}
