package lab

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/netns"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

// ztpHook is the lab switch's ZTP client: ISC dhclient's hook on the
// management port, doing what Cumulus Linux's ZTP does after its DHCP.
//
//go:embed ztp-hook.sh
var ztpHook string

// switchDir holds the lab switches' own directories (ZTP files, FRR's
// configuration, pid files and vty sockets), by lab prefix. FRR's daemons run
// as the frr user, which must reach them: the state directory may not let it.
const switchDir = "/run/drover-lab-switches"

// newSwitchDir makes a switch's directory afresh: every lab starts with
// factory-fresh switches.
func newSwitchDir(st *State, name string) (string, error) {
	if err := os.MkdirAll(switchDir, 0o755); err != nil {
		return "", err
	}
	os.Chmod(switchDir, 0o755)
	dir := filepath.Join(switchDir, st.Prefix+name)
	os.RemoveAll(dir)
	return dir, os.MkdirAll(dir, 0o755)
}

// The fabric's links: the spine's link to drover and the lom switches' links.
func spineLink() (boot, spine netip.Addr) {
	return netip.MustParseAddr("172.31.251.253"), netip.MustParseAddr("172.31.251.254")
}

func lomLink(i int) (boot, lom netip.Addr) {
	a := agentBase().As4()
	a[3] = byte(128 + 4*i + 1)
	boot = netip.AddrFrom4(a)
	a[3]++
	return boot, netip.AddrFrom4(a)
}

// spineASN is the lab spine's ASN: the fabric's base, which no switch has (ids start at 1).
func spineASN(d *zone.Design) int64 {
	for _, z := range d.Zones {
		if z.Fabric.ASN > 0 {
			return z.Fabric.ASN
		}
	}
	return 65000
}

// fabric is the lab's provisioned switches: a spine namespace running FRR
// that every provisioned ToR's uplink is cabled to, and the lom switches
// their management ports are cabled to.
type fabric struct {
	spineNS string
	dir     string
	tors    []*zone.Switch
	links   int // spine ports cabled so far
}

// wireSpine makes the spine namespace and its link to drover.
func wireSpine(n *netns.Net, st *State, addNS func(string) (string, error)) (*fabric, error) {
	for _, bin := range []string{"/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "/usr/bin/vtysh"} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("the lab's switches run FRR, which is not installed (%s): apt-get install frr", bin)
		}
	}
	ns, err := addNS("spine")
	if err != nil {
		return nil, err
	}
	boot, spine := spineLink()
	if err := firstErr(n.Veth("boot", "spine0", "spine", "uplink"), n.Addr("boot", "spine0", boot.String()+"/30"),
		n.Addr("spine", "uplink", spine.String()+"/30"), n.Forward("spine"), n.Route("spine", "default", boot.String())); err != nil {
		return nil, err
	}
	dir, err := newSwitchDir(st, "spine")
	if err != nil {
		return nil, err
	}
	return &fabric{spineNS: ns, dir: dir}, nil
}

// cableToR cables a provisioned ToR's first uplink to the spine and routes
// its pod's host networks from drover through the spine.
func (f *fabric) cableToR(n *netns.Net, sw *zone.Switch, p *zone.Pod) error {
	uplinks := sw.UplinkNames()
	if len(uplinks) == 0 {
		return fmt.Errorf("switch %s is provisioned by ZTP but has no `uplinks:`: the lab cables its first uplink to the spine", sw.Name)
	}
	if len(uplinks[0]) > 15 {
		return fmt.Errorf("uplink %s of %s cannot be a Linux interface name", uplinks[0], sw.Name)
	}
	port := fmt.Sprintf("t%d", f.links)
	f.links++
	if err := n.Veth("spine", port, sw.Name, uplinks[0]); err != nil {
		return err
	}
	_, spine := spineLink()
	var routes []netip.Prefix
	if pfx, _ := p.Boot(); pfx.IsValid() && sw.BootNetwork == zone.ShapePod {
		routes = append(routes, pfx)
	}
	if b := sw.PortBlock(); b.IsValid() {
		routes = append(routes, b)
	}
	for _, r := range routes {
		if out, err := exec.Command("ip", "-n", n.NS("boot"), "route", "replace", r.String(), "via", spine.String()).CombinedOutput(); err != nil {
			return fmt.Errorf("route %s via the spine: %v: %s", r, err, out)
		}
	}
	f.tors = append(f.tors, sw)
	return nil
}

