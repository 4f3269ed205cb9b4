package zone

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const marker = "»"

func readBase(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// markerPos finds the marker in text and returns the text without it and the marker's line and column.
func markerPos(text string) (string, int, int) {
	i := strings.Index(text, marker)
	if i < 0 {
		return text, 0, 0
	}
	before := text[:i]
	line := strings.Count(before, "\n") + 1
	col := len([]rune(before[strings.LastIndex(before, "\n")+1:])) + 1
	return strings.Replace(text, marker, "", 1), line, col
}

// parseText validates one zone file written to a temporary directory (so that
// template paths resolve) and returns the design or its problems.
func parseText(t *testing.T, text string) (*Design, Problems) {
	t.Helper()
	return parseWith(t, text, nil)
}

// parseWith is parseText with other files (templates) beside the zone file.
func parseWith(t *testing.T, text string, files map[string]string) (*Design, Problems) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "bgo.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Load(path)
	if err == nil {
		return d, nil
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Load: want Problems, got %v", err)
	}
	return nil, ps
}

func TestBaseDesignIsValid(t *testing.T) {
	d, ps := parseText(t, readBase(t))
	if ps != nil {
		t.Fatalf("base design: %v", ps)
	}
	if got, want := d.String(), "1 zones, 1 pods, 2 switches, 26 slots"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
}

