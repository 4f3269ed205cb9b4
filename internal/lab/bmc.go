package lab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/drover/drover/internal/ipmisim"
	"github.com/drover/drover/internal/netns"
	"github.com/drover/drover/internal/secret"
	"github.com/drover/drover/internal/zone"
)

// bmcUser is the lab BMCs' IPMI user; the password is made per lab.
const bmcUser = "admin"

// wireBMCs gives every lab machine whose slot has a power driver a virtual BMC
// someone else wrote, OpenIPMI's ipmi_sim, listening at the slot's BMC address
// in a namespace per pod (the pod's BMC network) routed from drover's
// namespace. The BMC's chassis control is `drover lab chassis`, which powers
// the machine's QEMU on and off as a motherboard's power rail would. It
// writes the power secrets file drover serve reads.
func wireBMCs(cfg *Config, n *netns.Net, st *State, d *zone.Design, ix *zone.Index, addNS func(string) (string, error)) error {
	type podKey struct{ zone, pod string }
	pods := map[podKey][]*VM{}
	var order []podKey
	for _, vm := range st.VMs {
		s := ix.Slot(vm.Slot)
		if s == nil || s.Power != zone.PowerIPMI || !s.BMCAddress.IsValid() {
			continue
		}
		vm.BMC = s.BMCAddress.String()
		k := podKey{s.Zone, s.Pod}
		if pods[k] == nil {
			order = append(order, k)
		}
		pods[k] = append(pods[k], vm)
	}
	if len(order) == 0 {
		return nil
	}
	password := secret.Hex(8) // IPMI passwords are at most 20 bytes
	var b strings.Builder
	b.WriteString("# written by drover lab up: the credentials of the lab's virtual BMCs\nzones:\n")
	for _, z := range d.Zones {
		fmt.Fprintf(&b, "  %s:\n    username: %s\n    password: %q\n", z.Name, bmcUser, password)
	}
	st.Secrets = filepath.Join(cfg.StateDir, "power-secrets.yaml")
	if err := os.WriteFile(st.Secrets, []byte(b.String()), 0o600); err != nil {
		return err
	}
	for i, k := range order {
		name := "bmc-" + k.pod
		if len(d.Zones) > 1 {
			name = "bmc-" + k.zone + "-" + k.pod
		}
		ns, err := addNS(name)
		if err != nil {
			return err
		}
		// Links of the BMC namespaces use the upper half of the lab's link range.
		base := uplinkBase().Addr().As4()
		base[3] = byte(128 + 4*i + 1)
		drv := netip.AddrFrom4(base)
		base[3]++
		far := netip.AddrFrom4(base)
		up := fmt.Sprintf("bm%d", i)
		if err := n.Veth("boot", up, name, "uplink"); err != nil {
			return err
		}
		if err := firstErr(n.Addr("boot", up, drv.String()+"/30"), n.Addr(name, "uplink", far.String()+"/30"),
			n.Route(name, "default", drv.String())); err != nil {
			return err
		}
		for _, vm := range pods[k] {
			if err := n.Addr(name, "uplink", vm.BMC+"/32"); err != nil {
				return err
			}
			if err := n.Route("boot", vm.BMC+"/32", far.String()); err != nil {
				return err
			}
			chassis := fmt.Sprintf("%s lab chassis --state-dir %s %s", cfg.Drover, cfg.StateDir, vm.Name)
			sim, err := ipmisim.Start(ipmisim.Config{Name: strings.ReplaceAll(vm.Name, "/", "-"), Addr: netip.MustParseAddr(vm.BMC),
				Username: bmcUser, Password: password, Dir: filepath.Join(cfg.StateDir, "bmc", strings.ReplaceAll(vm.Name, "/", "-")),
				Chassis: chassis, NS: ns})
			if err != nil {
				return err
			}
			st.Helpers = append(st.Helpers, Proc{PID: sim.PID, NS: ns, Args: []string{ipmisim.Binary, vm.Name}, Log: sim.Log})
		}
	}
	return nil
}

// Chassis is a lab machine's power rail and boot device, driven by its
// virtual BMC (ipmi_sim's chassis control): args are "get power|boot ..." or
// "set power 0|1", "set reset 1", "set boot DEVICE". It prints what ipmi_sim
// expects: "power:1" and "boot:pxe" lines for get, nothing for set.
func Chassis(cfg Config, name string, args []string) (string, error) {
	cfg.defaults()
	if len(args) == 0 {
		return "", fmt.Errorf("chassis %s: no operation", name)
	}
	var out strings.Builder
	err := withState(cfg.StateDir, func(s *State) error {
		vm, err := findVM(s, name)
		if err != nil {
			return err
		}
		switch args[0] {
		case "get":
			for _, p := range args[1:] {
				switch p {
				case "power":
					on := 0
					if alive(vm.PID) && !vm.Off {
						on = 1
					}
					fmt.Fprintf(&out, "power:%d\n", on)
				case "boot":
					boot := vm.Boot
					if boot == "" {
						boot = "default"
					}
					fmt.Fprintf(&out, "boot:%s\n", boot)
				default:
					return fmt.Errorf("chassis %s: cannot get %q", name, p)
				}
			}
			return nil
		case "set":
			kv := args[1:]
			for len(kv) >= 2 {
				parm, val := kv[0], kv[1]
				kv = kv[2:]
				switch {
				case parm == "power" && val == "1":
					if !alive(vm.PID) {
						if err := powerOn(cfg.StateDir, vm); err != nil {
							return err
						}
					}
					vm.Off = false
				case parm == "power" && val == "0":
					kill(vm.PID, 2*time.Second)
					vm.Off = true
				case parm == "reset" && val == "1":
					kill(vm.PID, 2*time.Second)
					if err := powerOn(cfg.StateDir, vm); err != nil {
						return err
					}
				case parm == "boot":
					vm.Boot = val
				case parm == "identify", parm == "shutdown":
				default:
					return fmt.Errorf("chassis %s: cannot set %s to %s", name, parm, val)
				}
			}
			return nil
		}
		return fmt.Errorf("chassis %s: unknown operation %q", name, args[0])
	})
	return out.String(), err
}
