package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/internal/netns"
)

const switchDesign = `zone: ztp
environment: test
domain: ztp.drover.test
dns_servers: [10.X.250.1]
profiles:
  tiny: {kernel: tiny/vmlinuz}
roles:
  compute: {profile: tiny}
addressing:
  compute: 10
  switch: 240
fabric:
  asn: 65200
  os:
    cumulus:
      installer: onie/cumulus.bin
      templates: {ztp: cumulus-ztp.sh, frr.conf: frr.conf}
    eos:
      templates: {ztp: eos-ztp.py}
pods:
  p1:
    networks:
      boot: {subnet: 10.X.0.0/24, gateway: 10.X.0.1}
      bmc: {subnet: 10.X.8.0/24, gateway: 10.X.8.1}
    switches:
      p1-tor1:
        kind: tor
        os: cumulus
        id: 1
        relay: 10.X.0.1
        ports: [swp1-swp4]
        uplinks: [swp49-swp50]
        slots:
          - {ports: swp1-swp2, role: compute, ids: 1-2}
      p1-tor2:
        kind: tor
        os: eos
        id: 2
        boot_network: per-port
        port_subnets: 10.X.100.0/24
        ports: [Ethernet1-Ethernet4]
        slots:
          - {ports: Ethernet1, role: compute, ids: 3}
      p1-lom1:
        kind: lom
        relay: 10.X.8.1
        ports: [swp1-swp8]
        slots:
          - {ports: swp7, switch: p1-tor1}
          - {ports: swp8, switch: p1-tor2}
`

const cumulusZTP = `#!/bin/bash
# CUMULUS-AUTOPROVISIONING
# {{.Name}} AS {{.ASN}} router-id {{.RouterID}}
FRR='{{index .Files "frr.conf"}}'
PHONE_HOME='{{.PhoneHome}}'
TOKEN='{{.Token}}'
RELAY='{{.Relay.Shape}} {{.Relay.Address}} -> {{index .Relay.Servers 0}}'
`

const switchFRR = `hostname {{.Name}}
router bgp {{.ASN}}
{{- range .Uplinks}}
 neighbor {{.}} interface remote-as external
{{- end}}
{{- range .Ports}}{{if .Use}}
interface {{.Name}}
 description {{.Description}}
{{- end}}{{end}}
`

const eosZTP = `#!/usr/bin/env python3
# {{.Name}}: EOS zero-touch script
ASN = {{.ASN}}
INTERFACES = [{{range $i, $p := .Ports}}{{if $i}}, {{end}}"{{$p.Name}} {{$p.Address}}"{{end}}]
`