func TestValidationErrors(t *testing.T) {
	tests := []struct {
		name string
		edit [][2]string // replacements applied to the base design; » marks where the error must point
		want string      // substring of the error at the marker
	}{
		{"unknown key", [][2]string{{"        kind: tor\n        relay", "        kind: tor\n        »colour: red\n        relay"}},
			`pods.p1.switches.p1-tor1.colour: unknown key "colour" (known keys:`},
		{"unknown key with suggestion", [][2]string{{"domain: bgo", "»domian: x\ndomain: bgo"}},
			`domian: unknown key "domian" (did you mean "domain"?)`},
		{"wrong type", [][2]string{{"kind: tor\n        relay", "kind: »[tor]\n        relay"}},
			`pods.p1.switches.p1-tor1.kind: expected a single value, found a list`},
		{"rollout bound", [][2]string{{"dns_servers: [10.10.0.53]\n", "dns_servers: [10.10.0.53]\nrollout:\n  max_unavailable: {pod: »0}\n"}},
			`rollout.max_unavailable.pod: "0" is not a positive count or a share like 25% (write a count like 2 or a share like 25%)`},
		{"rollout share", [][2]string{{"dns_servers: [10.10.0.53]\n", "dns_servers: [10.10.0.53]\nrollout:\n  max_unavailable: {pod: »150%}\n"}},
			`rollout.max_unavailable.pod: "150%" is not a share between 1% and 100%`},
		{"rollout unknown role", [][2]string{{"dns_servers: [10.10.0.53]\n", "dns_servers: [10.10.0.53]\nrollout:\n  max_unavailable:\n    roles: »{controler: 1}\n"}},
			`rollout.max_unavailable.roles.controler: unknown role "controler" (name a role of this zone)`},
		{"hook with command and url", [][2]string{{"dns_servers: [10.10.0.53]\n", "dns_servers: [10.10.0.53]\nrollout:\n  drain: »{command: x, url: 'http://a/'}\n"}},
			`rollout.drain: the drain hook needs exactly one of command and url (give either`},
		{"health with two checks", [][2]string{{"dns_servers: [10.10.0.53]\n", "dns_servers: [10.10.0.53]\nrollout:\n  health: »{tcp: 22, command: x}\n"}},
			`rollout.health: the health gate needs exactly one check`},
		{"health url", [][2]string{{"dns_servers: [10.10.0.53]\n", "dns_servers: [10.10.0.53]\nrollout:\n  health: {url: »'ftp://{{address}}/'}\n"}},
			`rollout.health.url: "ftp://{{address}}/" is not an HTTP URL`},
		{"order leaves out the zone", [][2]string{{"dns_servers: [10.10.0.53]\n", "dns_servers: [10.10.0.53]\nrollout:\n  order: »[dev, test]\n"}},
			`rollout.order: the order leaves out this zone's own environment prod (add prod to the list)`},
		{"soak", [][2]string{{"dns_servers: [10.10.0.53]\n", "dns_servers: [10.10.0.53]\nrollout:\n  soak: »soon\n"}},
			`rollout.soak: "soon" is not a positive duration`},
		{"bad environment", [][2]string{{"environment: prod", "environment: »production"}},
			`environment: "production" is not allowed (use one of: prod, test, dev)`},
		{"bad domain", [][2]string{{"domain: bgo.example.org", "domain: »BGO_example"}},
			`domain: "BGO_example" is not a valid DNS domain`},
		{"duplicate switch name", [][2]string{{"      p1-tor2:", "      »p1-tor1:"}},
			`pods.p1.switches.p1-tor1: duplicate name "p1-tor1"`},
		{"duplicate slot name", [][2]string{
			{"{ports: swp30, role: storage, ids: 6}", "{ports: swp30, role: storage, ids: 1}"},
			{"{ports: swp1-swp2, role: storage, ids: 1-2}", "{ports: swp1-swp2, role: storage, ids: »1-2}"}},
			`name bgo-storage-01 (p1-tor2/swp1) is already used by name bgo-storage-01 (p1-tor1/swp30)`},
		{"duplicate slot", [][2]string{{"{ports: swp30, role: storage", "{ports: »swp20, role: storage"}},
			`port swp20 of p1-tor1 is already used by port swp20 of p1-tor1 at`},
		{"duplicate address", [][2]string{{"pins:", "overrides:\n  bgo-mgmt-01: {boot: »10.10.0.11}\npins:"}},
			`overrides.bgo-mgmt-01.boot: boot address 10.10.0.11 of bgo-mgmt-01 is already used by boot address 10.10.0.11 of bgo-compute-01`},
		{"address outside subnet", [][2]string{{"pins:", "overrides:\n  bgo-mgmt-01: {boot: »10.12.0.5}\npins:"}},
			`bgo-mgmt-01's boot address 10.12.0.5 is outside 10.10.0.0/24`},
		{"network address", [][2]string{{"pins:", "overrides:\n  bgo-mgmt-01: {bmc: »10.11.0.0}\npins:"}},
			`bgo-mgmt-01's bmc address 10.11.0.0 is the network address of 10.11.0.0/24`},
		{"broadcast address", [][2]string{{"pins:", "overrides:\n  bgo-mgmt-01: {boot: »10.10.0.255}\npins:"}},
			`bgo-mgmt-01's boot address 10.10.0.255 is the broadcast address of 10.10.0.0/24`},
		{"gateway address", [][2]string{{"pins:", "overrides:\n  bgo-mgmt-01: {boot: »10.10.0.1}\npins:"}},
			`bgo-mgmt-01's boot address 10.10.0.1 is the gateway of 10.10.0.0/24`},
		{"offset leaves the subnet", [][2]string{{"storage: 200", "storage: 250"}, {"{ports: swp30, role: storage, ids: 6}", "{ports: swp30, role: storage, ids: »6}"}},
			`bgo-storage-06: offset 250 + id 6 falls outside boot network 10.10.0.0/24 (use a smaller offset or a larger subnet)`},
		{"override of an unknown host", [][2]string{{"pins:", "overrides:\n  »bgo-mgmt-09: {boot: 10.10.0.9}\npins:"}},
			`overrides.bgo-mgmt-09: no host is named "bgo-mgmt-09"`},
		{"overlapping subnets", [][2]string{{"bmc: {subnet: 10.11.0.0/24, gateway: 10.11.0.1}", "bmc: {subnet: »10.10.0.128/25, gateway: 10.10.0.129}"}},
			`subnet 10.10.0.128/25 (pod p1 network bmc) overlaps 10.10.0.0/24 (pod p1 network boot)`},
		{"subnet with host bits", [][2]string{{"subnet: 10.11.0.0/24", "subnet: »10.11.0.7/24"}},
			`pods.p1.networks.bmc.subnet: 10.11.0.7/24 has host bits set (write the network address: 10.11.0.0/24)`},
		{"gateway outside subnet", [][2]string{{"gateway: 10.11.0.1", "gateway: »10.12.0.1"}},
			`pods.p1.networks.bmc.gateway: gateway 10.12.0.1 is outside 10.11.0.0/24`},
		{"same relay address", [][2]string{{"      p1-tor2:", "      p1-lom:\n        kind: lom\n        relay: »10.10.0.4\n      p1-tor2:"}},
			`relay address 10.10.0.4 of switch p1-lom is already used by relay address 10.10.0.4 of switch p1-tor1`},
		{"same remote-id", [][2]string{{"      p1-tor2:", "      p1-lom:\n        kind: lom\n        remote_id: »p1-tor1\n      p1-tor2:"}},
			`remote-id p1-tor1 of switch p1-lom is already used by remote-id p1-tor1 of switch p1-tor1`},
		{"relay outside the boot network", [][2]string{{"relay: 10.10.0.4", "relay: »10.20.0.4"}},
			`relay 10.20.0.4 is outside the pod's boot network 10.10.0.0/24`},
		{"lom port naming no host", [][2]string{{"      p1-tor2:", "      p1-lom1:\n        kind: lom\n        relay: 10.11.0.2\n        ports: [swp1-swp48]\n        slots:\n          - {ports: swp1, bmc_of: compute, ids: »99}\n      p1-tor2:"}},
			`port swp1 of lom switch p1-lom1 names compute id 99, which has no slot in zone bgo`},
		{"one host, two BMC ports", [][2]string{{"      p1-tor2:", "      p1-lom1:\n        kind: lom\n        relay: 10.11.0.2\n        ports: [swp1-swp48]\n        slots:\n          - {ports: swp1, bmc_of: compute, ids: 1}\n          - {ports: »swp2, bmc_of: compute, ids: 1}\n      p1-tor2:"}},
			`bgo-compute-01's BMC is already on p1-lom1/swp1`},
		{"BMC ports on a tor switch", [][2]string{{"{ports: swp30, role: storage, ids: 6}", "{ports: swp30, role: storage, ids: 6}\n          - {ports: swp31, bmc_of: »compute, ids: 1}"}},
			`BMC ports belong on a lom switch`},
		{"lom relay outside the bmc network", [][2]string{{"      p1-tor2:", "      p1-lom1:\n        kind: lom\n        relay: »10.20.0.9\n      p1-tor2:"}},
			`relay 10.20.0.9 is outside the pod's boot or bmc network 10.10.0.0/24 or 10.11.0.0/24`},
		{"redfish not yet", [][2]string{{"dns_servers:", "power: »redfish\ndns_servers:"}},
			`power: the redfish driver is not available yet (use ipmi (most BMCs speak both) or none)`},
		{"unknown power driver", [][2]string{{"  storage:\n    profile: debian", "  storage:\n    power: »wol\n    profile: debian"}},
			`roles.storage.power: "wol" is not allowed (use one of: ipmi, none)`},
		{"sessions on a network that is not bmc", [][2]string{{"boot: {subnet: 10.10.0.0/24, gateway: 10.10.0.1}", "boot: {subnet: 10.10.0.0/24, gateway: 10.10.0.1, sessions: »4}"}},
			`pods.p1.networks.boot.sessions: only the bmc network bounds BMC sessions`},
		{"zero sessions", [][2]string{{"bmc: {subnet: 10.11.0.0/24, gateway: 10.11.0.1}", "bmc: {subnet: 10.11.0.0/24, gateway: 10.11.0.1, sessions: »0}"}},
			`sessions must be at least 1`},
		{"id range shorter than port range", [][2]string{{"ids: 1-20", "ids: »1-19"}},
			`slots[0].ids: 19 ids for 20 ports (swp1-swp20) (make both ranges the same length, e.g. ids: 1-20)`},
		{"malformed id range", [][2]string{{"ids: 1-20", "ids: »one-20"}},
			`slots[0].ids: "one-20" is not an id range like 1-20`},
		{"unknown role", [][2]string{{"role: storage, ids: 6", "role: »storrage, ids: 6"}},
			`slots[2].role: unknown role "storrage" (define it under ` + "`roles:`" + ` or use one of: compute, storage, mgmt)`},
		{"unknown variant", [][2]string{{"variant: lvm", "variant: »ssd"}},
			`slots[1].variant: unknown variant "ssd" of role "compute" (variants of compute: lvm)`},
		{"backwards port range", [][2]string{{"{ports: swp30,", "{ports: »swp30-swp29,"}},
			`slots[2].ports: range "swp30-swp29" runs backwards`},
		{"port not on the switch", [][2]string{{"{ports: swp30,", "{ports: »swp60,"}},
			`port swp60 is not declared on switch p1-tor1`},
		{"malformed switch ports", [][2]string{{"ports: [swp1-swp48]", "ports: »[swp1 - swp48]"}},
			`p1-tor1.ports[0]: "swp1 - swp48" is not a port name or a range like swp1-swp20`},
		{"pins that collide", [][2]string{{"  - {mac: \"52:54:00:00:00:01\", pod: p1, role: mgmt, id: 1}", "  - {mac: \"52:54:00:00:00:01\", pod: p1, role: mgmt, id: 1}\n  - {mac: »\"52:54:00:00:00:01\", pod: p1, role: mgmt, id: 2}"}},
			`pins[1].mac: MAC 52:54:00:00:00:01 is already used by MAC 52:54:00:00:00:01`},
		{"malformed MAC", [][2]string{{"mac: \"52:54:00:00:00:01\"", "mac: »\"52:54:00:00:00\""}},
			`pins[0].mac: "52:54:00:00:00" is not an Ethernet MAC address`},
		{"pin in an unknown pod", [][2]string{{"pod: p1, role: mgmt", "pod: »p9, role: mgmt"}},
			`pins[0].pod: unknown pod "p9"`},
		{"unknown profile", [][2]string{{"  storage:\n    profile: debian", "  storage:\n    profile: »ubuntu"}},
			`roles.storage.profile: unknown profile "ubuntu"`},
		{"missing addressing rule", [][2]string{{"  storage: 200\n", ""}, {"{ports: swp30, role: storage", "{ports: swp30, role: »storage"}},
			"no addressing rule for role storage in pod p1 (add `storage: OFFSET`"},
		{"per-port switch without subnets", [][2]string{{"        port_subnets: 10.99.0.0/24\n", ""}},
			`pods.p1.switches.p1-tor2.port_subnets: a per-port switch needs port_subnets`},
		{"per-port block too small", [][2]string{{"port_subnets: 10.99.0.0/24", "port_subnets: »10.99.0.0/28"}},
			`10.99.0.0/28 holds 2 /29 subnets but the switch declares 8 ports`},
		{"malformed pool", [][2]string{{"boot: {subnet: 10.10.0.0/24, gateway: 10.10.0.1}", "boot: {subnet: 10.10.0.0/24, gateway: 10.10.0.1, pool: »10.10.0.250-10.10.0.240}"}},
			`pods.p1.networks.boot.pool: "10.10.0.250-10.10.0.240" is not an address range`},
		{"pool holding a slot address", [][2]string{{"boot: {subnet: 10.10.0.0/24, gateway: 10.10.0.1}", "boot: {subnet: 10.10.0.0/24, gateway: 10.10.0.1, pool: 10.10.0.200-10.10.0.250}"},
			{"{ports: swp30, role: storage, ids: 6}", "{ports: swp30, role: storage, ids: »6}"}},
			`bgo-storage-06's boot address 10.10.0.206 is inside the pool 10.10.0.200-10.10.0.250`},
		{"dns ttl", [][2]string{{"dns_servers: [10.10.0.53]\n", "dns_servers: [10.10.0.53]\ndns:\n  ttl: »0s\n"}},
			`dns.ttl: 0s is out of range (write a TTL from 1s to 168h`},
		{"dns records template", [][2]string{{"dns_servers: [10.10.0.53]\n", "dns_servers: [10.10.0.53]\ndns:\n  records: »\"{{.Name}_{{.Network}}\"\n"}},
			`dns.records: bad template`},
		{"dns records not a name", [][2]string{{"dns_servers: [10.10.0.53]\n", "dns_servers: [10.10.0.53]\ndns:\n  records: »\"{{.Name}}_{{.Network}}\"\n"}},
			`dns.records: the template renders "host-01_storage", not a DNS name`},
		{"dns records that collide", [][2]string{{"dns_servers: [10.10.0.53]\n", "dns_servers: [10.10.0.53]\ndns:\n  records: \"{{.Network}}\"\n"}},
			`DNS name bmc.bgo.example.org (bgo-compute-02 in bmc) is already used by DNS name bmc.bgo.example.org (bgo-compute-01 in bmc)`},
		{"dns contact", [][2]string{{"dns_servers: [10.10.0.53]\n", "dns_servers: [10.10.0.53]\ndns:\n  contact: »hostmaster\n"}},
			`dns.contact: "hostmaster" is not a mailbox`},
		{"dns nameserver address", [][2]string{{"dns_servers: [10.10.0.53]\n", "dns_servers: [10.10.0.53]\ndns:\n  nameservers:\n    - {name: ns1.bgo.cloud.example.org, address: »10.0.0.300}\n"}},
			`dns.nameservers[0].address: "10.0.0.300" is not an IPv4 address`},
		{"dns notify", [][2]string{{"dns_servers: [10.10.0.53]\n", "dns_servers: [10.10.0.53]\ndns:\n  notify: »[ns2.example.org]\n"}},
			`dns.notify[0]: "ns2.example.org" is not an IPv4 address`},
		{"bad naming template", [][2]string{{"dns_servers:", "naming:\n  template: »\"{{.Zone}\"\ndns_servers:"}},
			`naming.template: bad template`},
		{"template making invalid names", [][2]string{{"dns_servers:", "naming:\n  template: »\"{{.Zone}}_{{.Role}}{{.ID}}\"\ndns_servers:"}},
			`naming.template: the template makes "bgo_compute01"`},
	}
	base := readBase(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := base
			for _, e := range tt.edit {
				if !strings.Contains(text, e[0]) {
					t.Fatalf("fixture does not contain %q", e[0])
				}
				text = strings.Replace(text, e[0], e[1], 1)
			}
			text, line, col := markerPos(text)
			_, ps := parseText(t, text)
			if ps == nil {
				t.Fatal("design accepted, want an error")
			}
			for _, p := range ps {
				if strings.Contains(p.Error(), tt.want) {
					if line != 0 && (p.Pos.Line != line || p.Pos.Col != col) {
						t.Errorf("error at %d:%d, want %d:%d: %v", p.Pos.Line, p.Pos.Col, line, col, p)
					}
					if !strings.HasPrefix(p.Error(), fmt.Sprintf("%s:%d:", p.Pos.File, p.Pos.Line)) || !strings.Contains(p.Error(), "(") {
						t.Errorf("error %q is not file:line:col: field: problem (fix)", p)
					}
					return
				}
			}
			t.Errorf("no error containing %q; got:\n%v", tt.want, ps)
		})
	}
}

