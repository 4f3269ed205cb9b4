// Package lab builds a virtual zone from a design on one Linux machine: a
// namespace running drover, one namespace per ToR switch relaying DHCP the way
// that switch's boot network is shaped, and QEMU machines on the design's ports.
package lab

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/netns"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

// Config configures the lab commands.
type Config struct {
	Design   string   // design file or directory
	StateDir string   // where the lab keeps its state, database, logs and artifacts
	CacheDir string   // where the install image is cached
	Prefix   string   // namespace name prefix
	Drover   string   // the drover binary to run inside the lab
	Agent    string   // the install agent put in the install initrd (default: drover-agent next to Drover)
	Extra    []string // "switch/port": machines on ports the design does not define
	// SecondNICs gives slot machines a second NIC: "name=switch/port", a port
	// without a slot on the same switch as the machine's boot port.
	SecondNICs []string
	Only       []string // boot only these slot names (default: every slot on a ToR port)
	Parallel   int      // machines booting at once (default 4)
	// Follow: drover follows the git repository the design is in (serve
	// --follow, its current branch) instead of reading the design files.
	Follow   bool
	Progress io.Writer // live progress, or nil
	Terminal bool      // Progress is a terminal: redraw in place
	// UntilDeployed ends the lab once every machine in a slot is deployed,
	// after printing how long each took from power-on (to Summary).
	UntilDeployed bool
	Summary       io.Writer
	// Agents runs a pod agent (drover agent) per pod, in a namespace of its
	// own, and the ToRs' relays forward to it instead of to drover serve.
	Agents bool
	Log    *slog.Logger
}

func (c *Config) defaults() {
	if c.StateDir == "" {
		c.StateDir = "/run/drover-lab"
	}
	if c.CacheDir == "" {
		c.CacheDir = "/var/cache/drover/lab"
	}
	if c.Prefix == "" {
		c.Prefix = "drl-"
	}
	if c.Parallel <= 0 {
		c.Parallel = 4
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Agent == "" {
		c.Agent = filepath.Join(filepath.Dir(c.Drover), "drover-agent")
	}
}

// diskBytes is the size of every lab machine's virtio disk.
const diskBytes = 4 << 30

// uplinkBase is where the lab numbers the links between switches and drover.
func uplinkBase() netip.Prefix { return netip.MustParsePrefix("172.31.250.0/23") }

// agentBase numbers the links between drover serve and the pod agents.
func agentBase() netip.Addr { return netip.MustParseAddr("172.31.251.0") }

// ErrRunning is returned by Up when a lab already runs with this state directory.
var ErrRunning = errors.New("a lab is already running")

// Up builds the lab and runs it until ctx ends, then removes it.
func Up(ctx context.Context, cfg Config) error {
	cfg.defaults()
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return err
	}
	upLock, err := lockFile(filepath.Join(cfg.StateDir, "up.lock"), false)
	if err != nil {
		s, _ := readState(cfg.StateDir)
		if s != nil {
			return fmt.Errorf("%w (pid %d, design %s, started %s): use it, or stop it with `drover lab down`", ErrRunning, s.PID, s.Design, s.Started.Format(time.RFC3339))
		}
		return fmt.Errorf("%w (state directory %s is locked): stop it with `drover lab down`", ErrRunning, cfg.StateDir)
	}
	defer upLock.Close()
	if old, err := readState(cfg.StateDir); err == nil {
		cfg.Log.Warn("removing what a previous lab left behind", "pid", old.PID)
		teardown(old)
		os.Remove(statePath(cfg.StateDir))
	}

	d, err := zone.Load(cfg.Design)
	if err != nil {
		return fmt.Errorf("lab design: %w", err)
	}
	for _, p := range d.Subnets() {
		if p.Overlaps(uplinkBase()) {
			return fmt.Errorf("the design uses %s, which overlaps the lab's own links %s", p, uplinkBase())
		}
	}
	img, err := BuildImage(ctx, cfg.CacheDir, cfg.Agent, cfg.Log)
	if err != nil {
		return err
	}
	st := &State{PID: os.Getpid(), Started: time.Now(), Prefix: cfg.Prefix, Design: cfg.Design, Drover: cfg.Drover,
		DB: filepath.Join(cfg.StateDir, "drover.db")}
	for _, f := range []string{st.DB, st.DB + "-wal", st.DB + "-shm"} {
		os.Remove(f)
	}
	if err := writeState(cfg.StateDir, st); err != nil {
		return err
	}
	defer func() {
		s, err := readState(cfg.StateDir)
		if err != nil {
			s = st
		}
		for _, e := range teardown(s) {
			cfg.Log.Error("lab teardown", "err", e)
		}
		os.Remove(statePath(cfg.StateDir))
		if cfg.Progress != nil {
			fmt.Fprintln(cfg.Progress, "lab removed: namespaces, taps and processes are gone")
		}
	}()
	if err := build(ctx, &cfg, d, img, st); err != nil {
		return err
	}
	return run(ctx, &cfg, st)
}