// TestSwitchZTP is a switch's zero-touch provisioning through real ISC
// clients: dhcrelay as the lom switch (option 82 circuit-id = its port),
// dhclient as each switch's firmware (ONIE, Cumulus ZTP, Arista EOS ZTP),
// curl fetching what the answers point at.
//
//	s7 (p1-tor1's mgmt) --swp7--+
//	s8 (p1-tor2's mgmt) --swp8--+-- lom (dhcrelay) --up0-- srv (drover serve)
//	s4 (a stranger)     --swp4--+
func TestSwitchZTP(t *testing.T) {
	require(t, map[string]string{"dhclient": "isc-dhcp-client", "dhcrelay": "isc-dhcp-relay", "curl": "curl"})
	x := 100 + int(time.Now().UnixNano()%150)
	ip := func(format string, a ...any) string { return fmt.Sprintf("10.%d."+format, append([]any{x}, a...)...) }
	dir := t.TempDir()
	n := netns.New("dz" + randomID() + "-")
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"drover.log", "lom.log"} {
				if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
					t.Logf("%s (tail):\n%s", f, tail(string(b), 40))
				}
			}
		}
		if err := n.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	for _, ns := range []string{"srv", "lom", "s7", "s8", "s4"} {
		must(t, n.AddNS(ns))
	}
	must(t, n.Veth("srv", "m0", "lom", "up0"))
	must(t, n.Addr("srv", "m0", ip("250.1/30")))
	must(t, n.Addr("lom", "up0", ip("250.2/30")))
	must(t, n.Route("srv", ip("8.0/24"), ip("250.2")))
	must(t, n.Route("lom", "default", ip("250.1")))
	must(t, n.Forward("lom"))
	relay := []string{"dhcrelay", "-4", "-d", "-q", "-a", "-m", "replace"}
	for _, c := range []struct{ ns, port string }{{"s7", "swp7"}, {"s8", "swp8"}, {"s4", "swp4"}} {
		must(t, n.Veth("lom", c.port, c.ns, "eth0"))
		must(t, n.Addr("lom", c.port, ip("8.1/32")))
		relay = append(relay, "-id", c.port)
	}
	// The lom switch routes each switch's management address to its port.
	for addr, port := range map[string]string{ip("8.241/32"): "swp7", ip("8.242/32"): "swp8"} {
		if out, err := exec.Command("ip", "-n", n.NS("lom"), "route", "add", addr, "dev", port).CombinedOutput(); err != nil {
			t.Fatalf("route %s: %v: %s", addr, err, out)
		}
	}
	relay = append(relay, "-iu", "up0", "-pf", filepath.Join(dir, "lom.pid"), ip("250.1"))
	if _, err := n.Start("lom", filepath.Join(dir, "lom.log"), nil, relay...); err != nil {
		t.Fatal(err)
	}

	design := filepath.Join(dir, "design")
	must(t, os.MkdirAll(design, 0o755))
	for name, body := range map[string]string{"ztp.yaml": strings.ReplaceAll(switchDesign, "10.X.", ip("")), "cumulus-ztp.sh": cumulusZTP,
		"frr.conf": switchFRR, "eos-ztp.py": eosZTP} {
		must(t, os.WriteFile(filepath.Join(design, name), []byte(body), 0o644))
	}
	installer := bytes.Repeat([]byte("onie-installer "), 4000)
	must(t, os.MkdirAll(filepath.Join(dir, "artifacts", "onie"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "artifacts", "onie", "cumulus.bin"), installer, 0o644))
	db := filepath.Join(dir, "drover.db")
	srv, err := n.Start("srv", filepath.Join(dir, "drover.log"), nil, droverBin, "--db", db, "serve", "--state-dir", dir,
		"--artifacts", filepath.Join(dir, "artifacts"), "--design", design, "--log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "drover to listen", 20*time.Second, func() bool {
		if srv.Exited() {
			t.Fatalf("drover exited: %v", srv.Wait())
		}
		out, err := n.Run(context.Background(), "srv", "curl", "-sf", "http://127.0.0.1:8080/healthz")
		return err == nil && strings.TrimSpace(string(out)) == "ok"
	})

	// dhclient runs once as a switch's firmware would and reports the lease.
	dhclient := func(ns, mac, conf string) map[string]string {
		t.Helper()
		must(t, n.SetMAC(ns, "eth0", mac))
		out := filepath.Join(dir, ns+".lease")
		os.Remove(out)
		hook := filepath.Join(dir, ns+".hook")
		must(t, os.WriteFile(hook, []byte(`#!/bin/sh
case "$reason" in BOUND|RENEW|REBIND|REBOOT)
  ip addr flush dev "$interface"
  ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
  ip route replace default via "${new_routers%% *}"
  printf 'addr=%s\nhost=%s\nfile=%s\nztp=%s\nonie=%s\n' "$new_ip_address" "$new_host_name" "$new_filename" "$new_cumulus_provision_url" "$new_default_url" > `+out+`
esac
`), 0o755))
		cf := filepath.Join(dir, ns+".conf")
		must(t, os.WriteFile(cf, []byte("timeout 8;\nretry 1;\noption cumulus-provision-url code 239 = text;\noption default-url code 114 = text;\n"+conf), 0o644))
		pid := filepath.Join(dir, ns+".dhclient.pid")
		defer netns.KillPIDFile(pid)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n.Run(ctx, ns, "dhclient", "-1", "-4", "-sf", hook, "-lf", filepath.Join(dir, ns+".leases"), "-pf", pid, "-cf", cf, "eth0")
		lease := map[string]string{}
		b, _ := os.ReadFile(out)
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				lease[k] = v
			}
		}
		return lease
	}
	curl := func(ns string, args ...string) (int, string) {
		t.Helper()
		out, _ := n.Run(context.Background(), ns, append([]string{"curl", "-s", "-w", "\n%{http_code}"}, args...)...)
		s := string(out)
		i := strings.LastIndex(s, "\n")
		var code int
		fmt.Sscan(s[i+1:], &code)
		return code, s[:i]
	}

	// A bare switch boots ONIE, which asks for its installer.
	const onie = "send vendor-class-identifier \"onie_vendor:x86_64-accton_as7712_32x-r0\";\nrequest subnet-mask, routers, host-name, default-url;\n"
	l := dhclient("s7", "52:54:00:07:00:01", onie)
	if l["addr"] != ip("8.241") || l["host"] != "p1-tor1" || !strings.HasSuffix(l["onie"], "/onie-installer") || l["ztp"] != "" {
		t.Fatalf("ONIE lease %v", l)
	}
	if code, body := curl("s7", l["onie"]); code != 200 || body != string(installer) {
		t.Fatalf("ONIE installer: %d, %d bytes", code, len(body))
	}

	// Then Cumulus Linux's ZTP asks for option 239 and runs the script.
	const cumulus = "request subnet-mask, routers, host-name, cumulus-provision-url;\n"
	l = dhclient("s7", "52:54:00:07:00:01", cumulus)
	if l["addr"] != ip("8.241") || !strings.HasSuffix(l["ztp"], "/ztp") || l["file"] != "" {
		t.Fatalf("Cumulus ZTP lease %v", l)
	}
	code, script := curl("s7", l["ztp"])
	if code != 200 || !strings.Contains(script, "CUMULUS-AUTOPROVISIONING") || !strings.Contains(script, "# p1-tor1 AS 65201 router-id "+ip("8.241")) ||
		!strings.Contains(script, "RELAY='pod "+ip("0.1")+" -> "+ip("250.1")+"'") {
		t.Fatalf("ZTP script: %d\n%s", code, script)
	}
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^(\w+)='([^']*)'$`).FindAllStringSubmatch(script, -1) {
		vars[m[1]] = m[2]
	}
	code, frr := curl("s7", vars["FRR"])
	if code != 200 || !strings.Contains(frr, "router bgp 65201\n neighbor swp49 interface remote-as external\n neighbor swp50 interface remote-as external") ||
		!strings.Contains(frr, "interface swp1\n description ztp-compute-01 (compute p1-tor1/swp1)") {
		t.Fatalf("frr.conf: %d\n%s", code, frr)
	}
	if code, _ := curl("s7", strings.Replace(vars["FRR"], vars["TOKEN"], strings.Repeat("0", len(vars["TOKEN"])), 1)); code != 403 {
		t.Errorf("frr.conf with a wrong token: %d, want 403", code)
	}
	if code, _ := curl("s7", "-H", "Authorization: Bearer "+vars["TOKEN"], "-d", "status=installed", vars["PHONE_HOME"]); code != 200 {
		t.Fatalf("phone-home: %d", code)
	}
	if code, body := curl("s7", l["ztp"]); code != 409 || !strings.Contains(body, "deployed") {
		t.Errorf("ZTP script of a deployed switch: %d %s", code, body)
	}
	if code, _ := curl("s7", vars["FRR"]); code != 403 {
		t.Errorf("files after the switch is deployed: %d, want 403", code)
	}
	sw := showJSON(t, db, "p1-tor1")
	if sw.Machine.State != "deployed" || sw.Machine.Slot != "p1-lom1/swp7" {
		t.Errorf("p1-tor1 is %+v", sw.Machine)
	}
	for _, want := range [][2]string{{"ztp", "ONIE installer onie/cumulus.bin"}, {"ztp", "ZTP: provision switch p1-tor1 (cumulus)"},
		{"ztp", "served ztp"}, {"ztp", "served frr.conf"}, {"dhcp-ack", "ZTP client option-239"}, {"ztp", "ZTP refused: the switch is deployed"}} {
		if !hasEntry(sw, want[0], want[1]) {
			t.Errorf("p1-tor1's timeline lacks %s %q: %+v", want[0], want[1], sw.Timeline)
		}
	}

	// A replacement switch on the same management port is p1-tor1.
	l = dhclient("s7", "52:54:00:07:00:02", cumulus)
	if l["addr"] != ip("8.241") || l["host"] != "p1-tor1" || l["ztp"] == "" {
		t.Errorf("replacement switch's lease %v", l)
	}

	// Arista EOS ZTP takes its script URL from the boot file name.
	l = dhclient("s8", "52:54:00:08:00:01", "send vendor-class-identifier \"Arista;DCS-7050SX3-48YC8\";\nrequest subnet-mask, routers, host-name;\n")
	if l["addr"] != ip("8.242") || l["host"] != "p1-tor2" || !strings.HasSuffix(l["file"], "/ztp") || l["ztp"] != "" {
		t.Fatalf("EOS lease %v", l)
	}
	code, eos := curl("s8", l["file"])
	if code != 200 || !strings.Contains(eos, "ASN = 65202") || !strings.Contains(eos, `"Ethernet1 `+ip("100.1/29")+`", "Ethernet2 `+ip("100.9/29")+`"`) {
		t.Errorf("EOS script: %d\n%s", code, eos)
	}

	// A switch on a port the design does not place gets nothing and is recorded.
	if l := dhclient("s4", "52:54:00:04:00:01", onie); l["addr"] != "" {
		t.Errorf("unknown switch got a lease: %v", l)
	}
	out, err := exec.Command(droverBin, "--db", db, "show", "-o", "json", "52:54:00:04:00:01").Output()
	if err != nil {
		t.Fatalf("the unknown switch is not recorded: %v", err)
	}
	var shown struct {
		Machine  map[string]any `json:"machine"`
		Timeline []struct {
			Kind, Reason string
		} `json:"timeline"`
	}
	json.Unmarshal(out, &shown)
	if shown.Machine["state"] != "discovered" || shown.Machine["location"] != "p1-lom1/swp4" || len(shown.Timeline) == 0 ||
		!strings.Contains(shown.Timeline[0].Reason, "switch ZTP client (onie)") {
		t.Errorf("unknown switch recorded as %s", out)
	}
}
