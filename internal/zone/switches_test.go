package zone

import (
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of switch configurations")

// fabricBase is the base design with a fabric: both ToRs provisioned, their
// management ports on a lom switch.
func fabricBase(t *testing.T) string {
	return strings.NewReplacer(
		"addressing:\n", "fabric:\n  asn: 65100\n  os:\n    cumulus:\n      installer: onie/cumulus.bin\n      templates: {ztp: ztp.sh, frr.conf: frr.conf}\naddressing:\n  switch: 240\n",
		"      p1-tor1:\n        kind: tor\n", "      p1-tor1:\n        kind: tor\n        os: cumulus\n        id: 1\n        uplinks: [swp49-swp50]\n",
		"      p1-tor2:\n        kind: tor\n", "      p1-tor2:\n        kind: tor\n        os: cumulus\n        id: 2\n        asn: 4200000002\n        uplinks: [swp9]\n",
		"pins:", "      p1-lom1:\n        kind: lom\n        relay: 10.11.0.1\n        remote_id: p1-lom1\n        ports: [eth1-eth8]\n        slots:\n          - {ports: eth1, bmc_of: compute, ids: 1}\n          - {ports: eth7, switch: p1-tor1}\n          - {ports: eth8, switch: p1-tor2}\npins:",
	).Replace(readBase(t))
}

const frrTemplate = `hostname {{.Name}}
router bgp {{.ASN}}
 bgp router-id {{.RouterID}}
{{- range .Uplinks}}
 neighbor {{.}} interface remote-as external
{{- end}}
{{- range .Ports}}{{if .Use}}
interface {{.Name}}
 description {{.Description}}{{if .Address.IsValid}}
 ip address {{.Address}}{{end}}
{{- end}}{{end}}
`

const ztpTemplate = `#!/bin/sh
# CUMULUS-AUTOPROVISIONING
mgmt={{.Mgmt.Address}} gw={{.Mgmt.Gateway}}
relay={{.Relay.Shape}} giaddr={{.Relay.Address}} remote-id={{.Relay.RemoteID}} servers={{.Relay.Servers}} ports={{len .Relay.Ports}}
curl -o frr.conf '{{index .Files "frr.conf"}}'
curl -d status=installed '{{.PhoneHome}}?token={{.Token}}'
{{- range .Networks}}
network {{.Name}} {{.Subnet}} gateway {{.Gateway}}
{{- end}}
`

func TestSwitchSlots(t *testing.T) {
	d, ps := parseWith(t, fabricBase(t), map[string]string{"ztp.sh": ztpTemplate, "frr.conf": frrTemplate})
	if ps != nil {
		t.Fatal(ps)
	}
	ix := NewIndex(d)
	tests := []struct {
		key, name, addr string
		asn             int64
	}{
		{"p1-lom1/eth7", "p1-tor1", "10.11.0.241", 65101},
		{"p1-lom1/eth8", "p1-tor2", "10.11.0.242", 4200000002},
	}
	for _, tt := range tests {
		s := ix.Slot(tt.key)
		if s == nil || !s.IsSwitch() || s.Name != tt.name || s.Address.String() != tt.addr || s.Role != SwitchRole || s.NetworkOS != "cumulus" {
			t.Errorf("slot %s = %+v", tt.key, s)
			continue
		}
		if sw := d.Zones[0].Switch(tt.name); sw.ASN != tt.asn || sw.ManagementSlot() != s || sw.Installer() != "onie/cumulus.bin" {
			t.Errorf("switch %s: ASN %d, management slot %v", tt.name, sw.ASN, sw.ManagementSlot())
		}
	}
	// A replaced switch is the same switch: its management port names it.
	id := ix.Resolve(Query{Relay: mustAddr("10.11.0.1"), HasOption82: true, CircuitID: "eth7", RemoteID: "p1-lom1", MAC: mustMAC("52:54:00:aa:00:01")})
	if id.Slot == nil || id.Slot.Name != "p1-tor1" || id.BMC {
		t.Errorf("management port resolves to %+v", id)
	}
	// An unmapped lom port is presumed a BMC, unless the client says it is a switch.
	if id := ix.Resolve(Query{Relay: mustAddr("10.11.0.1"), HasOption82: true, CircuitID: "eth5", RemoteID: "p1-lom1", ZTP: true}); id.BMC || id.Known() {
		t.Errorf("unknown switch on a lom port resolves to %+v", id)
	}
}

func TestSwitchRenderGolden(t *testing.T) {
	d, ps := parseWith(t, fabricBase(t), map[string]string{"ztp.sh": ztpTemplate, "frr.conf": frrTemplate})
	if ps != nil {
		t.Fatal(ps)
	}
	for _, name := range []string{"p1-tor1", "p1-tor2"} {
		files, err := d.Zones[0].Switch(name).Render(SwitchRuntime{URL: "http://10.10.0.2:8080", Server: "10.10.0.2", Token: "t0k"})
		if err != nil {
			t.Fatal(err)
		}
		for file, got := range files {
			golden := filepath.Join("testdata", "switch", name+"."+file)
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestSwitchRenderGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s %s differs from %s:\n%s", name, file, golden, got)
			}
		}
	}
}