// startSpine runs FRR in the spine: BGP unnumbered to every ToR port, a
// default route offered to them (drover is behind the spine).
func (f *fabric) startSpine(st *State, asn int64) error {
	_, spine := spineLink()
	var b strings.Builder
	fmt.Fprintf(&b, "frr defaults datacenter\nhostname spine\nlog stdout informational\n!\nrouter bgp %d\n bgp router-id %s\n", asn, spine)
	b.WriteString(" neighbor tors peer-group\n neighbor tors remote-as external\n neighbor tors timers connect 2\n")
	for i := range f.links {
		fmt.Fprintf(&b, " neighbor t%d interface peer-group tors\n", i)
	}
	b.WriteString(" address-family ipv4 unicast\n  neighbor tors default-originate\n exit-address-family\nexit\n")
	conf := filepath.Join(f.dir, "frr.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if out, err := exec.Command("chown", "-R", "frr:frr", f.dir).CombinedOutput(); err != nil {
		return fmt.Errorf("FRR's directory: %v: %s (is frr installed? apt-get install frr)", err, out)
	}
	for _, d := range []string{"zebra", "bgpd"} {
		args := []string{"/usr/lib/frr/" + d, "-N", "spine", "-f", conf, "-i", filepath.Join(f.dir, d+".pid"),
			"--vty_socket", f.dir, "-z", filepath.Join(f.dir, "zserv.api")}
		if err := startHelper(st, f.spineNS, filepath.Join(f.dir, d+".log"), args); err != nil {
			return err
		}
	}
	return nil
}

// lomSwitch is a lab lom switch cabled to provisioned switches' management ports.
type lomSwitch struct {
	zone  string
	sw    *zone.Switch
	pod   *zone.Pod
	ports []string // its ports with a management port on them
}

// cableManagement cables every provisioned ToR's management port (eth0) to
// the port of its lom switch the design names, and runs that lom switch's
// relay, so that the ToR's ZTP DHCP names its location like any machine's.
func (f *fabric) cableManagement(cfg *Config, n *netns.Net, st *State, ix *zone.Index, addNS func(string) (string, error), relayTo func(zone, pod string) netip.Addr) error {
	var loms []*lomSwitch
	byName := map[string]*lomSwitch{}
	for _, tor := range f.tors {
		s := tor.ManagementSlot()
		if s.Switch == "" {
			return fmt.Errorf("switch %s's management port is pinned by MAC: the lab cables management ports to a lom switch port (`{ports: PORT, switch: %s}`)", tor.Name, tor.Name)
		}
		l := byName[s.Switch]
		if l == nil {
			z := ix.Zone(s.Zone)
			sw := z.Switch(s.Switch)
			if sw.Kind == "tor" {
				return fmt.Errorf("switch %s's management port is on ToR %s: the lab cables management ports to a lom or core switch", tor.Name, sw.Name)
			}
			var pod *zone.Pod
			for _, p := range z.Pods {
				if p.Name == s.Pod {
					pod = p
				}
			}
			l = &lomSwitch{zone: s.Zone, sw: sw, pod: pod}
			byName[s.Switch] = l
			loms = append(loms, l)
			if _, err := addNS(sw.Name); err != nil {
				return err
			}
		}
		if err := n.Veth(l.sw.Name, s.Port, tor.Name, "eth0"); err != nil {
			return err
		}
		l.ports = append(l.ports, s.Port)
	}
	bootNS := n.NS("boot")
	for i, l := range loms {
		drv, far := lomLink(i)
		link := fmt.Sprintf("lom%d", i)
		if err := firstErr(n.Veth("boot", link, l.sw.Name, "uplink"), n.Addr("boot", link, drv.String()+"/30"),
			n.Addr(l.sw.Name, "uplink", far.String()+"/30"), n.Forward(l.sw.Name), n.Route(l.sw.Name, "default", drv.String())); err != nil {
			return err
		}
		giaddr := l.sw.RelayAddr()
		if !giaddr.IsValid() {
			_, giaddr = l.pod.Boot()
		}
		rid := l.sw.RemoteID
		if rid == "" {
			rid = l.sw.Name
		}
		args := []string{cfg.Drover, "lab", "switch", "--switch", rid, "--server", relayTo(l.zone, l.pod.Name).String(), "--uplink", "uplink",
			"--giaddr", giaddr.String(), "--boot-ns", bootNS, "--uplink-ip", far.String()}
		for _, port := range l.ports {
			if err := n.Addr(l.sw.Name, port, giaddr.String()+"/32"); err != nil {
				return err
			}
			args = append(args, "--port", port)
		}
		if err := n.Route("boot", giaddr.String()+"/32", far.String()); err != nil {
			return err
		}
		if err := startHelper(st, n.NS(l.sw.Name), filepath.Join(filepath.Dir(st.DB), l.sw.Name+"-switch.log"), args); err != nil {
			return err
		}
	}
	return nil
}