func TestSeveralErrorsReportedAtOnce(t *testing.T) {
	text := strings.NewReplacer(
		"environment: prod", "environment: staging",
		"ids: 1-20", "ids: 1-19",
		"variant: lvm", "variant: ssd",
	).Replace(readBase(t))
	_, ps := parseText(t, text)
	if len(ps) != 3 {
		t.Fatalf("got %d problems, want 3:\n%v", len(ps), ps)
	}
	for i := 1; i < len(ps); i++ {
		if ps[i].Pos.Line < ps[i-1].Pos.Line {
			t.Errorf("problems not in file order: %v", ps)
		}
	}
}

func TestSyntaxErrorNamesTheLine(t *testing.T) {
	_, ps := parseText(t, "zone: bgo\nenvironment: prod\npods:\n  p1: [unclosed\n")
	if len(ps) != 1 || ps[0].Pos.Line == 0 || !strings.Contains(ps[0].Error(), "fix the YAML syntax") {
		t.Fatalf("got %v", ps)
	}
}

func TestDuplicateZoneAcrossFiles(t *testing.T) {
	base := readBase(t)
	other := strings.NewReplacer("10.10.", "10.20.", "10.11.", "10.21.", "10.99.", "10.98.", "p1-tor", "p2-tor", "52:54:00:00:00:01", "52:54:00:00:00:02").Replace(base)
	_, err := Parse(map[string][]byte{"a.yaml": []byte(base), "b.yaml": []byte(other)})
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want problems, got %v", err)
	}
	if !strings.Contains(ps.Error(), "b.yaml:1:7: zone: zone bgo is already used by zone bgo at a.yaml:1:7") {
		t.Errorf("got %v", ps)
	}
}