func TestSwitchValidation(t *testing.T) {
	good := map[string]string{"ztp.sh": ztpTemplate, "frr.conf": frrTemplate}
	tests := []struct {
		name      string
		edit      [2]string
		templates map[string]string
		want      string
	}{
		{"unknown os", [2]string{"os: cumulus\n        id: 1", "os: junos\n        id: 1"}, good,
			`pods.p1.switches.p1-tor1.os: unknown network OS "junos"`},
		{"os drover cannot provision", [2]string{"    cumulus:\n", "    junos:\n"}, good,
			`fabric.os.junos: drover provisions no network OS "junos"`},
		{"no id", [2]string{"        id: 1\n", ""}, good,
			`pods.p1.switches.p1-tor1.id: switch p1-tor1 is provisioned but has no id`},
		{"duplicate id", [2]string{"        id: 2\n", "        id: 1\n"}, good,
			`switch id 1 (p1-tor2) is already used by switch id 1 (p1-tor1)`},
		{"no addressing rule", [2]string{"  switch: 240\n", ""}, good,
			`no addressing rule for switches in pod p1`},
		{"uplink is a host port", [2]string{"uplinks: [swp9]", "uplinks: [swp8]"}, good,
			`port swp8 is both a host port and an uplink`},
		{"two management ports", [2]string{"switch: p1-tor2}", "switch: p1-tor1}"}, good,
			`switch p1-tor1's management port is already p1-lom1/eth7`},
		{"switch mapping with a role", [2]string{"{ports: eth7, switch: p1-tor1}", "{ports: eth7, switch: p1-tor1, role: compute}"}, good,
			`a switch mapping has no role`},
		{"unknown switch", [2]string{"switch: p1-tor2}", "switch: p1-tor9}"}, good,
			`unknown switch "p1-tor9"`},
		{"reserved role", [2]string{"  mgmt:\n    profile: debian\n", "  mgmt:\n    profile: debian\n  switch: {profile: debian}\n"}, good,
			`role name "switch" is reserved`},
		{"no ztp template", [2]string{"templates: {ztp: ztp.sh, frr.conf: frr.conf}", "templates: {frr.conf: frr.conf}"}, good,
			`fabric.os.cumulus.templates.ztp: the OS has no ztp template`},
		{"missing template file", [2]string{"frr.conf: frr.conf}", "frr.conf: bgp.conf}"}, good,
			`template file`},
		{"bad ASN", [2]string{"asn: 4200000002", "asn: 4294967296"}, good,
			`ASN 4294967296 is out of range`},
		{"installer outside the artifacts", [2]string{"installer: onie/cumulus.bin", "installer: ../cumulus.bin"}, good,
			`is not a relative artifact path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := fabricBase(t)
			if !strings.Contains(text, tt.edit[0]) {
				t.Fatalf("edit %q does not apply", tt.edit[0])
			}
			_, ps := parseWith(t, strings.Replace(text, tt.edit[0], tt.edit[1], 1), tt.templates)
			if !strings.Contains(ps.Error(), tt.want) {
				t.Errorf("problems lack %q:\n%v", tt.want, ps)
			}
		})
	}
}

// A template error is a design error at the template's own line, and no
// switch ever gets part of its files.
func TestSwitchTemplateErrors(t *testing.T) {
	tests := []struct {
		name, frr string
		line      int
		want      string
	}{
		{"syntax", "hostname {{.Name}}\nrouter bgp {{.ASN}\n", 2, "bad character"},
		{"unknown field", "hostname {{.Name}}\n\nrouter bgp {{.AS}}\n", 3, "can't evaluate field AS"},
		{"unknown field on a later line", "{{index .Files \"nope\" | printf \"%s\"}}\nx {{.Nope.Deeper}}\n", 2, "can't evaluate field Nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ps := parseWith(t, fabricBase(t), map[string]string{"ztp.sh": ztpTemplate, "frr.conf": tt.frr})
			if len(ps) == 0 {
				t.Fatal("the design validated")
			}
			p := ps[0]
			if filepath.Base(p.Pos.File) != "frr.conf" || p.Pos.Line != tt.line || !strings.Contains(p.Msg, tt.want) || p.Field != "fabric.os.cumulus.templates.frr.conf" {
				t.Errorf("problem = %v at %+v, want frr.conf:%d %q", p, p.Pos, tt.line, tt.want)
			}
		})
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}
