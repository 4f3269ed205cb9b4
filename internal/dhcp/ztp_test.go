package dhcp

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/drover/drover/internal/counter"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/zone"
)

func TestZTPClient(t *testing.T) {
	tests := []struct {
		name string
		mods []dhcpv4.Modifier
		want string
	}{
		{"ONIE", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("onie_vendor:x86_64-accton_as7712_32x-r0"))}, ZTPONIE},
		{"SONiC", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("SONiC:202305"))}, ZTPSONiC},
		{"Arista EOS", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("Arista;DCS-7050SX3-48YC8;12.00;JPE123"))}, ZTPEOS},
		{"NX-OS POAP", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("Cisco N9K-C93180YC-EX"))}, ZTPNXOS},
		{"Cumulus by vendor class", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("cumulus-linux x86_64"))}, ZTPCumulus},
		{"asks for option 239", []dhcpv4.Modifier{dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, optProvisionURL)}, ZTPScript},
		{"a host's OS", []dhcpv4.Modifier{dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter)}, ""},
		{"PXE", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001"))}, ""},
	}
	for _, tt := range tests {
		req, err := dhcpv4.NewDiscovery(net.HardwareAddr{2, 0, 0, 0, 0, 1}, tt.mods...)
		if err != nil {
			t.Fatal(err)
		}
		if got := ZTPClient(req); got != tt.want {
			t.Errorf("%s: ZTPClient = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// labWithOS is the lab design with its switches running network OS osName,
// an ONIE installer and, for SONiC, a ztp.json template.
func labWithOS(t *testing.T, osName string) (*zone.Zone, *zone.Slot) {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile("../../examples/lab/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer("    cumulus:  ", "    "+osName+":  ", "os: cumulus", "os: "+osName,
		"      templates:\n        ztp:", "      installer: onie/"+osName+".bin\n      templates:\n        ztp.json: templates/switch/frr.conf\n        ztp:").Replace(string(b))
	os.WriteFile(filepath.Join(dir, "lab.yaml"), []byte(text), 0o644)
	if err := os.CopyFS(filepath.Join(dir, "templates"), os.DirFS("../../examples/lab/templates")); err != nil {
		t.Fatal(err)
	}
	d, err := zone.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ix := zone.NewIndex(d)
	return d.Zones[0], ix.Slot("p1-lom1/swp7")
}

// The answers follow what each network OS's ZTP documentation says its
// client reads: Cumulus Linux option 239 (cumulus-provision-url); SONiC
// option 67 (ztp_json_url) and 239 (a provisioning script); Arista EOS
// option 67 (a script URL); NX-OS POAP option 66 (server) and 67 (script
// path); ONIE option 114 (default-url, the installer).
func TestZTPAnswers(t *testing.T) {
	const base = "http://10.77.250.1:8080"
	tests := []struct {
		os, client            string
		opt239, opt114, opt66 string
		file                  string
		refused               bool
	}{
		{zone.OSCumulus, ZTPScript, base + "/ztp/T/ztp", "", "", "", false},
		{zone.OSCumulus, ZTPCumulus, base + "/ztp/T/ztp", "", "", "", false},
		{zone.OSCumulus, "", base + "/ztp/T/ztp", "", "", "", false},
		{zone.OSCumulus, ZTPONIE, "", base + "/ztp/T/onie-installer", "", "", false},
		{zone.OSCumulus, ZTPEOS, "", "", "", "", true},
		{zone.OSSONiC, ZTPSONiC, base + "/ztp/T/ztp", "", "", base + "/ztp/T/ztp.json", false},
		{zone.OSSONiC, ZTPScript, base + "/ztp/T/ztp", "", "", base + "/ztp/T/ztp.json", false},
		{zone.OSEOS, ZTPEOS, "", "", "", base + "/ztp/T/ztp", false},
		{zone.OSEOS, ZTPScript, "", "", "", "", true},
		{zone.OSNXOS, ZTPNXOS, "", "", base, "/ztp/T/ztp", false},
		{zone.OSNXOS, ZTPONIE, "", base + "/ztp/T/onie-installer", "", "", false},
	}
	for _, tt := range tests {
		z, s := labWithOS(t, tt.os)
		a := answerZTP(tt.client, s, z, base, "T")
		got := func(code uint8) string { return string(a.options.Get(dhcpv4.GenericOptionCode(code))) }
		if got(239) != tt.opt239 || got(114) != tt.opt114 || got(66) != tt.opt66 || a.bootFile != tt.file || (a.why != "") != tt.refused {
			t.Errorf("%s switch, %q client: 239=%q 114=%q 66=%q file=%q why=%q", tt.os, tt.client, got(239), got(114), got(66), a.bootFile, a.why)
		}
	}
}

func TestZTPThroughTheLoMSwitch(t *testing.T) {
	fl, st := testFleet(t)
	h := &Handler{Leases: fl, HTTPPort: 8080, Stats: &counter.Set{}}
	lom := net.IPv4(10, 77, 8, 1)
	ask239 := dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, optProvisionURL)

	// The switch on p1-lom1 swp7 is p1-tor1, whatever its MAC.
	for _, mac := range []string{"52:54:00:aa:07:01", "52:54:00:aa:07:02"} {
		disc, _ := dhcpv4.NewDiscovery(mustMAC(mac), relayed(lom, "swp7", "p1-lom1"), ask239)
		rep, err := handle(t, h, disc)
		if err != nil || rep == nil {
			t.Fatalf("discover from %s: %v", mac, err)
		}
		off := rep.Packet
		url := string(off.GetOneOption(optProvisionURL))
		if !off.YourIPAddr.Equal(net.IPv4(10, 77, 8, 241)) || off.HostName() != "p1-tor1" || !strings.HasPrefix(url, "http://10.77.250.1:8080/ztp/") ||
			!strings.HasSuffix(url, "/ztp") || off.BootFileName != "" || rep.To.String() != "10.77.8.1:67" {
			t.Errorf("offer to %s: %s (option 239 %q)", mac, off.Summary(), url)
		}
	}

	if got := h.Stats.Snapshot()["ztp|cumulus"]; got != 2 {
		t.Errorf("ztp|cumulus counted %d answers, want 2", got)
	}

	// A switch on a port the design does not map is recorded, and gets nothing.
	mac := mustMAC("52:54:00:aa:04:01")
	disc, _ := dhcpv4.NewDiscovery(mac, relayed(lom, "swp4", "p1-lom1"), dhcpv4.WithOption(dhcpv4.OptClassIdentifier("onie_vendor:x86_64-accton_as7712_32x-r0")))
	if rep, err := handle(t, h, disc); rep != nil || err == nil {
		t.Fatalf("unknown switch answered: %v %v", rep, err)
	}
	m, ok := fl.Machine(mac.String())
	if !ok || m.State != machine.Discovered || m.Location != "p1-lom1/swp4" || m.SlotKey != "" {
		t.Fatalf("unknown switch recorded as %+v", m)
	}
	waitFor(t, func() bool {
		tl, _ := st.Timeline(t.Context(), m.ID, 0, 0)
		for _, e := range tl {
			if e.Kind == machine.KindDiscovered && strings.Contains(e.Reason, "switch ZTP client (onie)") {
				return true
			}
		}
		return false
	})
}