func TestAliasBombIsRejected(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	b.WriteString("zone: *a8\n")
	_, err := Parse(map[string][]byte{"bomb.yaml": []byte(b.String())})
	if err == nil {
		t.Fatal("alias bomb accepted")
	}
}

func TestOneFilesDecodeErrorHidesNoOtherFilesProblems(t *testing.T) {
	base := readBase(t)
	other := strings.NewReplacer("zone: bgo", "zone: osl", "10.10.", "10.20.", "10.11.", "10.21.", "10.99.", "10.98.", "p1-tor", "p2-tor", "52:54:00:00:00:01", "52:54:00:00:00:02").Replace(base)
	cases := []struct {
		name, broken string
	}{
		{"unknown key", strings.Replace(base, "environment: prod", "environment: prod\nenviroment: prod", 1)},
		{"type error", strings.Replace(base, "environment: prod", "environment: [prod]", 1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(map[string][]byte{"a.yaml": []byte(tc.broken), "b.yaml": []byte(strings.Replace(other, "ids: 1-20", "ids: 1-19", 1))})
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want problems, got %v", err)
			}
			files := map[string]int{}
			for _, p := range ps {
				files[p.Pos.File]++
			}
			if files["a.yaml"] != 1 || files["b.yaml"] != 1 || !strings.Contains(ps.Error(), "19 ids for 20 ports") {
				t.Fatalf("want one problem in each file, got:\n%v", ps)
			}
		})
	}
}