// build makes the namespaces, links, relays, drover and the VM list.
func build(ctx context.Context, cfg *Config, d *zone.Design, img Image, st *State) error {
	n := netns.New(cfg.Prefix)
	save := func() error {
		return withState(cfg.StateDir, func(s *State) error { *s = *st; return nil })
	}
	addNS := func(name string) (string, error) {
		if err := n.AddNS(name); err != nil {
			return "", err
		}
		st.Namespaces = append(st.Namespaces, n.NS(name))
		return n.NS(name), save()
	}
	bootNS, err := addNS("boot")
	if err != nil {
		return err
	}
	artifacts := filepath.Join(cfg.StateDir, "artifacts")
	if err := placeImage(d, img, artifacts); err != nil {
		return err
	}
	if err := catalogueImages(ctx, cfg, d, artifacts, st.DB); err != nil {
		return err
	}
	copySSHKeys(cfg, d)
	only := map[string]bool{}
	for _, o := range cfg.Only {
		only[o] = true
	}
	ix := zone.NewIndex(d)
	extra := map[string][]bootPort{}
	for _, e := range cfg.Extra {
		sw, port, ok := strings.Cut(e, "/")
		if !ok {
			return fmt.Errorf("--extra %q: write SWITCH/PORT", e)
		}
		extra[sw] = append(extra[sw], bootPort{port: port})
	}
	second, err := secondNICs(ix, cfg.SecondNICs)
	if err != nil {
		return err
	}
	for sw, ports := range second {
		extra[sw] = append(extra[sw], ports...)
	}
	serverIP := netip.Addr{}
	agents, err := wireAgents(cfg, n, st, d, ix, only, extra, addNS)
	if err != nil {
		return err
	}
	var fab *fabric
	i := 0
	for _, z := range d.Zones {
		for _, p := range z.Pods {
			for _, sw := range p.Switches {
				if sw.Kind != "tor" {
					continue
				}
				ports := portsToBoot(ix, sw, only, len(cfg.Only) > 0, extra[sw.Name])
				if len(ports) == 0 {
					continue
				}
				if sw.Managed() {
					// A provisioned ToR starts unconfigured, cabled to the
					// spine and to its lom switch: ZTP configures it.
					if fab == nil {
						if fab, err = wireSpine(n, st, addNS); err != nil {
							return err
						}
					}
					ns, err := addNS(sw.Name)
					if err != nil {
						return err
					}
					if err := fab.cableToR(n, sw, p); err != nil {
						return err
					}
					if err := wireSwitch(ctx, cfg, n, st, sw, p, ports, ns, bootNS, netip.Addr{}, netip.Addr{}, ix, z); err != nil {
						return err
					}
					continue
				}
				base := uplinkBase().Addr().As4()
				base[3] = byte(4*i + 1)
				drv := netip.AddrFrom4(base)
				base[3]++
				tor := netip.AddrFrom4(base)
				if !serverIP.IsValid() {
					serverIP = drv
				}
				ns, err := addNS(sw.Name)
				if err != nil {
					return err
				}
				up := fmt.Sprintf("up%d", i)
				if err := n.Veth("boot", up, sw.Name, "uplink"); err != nil {
					return err
				}
				if err := firstErr(n.Addr("boot", up, drv.String()+"/30"), n.Addr(sw.Name, "uplink", tor.String()+"/30"),
					n.Forward(sw.Name), n.Route(sw.Name, "default", drv.String())); err != nil {
					return err
				}
				relayTo := drv
				if a := agents[z.Name+"/"+p.Name]; a != nil {
					relayTo = a.addr
				}
				if err := wireSwitch(ctx, cfg, n, st, sw, p, ports, ns, bootNS, relayTo, tor, ix, z); err != nil {
					return err
				}
				i++
			}
		}
	}
	if len(st.VMs) == 0 {
		return errors.New("the design has no ToR ports with slots to boot")
	}
	if fab != nil {
		if !serverIP.IsValid() {
			serverIP, _ = spineLink()
		}
		relayTo := func(zone, pod string) netip.Addr {
			if a := agents[zone+"/"+pod]; a != nil {
				return a.addr
			}
			return serverIP
		}
		if err := fab.cableManagement(cfg, n, st, ix, addNS, relayTo); err != nil {
			return err
		}
		if err := fab.startSpine(st, spineASN(d)); err != nil {
			return err
		}
	}
	for _, ports := range second {
		for _, bp := range ports {
			if err := attachSecondNIC(st, bp); err != nil {
				return err
			}
		}
	}
	if err := wireBMCs(cfg, n, st, d, ix, addNS); err != nil {
		return err
	}
	st.HTTP = "http://" + serverIP.String() + ":8080"
	st.API = "http://127.0.0.1:9090"
	srv := []string{cfg.Drover, "--db", st.DB, "serve", "--artifacts", artifacts,
		"--http-listen", "0.0.0.0:8080", "--server-ip", serverIP.String(), "--api-listen", "127.0.0.1:9090"}
	if len(agents) > 0 {
		// The agents reach the API over their links.
		srv = append(srv[:len(srv)-1], "0.0.0.0:9090", "--agents")
	}
	if cfg.Follow {
		follow, err := followArgs(ctx, cfg.Design)
		if err != nil {
			return err
		}
		srv = append(srv, follow...)
	} else {
		srv = append(srv, "--design", cfg.Design)
	}
	if st.Secrets != "" {
		srv = append(srv, "--power-secrets", st.Secrets)
	}
	// Hooks and health checks of the lab's designs may read the lab's directory.
	st.Server = Proc{NS: bootNS, Args: srv, Env: []string{"DROVER_LAB_DIR=" + cfg.StateDir}, Log: filepath.Join(cfg.StateDir, "drover.log")}
	if err := startServer(st); err != nil {
		return err
	}
	if err := save(); err != nil {
		return err
	}
	if err := waitHealthy(ctx, bootNS, "http://127.0.0.1:8080/healthz", st.Server.PID, st.Server.Log); err != nil {
		return err
	}
	if err := startAgents(ctx, cfg, st, agents); err != nil {
		return err
	}
	if fab != nil {
		started := time.Now()
		if err := fab.startZTP(cfg, st); err != nil {
			return err
		}
		if err := save(); err != nil {
			return err
		}
		if err := fab.waitProvisioned(ctx, cfg, st, started); err != nil {
			return err
		}
	}
	return save()
}