// startZTP powers the provisioned ToRs on: each runs ISC dhclient on its
// management port with the ZTP client as its hook.
func (f *fabric) startZTP(cfg *Config, st *State) error {
	for _, tor := range f.tors {
		dir, err := newSwitchDir(st, tor.Name)
		if err != nil {
			return err
		}
		hook := filepath.Join(dir, "ztp-hook")
		// The switch's logs stay in the state directory when the lab ends.
		scriptLog := filepath.Join(cfg.StateDir, tor.Name+"-ztp-script.log")
		body := strings.NewReplacer("@ZTP_ROOT@", dir, "@DROVER@", cfg.Drover, "@SCRIPT_LOG@", scriptLog).Replace(ztpHook)
		if err := os.WriteFile(hook, []byte(body), 0o755); err != nil {
			return err
		}
		conf := filepath.Join(dir, "dhclient.conf")
		if err := os.WriteFile(conf, []byte("option cumulus-provision-url code 239 = text;\n"+
			"request subnet-mask, routers, domain-name, domain-name-servers, host-name, cumulus-provision-url;\n"), 0o644); err != nil {
			return err
		}
		args := []string{"dhclient", "-d", "-4", "-sf", hook, "-lf", filepath.Join(dir, "dhclient.leases"),
			"-pf", filepath.Join(dir, "dhclient.pid"), "-cf", conf, "eth0"}
		if err := startHelper(st, netns.New(st.Prefix).NS(tor.Name), filepath.Join(cfg.StateDir, tor.Name+"-ztp.log"), args); err != nil {
			return err
		}
	}
	return nil
}

// waitProvisioned waits until every provisioned ToR reported its ZTP script
// done (deployed) and the spine has a BGP session established with each, and
// prints how long each took.
func (f *fabric) waitProvisioned(ctx context.Context, cfg *Config, st *State, started time.Time) error {
	db, err := store.OpenSQLite(ctx, st.DB)
	if err != nil {
		return err
	}
	defer db.Close()
	deployed := map[string]time.Duration{}
	var bgpAt time.Duration
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ms, err := db.Machines(ctx, store.MachineFilter{})
		if err == nil {
			for _, tor := range f.tors {
				for _, m := range ms {
					if _, seen := deployed[tor.Name]; !seen && m.SlotKey == tor.ManagementSlot().Key && m.State == machine.Deployed {
						deployed[tor.Name] = time.Since(started)
					}
				}
			}
		}
		if bgpAt == 0 && f.established(ctx) == len(f.tors) {
			bgpAt = time.Since(started)
		}
		if len(deployed) == len(f.tors) && bgpAt > 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("switches not provisioned after 3 minutes (%d of %d deployed, %d BGP sessions established): see %s/*-ztp.log and *-ztp-script.log",
				len(deployed), len(f.tors), f.established(ctx), cfg.StateDir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	if cfg.Progress != nil {
		for _, tor := range f.tors {
			fmt.Fprintf(cfg.Progress, "  switch %-14s provisioned by ZTP in %s (AS %d)\n", tor.Name, deployed[tor.Name].Round(100*time.Millisecond), tor.ASN)
		}
		fmt.Fprintf(cfg.Progress, "  fabric: %d BGP sessions established with the spine %s after power-on\n", len(f.tors), bgpAt.Round(100*time.Millisecond))
	}
	st.Fabric = &FabricState{Spine: f.spineNS, VTYSocket: f.dir, Switches: len(f.tors), Provisioned: time.Now()}
	return nil
}

// established counts the spine's BGP sessions in state Established.
func (f *fabric) established(ctx context.Context) int {
	n, _ := BGPEstablished(ctx, f.spineNS, f.dir)
	return n
}

// BGPEstablished asks FRR in a namespace (vtysh on its vty socket directory)
// how many BGP sessions are established.
func BGPEstablished(ctx context.Context, ns, vtyDir string) (int, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "vtysh", "--vty_socket", vtyDir, "-c", "show bgp summary json").Output()
	if err != nil {
		return 0, fmt.Errorf("vtysh in %s: %w", ns, err)
	}
	var sum map[string]struct {
		Peers map[string]struct {
			State string `json:"state"`
		} `json:"peers"`
	}
	if err := json.Unmarshal(out, &sum); err != nil {
		return 0, fmt.Errorf("vtysh in %s: %w", ns, err)
	}
	n := 0
	for _, p := range sum["ipv4Unicast"].Peers {
		if p.State == "Established" {
			n++
		}
	}
	return n, nil
}