func TestMissingTemplateIsReportedAtItsEntry(t *testing.T) {
	dir := t.TempDir()
	text := `zone: bgo
environment: prod
domain: bgo.example.org
profiles:
  ubuntu:
    kernel: k
    templates:
      install: install.sh
      seed: seed.yaml
roles:
  compute: {profile: ubuntu}
`
	if err := os.WriteFile(filepath.Join(dir, "install.sh"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bgo.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want problems, got %v", err)
	}
	for _, p := range ps {
		if strings.Contains(p.Msg, "template file") {
			if p.Pos.Line != 9 || p.Pos.Col != 13 || p.Field != "profiles.ubuntu.templates.seed" {
				t.Fatalf("missing template reported at %v, field %s; want line 9, column 13", p.Pos, p.Field)
			}
			return
		}
	}
	t.Fatalf("no missing-template problem in:\n%v", ps)
}

func TestEmptyFileSaysSo(t *testing.T) {
	for _, text := range []string{"", "\n\n", "# just a comment\n# and another\n"} {
		_, ps := parseText(t, text)
		if len(ps) != 1 || !strings.Contains(ps[0].Error(), "empty or holds only comments") || ps[0].Pos.Line != 1 {
			t.Errorf("%q: got %v", text, ps)
		}
	}
}