// waitHealthy waits for a lab process to answer its health check.
func waitHealthy(ctx context.Context, ns, url string, pid int, log string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "curl", "-sf", url).Output(); err == nil && strings.TrimSpace(string(out)) == "ok" {
			return nil
		}
		if time.Now().After(deadline) || !alive(pid) {
			return fmt.Errorf("%s did not start in the lab: see %s", filepath.Base(log), log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

type bootPort struct {
	port string
	slot *zone.Slot // nil for an extra port
	// secondOf names the machine whose second NIC is cabled to this port:
	// the port is wired, but no VM of its own sits on it.
	secondOf string
}

func portsToBoot(ix *zone.Index, sw *zone.Switch, only map[string]bool, filtered bool, extra []bootPort) []bootPort {
	var out []bootPort
	for _, port := range sw.PortNames() {
		s := ix.Slot(sw.Name + "/" + port)
		if s == nil || filtered && !only[s.Name] {
			continue
		}
		out = append(out, bootPort{port: port, slot: s})
	}
	return append(out, extra...)
}

// secondNICs reads "name=switch/port" pairs: a port without a slot on the
// switch of the named machine's boot port (a VM's NICs share its switch's
// namespace in the lab).
func secondNICs(ix *zone.Index, pairs []string) (map[string][]bootPort, error) {
	out := map[string][]bootPort{}
	for _, pair := range pairs {
		name, at, ok := strings.Cut(pair, "=")
		sw, port, ok2 := strings.Cut(at, "/")
		if !ok || !ok2 {
			return nil, fmt.Errorf("--second-nic %q: write NAME=SWITCH/PORT", pair)
		}
		var slot *zone.Slot
		for _, s := range ix.Design().Slots {
			if s.Name == name || s.PermanentName == name {
				slot = s
			}
		}
		switch {
		case slot == nil:
			return nil, fmt.Errorf("--second-nic %q: the design has no slot named %s", pair, name)
		case slot.Switch != sw:
			return nil, fmt.Errorf("--second-nic %q: %s boots on %s; the lab can cable its second NIC only to a port of that switch", pair, name, slot.Switch)
		case ix.Slot(at) != nil:
			return nil, fmt.Errorf("--second-nic %q: %s is the port of %s; give a port without a slot", pair, at, ix.Slot(at).Name)
		}
		out[sw] = append(out[sw], bootPort{port: port, secondOf: slot.Name})
	}
	return out, nil
}

// placeImage puts the install image where every profile of the design expects
// its kernel and first initrd.
func placeImage(d *zone.Design, img Image, dir string) error {
	for _, z := range d.Zones {
		for _, p := range z.Profiles {
			targets := map[string]string{p.Kernel: img.Kernel}
			if len(p.Initrds) > 0 {
				targets[p.Initrds[0]] = img.Initrd
			}
			for rel, src := range targets {
				dst := filepath.Join(dir, filepath.FromSlash(rel))
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					return err
				}
				os.Remove(dst)
				if err := os.Link(src, dst); err != nil {
					b, err := os.ReadFile(src)
					if err != nil {
						return err
					}
					if err := os.WriteFile(dst, b, 0o644); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// wireSwitch makes a switch's ports (taps), its relay and its VMs.
func wireSwitch(ctx context.Context, cfg *Config, n *netns.Net, st *State, sw *zone.Switch, p *zone.Pod, ports []bootPort,
	ns, bootNS string, drv, tor netip.Addr, ix *zone.Index, z *zone.Zone) error {
	// drv is where the switch relays DHCP: drover serve, or the pod's agent.
	agent := []string{cfg.Drover, "lab", "switch", "--switch", sw.Name, "--server", drv.String(), "--uplink", "uplink"}
	dhcrelay := []string{"dhcrelay", "-4", "-d", "-q", "-a", "-m", "replace"}
	for _, bp := range ports {
		if len(bp.port) > 15 || strings.ContainsAny(bp.port, "/ ") {
			return fmt.Errorf("port %s of %s cannot be a Linux interface name: the lab needs port names like swp1", bp.port, sw.Name)
		}
		if out, err := exec.Command("ip", "-n", ns, "tuntap", "add", bp.port, "mode", "tap").CombinedOutput(); err != nil {
			return fmt.Errorf("tap %s in %s: %v: %s", bp.port, ns, err, out)
		}
		if out, err := exec.Command("ip", "-n", ns, "link", "set", bp.port, "up").CombinedOutput(); err != nil {
			return fmt.Errorf("tap %s: %v: %s", bp.port, err, out)
		}
		switch {
		case sw.Managed():
			// Its ZTP script configures the port.
		case sw.BootNetwork == zone.ShapePerPort:
			pfx, gw, _ := sw.PortSubnet(bp.port)
			if !pfx.IsValid() {
				return fmt.Errorf("port %s is not declared on %s", bp.port, sw.Name)
			}
			if err := n.Addr(sw.Name, bp.port, netip.PrefixFrom(gw, pfx.Bits()).String()); err != nil {
				return err
			}
			dhcrelay = append(dhcrelay, "-id", bp.port)
		default:
			_, gw := p.Boot()
			giaddr := sw.RelayAddr()
			if !giaddr.IsValid() {
				giaddr = gw
			}
			if err := n.Addr(sw.Name, bp.port, giaddr.String()+"/32"); err != nil {
				return err
			}
		}
		agent = append(agent, "--port", bp.port)
		if bp.secondOf != "" {
			continue // cabled to a machine on another port: attached once every VM exists
		}
		vm := &VM{Switch: sw.Name, Port: bp.port, NS: ns, Tap: bp.port, Firmware: "bios",
			Log: filepath.Join(cfg.StateDir, "vm-"+sw.Name+"-"+bp.port+".log")}
		if bp.slot != nil {
			vm.Name, vm.Slot = bp.slot.Name, bp.slot.Key
			if bp.slot.Firmware != "" {
				vm.Firmware = bp.slot.Firmware
			}
		} else {
			vm.Name = sw.Name + "/" + bp.port
		}
		vm.MAC = macFor(st.Prefix, vm.Switch+"/"+vm.Port, vm.Gen)
		vm.Disk = filepath.Join(cfg.StateDir, "disk-"+sw.Name+"-"+bp.port+".qcow2")
		if err := newDisk(vm.Disk); err != nil {
			return err
		}
		st.VMs = append(st.VMs, vm)
	}
	if err := startLLDP(st, ns, sw.Name, ports); err != nil {
		return err
	}
	if sw.Managed() {
		// Like real hardware, every declared port exists before the switch is configured.
		wired := map[string]bool{}
		for _, bp := range ports {
			wired[bp.port] = true
		}
		for _, port := range sw.PortNames() {
			if wired[port] {
				continue
			}
			if len(port) > 15 {
				return fmt.Errorf("port %s of %s cannot be a Linux interface name: the lab needs port names like swp1", port, sw.Name)
			}
			if out, err := exec.Command("ip", "-n", ns, "tuntap", "add", port, "mode", "tap").CombinedOutput(); err != nil {
				return fmt.Errorf("tap %s in %s: %v: %s", port, ns, err, out)
			}
		}
		for port := range wired {
			if !slices.Contains(sw.PortNames(), port) {
				return fmt.Errorf("port %s is not declared on %s: a provisioned switch relays DHCP on its declared ports only", port, sw.Name)
			}
		}
		return nil
	}
	switch sw.BootNetwork {
	case zone.ShapePerPort:
		dhcrelay = append(dhcrelay, "-iu", "uplink", "-pf", filepath.Join(filepath.Dir(st.DB), sw.Name+".dhcrelay.pid"), drv.String())
		if err := startHelper(st, ns, filepath.Join(filepath.Dir(st.DB), sw.Name+"-dhcrelay.log"), dhcrelay); err != nil {
			return err
		}
		// Machines on per-port subnets are reached through the switch.
		if out, err := exec.Command("ip", "-n", bootNS, "route", "add", sw.PortBlock().String(), "via", tor.String()).CombinedOutput(); err != nil {
			return fmt.Errorf("route to %s: %v: %s", sw.PortBlock(), err, out)
		}
	default:
		giaddr := sw.RelayAddr()
		if !giaddr.IsValid() {
			_, giaddr = p.Boot()
		}
		agent = append(agent, "--giaddr", giaddr.String(), "--boot-ns", bootNS, "--uplink-ip", tor.String())
		// drover answers a relay at its gateway address.
		if out, err := exec.Command("ip", "-n", bootNS, "route", "replace", giaddr.String()+"/32", "via", tor.String()).CombinedOutput(); err != nil {
			return fmt.Errorf("route to relay %s: %v: %s", giaddr, err, out)
		}
	}
	return startHelper(st, ns, filepath.Join(filepath.Dir(st.DB), sw.Name+"-switch.log"), agent)
}

// attachSecondNIC cables a second NIC of a slot's VM to port bp.
func attachSecondNIC(st *State, bp bootPort) error {
	vm, err := findVM(st, bp.secondOf)
	if err != nil {
		return fmt.Errorf("--second-nic %s: %w (is it left out by --only?)", bp.secondOf, err)
	}
	if vm.Port2 != "" {
		return fmt.Errorf("--second-nic: %s already has a second NIC on %s", vm.Name, vm.Port2)
	}
	vm.Port2, vm.Tap2 = bp.port, bp.port
	vm.MAC2 = macFor(st.Prefix, vm.Switch+"/"+bp.port+"/second", 0)
	return nil
}

func macFor(prefix, key string, gen int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s|%s|%d", prefix, key, gen)))
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", h[0], h[1], h[2])
}

// startDetached starts a command in a namespace in its own process group, with
// output to a log file, and reaps it in the background.
func startDetached(ns, logPath string, args []string, env ...string) (int, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s in %s: %w", args[0], ns, err)
	}
	go cmd.Wait()
	return cmd.Process.Pid, nil
}

func startHelper(st *State, ns, logPath string, args []string) error {
	pid, err := startDetached(ns, logPath, args)
	if err != nil {
		return err
	}
	st.Helpers = append(st.Helpers, Proc{PID: pid, NS: ns, Args: args, Log: logPath})
	return nil
}

func startServer(st *State) error {
	pid, err := startDetached(st.Server.NS, st.Server.Log, st.Server.Args, st.Server.Env...)
	if err != nil {
		return err
	}
	st.Server.PID = pid
	return nil
}

// powerOn starts a VM's QEMU. Like a server whose OS is installed, it boots
// its disk first and the network when the disk has nothing to boot; a BMC
// told "boot from PXE" (vm.Boot "pxe", IPMI's next-boot-only flag) makes this
// one boot start from the network, and the disk is first again from the
// next reset on (the firmware reads QEMU's boot order at every reset).
func powerOn(dir string, vm *VM) error {
	// SeaBIOS prints to the serial port only when told which one.
	sercon := filepath.Join(dir, "sercon.bin")
	if err := os.WriteFile(sercon, []byte{0xf8, 0x03}, 0o644); err != nil {
		return err
	}
	netFirst := vm.Boot == "pxe"
	vm.QMP = filepath.Join(dir, "qmp-"+vm.Switch+"-"+vm.Port+".sock")
	os.Remove(vm.QMP)
	os.Remove(vm.Log)
	pid, err := startDetached(vm.NS, vm.Log+".qemu", qemuArgs(vm, sercon, netFirst))
	if err != nil {
		return err
	}
	vm.PID, vm.PoweredOn, vm.Off = pid, time.Now(), false
	if netFirst {
		vm.Boot = ""
		// This boot's order is fixed; from the next reset on, the disk comes first.
		if err := qmpSetBootIndex(vm.QMP, "disk0dev", 0); err != nil {
			return fmt.Errorf("%s: boot from PXE once: %w", vm.Name, err)
		}
	}
	return nil
}

// qemuArgs is the QEMU command line of a VM; sercon is SeaBIOS's serial
// console setting; netFirst puts the boot NIC before the disk.
func qemuArgs(vm *VM, sercon string, netFirst bool) []string {
	args := []string{"qemu-system-x86_64", "-accel", "tcg", "-name", vm.Name, "-M", "pc", "-smp", "1",
		"-display", "none", "-vga", "none", "-monitor", "none", "-serial", "file:" + vm.Log}
	if vm.QMP != "" {
		args = append(args, "-qmp", "unix:"+vm.QMP+",server=on,wait=off")
	}
	nicIndex, diskIndex := "2", "1"
	if netFirst {
		nicIndex, diskIndex = "1", "2"
	}
	bootTap, secondTap := vm.Tap, vm.Tap2
	if vm.Swapped {
		bootTap, secondTap = secondTap, bootTap
	}
	args = append(args, "-netdev", "tap,id=n0,ifname="+bootTap+",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,id=nic0,mac="+vm.MAC+",bootindex="+nicIndex)
	if vm.Tap2 != "" {
		args = append(args, "-netdev", "tap,id=n1,ifname="+secondTap+",script=no,downscript=no", "-device", "virtio-net-pci,netdev=n1,id=nic1,mac="+vm.MAC2)
	}
	// strict: a second NIC (no bootindex) is never booted from.
	args = append(args, "-boot", "strict=on", "-drive", "file="+vm.Disk+",if=none,id=disk0,format=qcow2,cache=unsafe",
		"-device", "virtio-blk-pci,drive=disk0,id=disk0dev,bootindex="+diskIndex,
		// Entropy: without it a fresh kernel's first random numbers (the agent's DHCP transaction ID) wait minutes.
		"-device", "virtio-rng-pci",
		"-smbios", fmt.Sprintf("type=1,serial=drover-lab-%s-%d,product=drover lab VM", strings.ReplaceAll(vm.Name, "/", "-"), vm.Gen))
	if vm.Firmware == "uefi" {
		return append(args, "-m", "512", "-bios", "/usr/share/ovmf/OVMF.fd")
	}
	return append(args, "-m", "384", "-fw_cfg", "name=etc/sercon-port,file="+sercon)
}

// qmpSetBootIndex sets a device's bootindex through QEMU's QMP socket, once
// QEMU has made it.
func qmpSetBootIndex(sock, device string, index int) error {
	var c net.Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err = net.Dial("unix", sock); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("qmp %s: %w", sock, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	dec, enc := json.NewDecoder(c), json.NewEncoder(c)
	var greeting map[string]any
	if err := dec.Decode(&greeting); err != nil {
		return fmt.Errorf("qmp greeting: %w", err)
	}
	for _, cmd := range []map[string]any{
		{"execute": "qmp_capabilities"},
		{"execute": "qom-set", "arguments": map[string]any{"path": "/machine/peripheral/" + device, "property": "bootindex", "value": index}},
	} {
		if err := enc.Encode(cmd); err != nil {
			return err
		}
		for {
			var reply struct {
				Return any                    `json:"return"`
				Error  *struct{ Desc string } `json:"error"`
				Event  string                 `json:"event"`
			}
			if err := dec.Decode(&reply); err != nil {
				return fmt.Errorf("qmp %s: %w", cmd["execute"], err)
			}
			if reply.Event != "" {
				continue
			}
			if reply.Error != nil {
				return fmt.Errorf("qmp %s: %s", cmd["execute"], reply.Error.Desc)
			}
			break
		}
	}
	return nil
}

// run powers machines on (a bounded number booting at once), keeps drover
// running, and shows progress until ctx ends.
func run(ctx context.Context, cfg *Config, st *State) error {
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "drover lab: design %s, %d machines\n", cfg.Design, len(st.VMs))
		fmt.Fprintf(cfg.Progress, "  machine HTTP: %s (namespace %s)\n", st.HTTP, st.Server.NS)
		for _, a := range st.Agents {
			fmt.Fprintf(cfg.Progress, "  pod agent:    %s at %s (namespace %s, log %s)\n", a.Pod, a.Addr, a.NS, a.Log)
		}
		fmt.Fprintf(cfg.Progress, "  operator:     drover --db %s machines | show NAME\n", st.DB)
		if st.Secrets != "" {
			fmt.Fprintf(cfg.Progress, "  power:        ip netns exec %s drover --server %s --token-file %s power NAME on|off|cycle|status\n",
				st.Server.NS, st.API, filepath.Join(filepath.Dir(st.DB), "drover-admin.token"))
			fmt.Fprintf(cfg.Progress, "  BMCs:         ipmi_sim (IPMI 2.0, user %s, password in %s)\n", bmcUser, st.Secrets)
		}
		fmt.Fprintf(cfg.Progress, "  logs:         %s\n", cfg.StateDir)
		fmt.Fprintf(cfg.Progress, "  stop:         Ctrl-C or drover lab down\n\n")
	}
	db, err := store.OpenSQLite(ctx, st.DB)
	if err != nil {
		return err
	}
	defer db.Close()
	view := &progress{cfg: cfg, done: map[string]time.Duration{}}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var snapshot State
		err := withState(cfg.StateDir, func(s *State) error {
			if !alive(s.Server.PID) {
				cfg.Log.Warn("drover stopped in the lab: restarting it", "pid", s.Server.PID)
				if err := startServer(s); err != nil {
					return err
				}
			}
			powerOnNext(cfg, s, view)
			snapshot = *s
			return nil
		})
		if err != nil {
			return err
		}
		view.show(ctx, db, &snapshot)
		if cfg.UntilDeployed && view.allDeployed(&snapshot) {
			view.summary(&snapshot)
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// powerOnNext starts waiting machines while fewer than cfg.Parallel are booting.
func powerOnNext(cfg *Config, s *State, view *progress) {
	booting := 0
	for _, vm := range s.VMs {
		if vm.PID != 0 && !vm.Off && view.booting(vm) {
			booting++
		}
	}
	for _, vm := range s.VMs {
		if booting >= cfg.Parallel {
			return
		}
		if vm.PID == 0 && !vm.Off {
			if err := powerOn(cfg.StateDir, vm); err != nil {
				cfg.Log.Error("power on", "vm", vm.Name, "err", err)
				continue
			}
			booting++
		}
	}
}

// progress renders a line per machine: name, state, last timeline step, elapsed.
type progress struct {
	header bool
	cfg    *Config
	lines  int
	last   map[string]string
	done   map[string]time.Duration // power-on to deployed, per machine
	state  map[string]machine.State
}

// booting reports whether a VM still counts against the parallel boot budget.
func (p *progress) booting(vm *VM) bool {
	if st := p.state[vm.MAC]; st == machine.Deployed || st == machine.Retired {
		return false
	}
	return time.Since(vm.PoweredOn) < 3*time.Minute
}

func (p *progress) show(ctx context.Context, db *store.DB, s *State) {
	if p.lines == 0 && !p.header && p.cfg.Progress != nil {
		p.header = true
		fmt.Fprintf(p.cfg.Progress, "  %-22s %-5s %-15s %-14s %-18s %s\n", "MACHINE", "FW", "BMC", "STATE", "ELAPSED", "LAST STEP")
	}
	ms, err := db.Machines(ctx, store.MachineFilter{})
	if err != nil {
		return
	}
	byMAC := map[string]*machine.Machine{}
	for _, m := range ms {
		byMAC[m.MAC] = m
	}
	if p.state == nil {
		p.state, p.last = map[string]machine.State{}, map[string]string{}
	}
	var lines, keys []string
	vms := append([]*VM(nil), s.VMs...)
	sort.Slice(vms, func(i, j int) bool { return vms[i].Name < vms[j].Name })
	for _, vm := range vms {
		state, step := "powered off", ""
		elapsed := ""
		if vm.PID != 0 && !vm.Off {
			state, elapsed = "booting", time.Since(vm.PoweredOn).Round(time.Second).String()
		}
		if m := byMAC[vm.MAC]; m != nil {
			state = string(m.State)
			p.state[vm.MAC] = m.State
			if tl, err := db.Timeline(ctx, m.ID, 0, 0); err == nil && len(tl) > 0 {
				e := tl[len(tl)-1]
				step = string(e.Kind) + ": " + e.Reason
			}
			if m.State == machine.Deployed && !vm.PoweredOn.IsZero() {
				key := vm.MAC
				if _, ok := p.done[key]; !ok && m.StateSince.After(vm.PoweredOn) {
					p.done[key] = m.StateSince.Sub(vm.PoweredOn)
				}
				if d, ok := p.done[key]; ok {
					elapsed = "deployed in " + d.Round(100*time.Millisecond).String()
				}
			}
		}
		if len(step) > 60 {
			step = step[:57] + "..."
		}
		bmc := vm.BMC
		if bmc == "" {
			bmc = "-"
		}
		lines = append(lines, fmt.Sprintf("  %-22s %-5s %-15s %-14s %-18s %s", vm.Name, vm.Firmware, bmc, state, elapsed, step))
		keys = append(keys, state+"|"+step)
	}
	w := p.cfg.Progress
	if w == nil {
		return
	}
	if p.cfg.Terminal {
		if p.lines > 0 {
			fmt.Fprintf(w, "\033[%dA", p.lines)
		}
		for _, l := range lines {
			fmt.Fprintf(w, "\033[2K%s\n", l)
		}
		p.lines = len(lines)
		return
	}
	for i, vm := range vms {
		if p.last[vm.Name] != keys[i] {
			p.last[vm.Name] = keys[i]
			fmt.Fprintln(w, lines[i])
		}
	}
}

func (p *progress) allDeployed(s *State) bool {
	for _, vm := range s.VMs {
		if _, ok := p.done[vm.MAC]; vm.Slot != "" && !ok {
			return false
		}
	}
	return true
}

// summary prints power-on to deployed per machine.
func (p *progress) summary(s *State) {
	w := p.cfg.Summary
	if w == nil {
		return
	}
	fmt.Fprintf(w, "%-22s %-8s %s\n", "MACHINE", "FIRMWARE", "POWER-ON TO DEPLOYED")
	for _, vm := range s.VMs {
		if d, ok := p.done[vm.MAC]; ok {
			fmt.Fprintf(w, "%-22s %-8s %.1fs\n", vm.Name, vm.Firmware, d.Seconds())
		}
	}
}

// Down stops a running lab, or removes what a dead one left.
func Down(cfg Config) error {
	cfg.defaults()
	s, err := readState(cfg.StateDir)
	if err != nil {
		return err
	}
	if alive(s.PID) && s.PID != os.Getpid() {
		syscall.Kill(s.PID, syscall.SIGTERM)
		deadline := time.Now().Add(60 * time.Second)
		for alive(s.PID) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := readState(cfg.StateDir); errors.Is(err, ErrNoLab) {
			return nil
		}
	}
	errs := teardown(s)
	os.Remove(statePath(cfg.StateDir))
	return errors.Join(errs...)
}

func findVM(s *State, name string) (*VM, error) {
	for _, vm := range s.VMs {
		if vm.Name == name || vm.MAC == name {
			return vm, nil
		}
	}
	names := make([]string, len(s.VMs))
	for i, vm := range s.VMs {
		names[i] = vm.Name
	}
	return nil, fmt.Errorf("the lab has no machine %q (machines: %s)", name, strings.Join(names, ", "))
}

// changeVM changes a VM of the running lab under its state lock and returns
// a copy of it.
func changeVM(cfg Config, name string, change func(cfg Config, s *State, vm *VM) error) (*VM, error) {
	cfg.defaults()
	var out VM
	err := withState(cfg.StateDir, func(s *State) error {
		vm, err := findVM(s, name)
		if err != nil {
			return err
		}
		if err := change(cfg, s, vm); err != nil {
			return err
		}
		out = *vm
		return nil
	})
	return &out, err
}

// Replace swaps a VM for new hardware (a new MAC) on the same port.
func Replace(cfg Config, name string) (*VM, error) {
	return changeVM(cfg, name, func(cfg Config, s *State, vm *VM) error {
		kill(vm.PID, 2*time.Second)
		vm.Gen++
		vm.MAC = macFor(s.Prefix, vm.Switch+"/"+vm.Port, vm.Gen)
		if err := newDisk(vm.Disk); err != nil {
			return err
		}
		return powerOn(cfg.StateDir, vm)
	})
}

// SwapCables swaps the cables of a VM's two NICs between their ports (again
// to put them back). A running VM is restarted: QEMU cannot move a NIC to
// another tap while it runs.
func SwapCables(cfg Config, name string) (*VM, error) {
	return changeVM(cfg, name, func(cfg Config, _ *State, vm *VM) error {
		if vm.Tap2 == "" {
			return fmt.Errorf("%s has one NIC: give it a second with lab up --second-nic %s=SWITCH/PORT", vm.Name, vm.Name)
		}
		on := alive(vm.PID)
		kill(vm.PID, 2*time.Second)
		vm.Swapped = !vm.Swapped
		if on {
			return powerOn(cfg.StateDir, vm)
		}
		return nil
	})
}

// Power turns a VM on, off, or off and on again.
func Power(cfg Config, name, action string) error {
	cfg.defaults()
	if action != "on" && action != "off" && action != "cycle" {
		return fmt.Errorf("power %q: use on, off or cycle", action)
	}
	return withState(cfg.StateDir, func(s *State) error {
		vm, err := findVM(s, name)
		if err != nil {
			return err
		}
		if action != "on" {
			kill(vm.PID, 2*time.Second)
			vm.Off = true
		}
		if action != "off" {
			if alive(vm.PID) {
				return fmt.Errorf("%s is already on", vm.Name)
			}
			return powerOn(cfg.StateDir, vm)
		}
		return nil
	})
}

// Status returns the running lab's state.
func Status(cfg Config) (*State, error) {
	cfg.defaults()
	return readState(cfg.StateDir)
}

// followArgs are serve's flags to follow the git repository a design
// directory is in, on the branch checked out there.
func followArgs(ctx context.Context, design string) ([]string, error) {
	dir, err := filepath.Abs(design)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return nil, fmt.Errorf("--follow needs the design as a directory in a git repository, not the file %s", design)
	}
	git := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...).Output()
		if err != nil {
			return "", fmt.Errorf("--follow: %s is not in a git repository with a commit (git %s: %w)", design, strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	top, err := git("rev-parse", "--show-toplevel")
	if err != nil {
		return nil, err
	}
	branch, err := git("rev-parse", "--abbrev-ref", "HEAD")
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(top, dir)
	if err != nil {
		return nil, err
	}
	return []string{"--follow", top, "--branch", branch, "--follow-path", filepath.ToSlash(rel), "--follow-interval", "1s"}, nil
}
