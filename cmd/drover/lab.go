package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover/drover/internal/lab"
)

type labFlags struct {
	stateDir string
	cacheDir string
	prefix   string
}

func (f *labFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.stateDir, "state-dir", "/run/drover-lab", "where the lab keeps its state, database and logs")
	cmd.PersistentFlags().StringVar(&f.cacheDir, "cache-dir", "/var/cache/drover/lab", "where the install image is cached")
	cmd.PersistentFlags().StringVar(&f.prefix, "prefix", "drl-", "prefix of the lab's namespace names")
}

func (f *labFlags) config(g *globals) lab.Config {
	exe, _ := os.Executable()
	return lab.Config{StateDir: f.stateDir, CacheDir: f.cacheDir, Prefix: f.prefix, Drover: exe,
		Log: newTextLogger(g)}
}

func newLabCommand(g *globals) *cobra.Command {
	var f labFlags
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "A virtual zone of QEMU machines booting through drover",
		Long: `lab builds a virtual zone from a design on this machine (root needed): a
network namespace running drover serve, one namespace per ToR switch relaying
DHCP the way the switch's boot network is shaped (ISC dhcrelay for a subnet per
port; a relay naming the physical port for one subnet per pod), IPv6 router
advertisements on every port, and a QEMU machine (BIOS or UEFI, per role) on
every port the design gives a slot.`,
	}
	f.register(cmd)
	var extra, only, second []string
	var parallel int
	var quiet, untilDeployed, follow, agents bool
	up := &cobra.Command{
		Use:   "up [DESIGN]",
		Short: "Build the lab and show its progress until Ctrl-C or `drover lab down`",
		Args: func(cmd *cobra.Command, a []string) error {
			if len(a) > 1 {
				return &usageError{errors.New("lab up takes at most one design path")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, a []string) error {
			cfg := f.config(g)
			cfg.Design = "examples/lab"
			if len(a) == 1 {
				cfg.Design = a[0]
			}
			cfg.Extra, cfg.Only, cfg.Parallel, cfg.Follow, cfg.SecondNICs = extra, only, parallel, follow, second
			cfg.UntilDeployed, cfg.Summary, cfg.Agents = untilDeployed, g.env.stdout, agents
			if !quiet {
				cfg.Progress, cfg.Terminal = g.env.stdout, isTerminal(g.env.stdout)
			}
			return lab.Up(cmd.Context(), cfg)
		},
	}
	up.Flags().StringSliceVar(&extra, "extra", nil, "also boot a machine on SWITCH/PORT, a port without a slot (repeatable)")
	up.Flags().StringSliceVar(&second, "second-nic", nil, "give machine NAME a second NIC cabled to SWITCH/PORT, a port without a slot on its switch: NAME=SWITCH/PORT (repeatable)")
	up.Flags().StringSliceVar(&only, "only", nil, "boot only these slot names (repeatable)")
	up.Flags().IntVar(&parallel, "parallel", 4, "machines booting at once")
	up.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress display")
	up.Flags().BoolVar(&follow, "follow", false, "drover follows the git repository DESIGN is in (its checked-out branch) instead of reading the files: commit to change the lab")
	up.Flags().BoolVar(&agents, "agents", false, "run a pod agent (drover agent) per pod in a namespace of its own; the ToRs relay to it (docs/ha.md)")
	up.Flags().BoolVar(&untilDeployed, "until-deployed", false, "stop once every machine in a slot is deployed, printing how long each took")
	down := &cobra.Command{
		Use:   "down",
		Short: "Stop the lab and remove every namespace, tap and process it made",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := lab.Down(f.config(g)); err != nil {
				return err
			}
			fmt.Fprintln(g.env.stdout, "lab is down")
			return nil
		},
	}
	replace := &cobra.Command{
		Use:   "replace NAME",
		Short: "Swap a machine for new hardware (a new MAC) on the same port",
		Args:  args(1, "a machine name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			vm, err := lab.Replace(f.config(g), a[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(g.env.stdout, "%s on %s/%s replaced: new MAC %s\n", vm.Name, vm.Switch, vm.Port, vm.MAC)
			return nil
		},
	}
	swap := &cobra.Command{
		Use:   "swap-cables NAME",
		Short: "Swap the cables of a machine's two NICs between their ports (again to undo); a running machine restarts",
		Args:  args(1, "a machine name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			vm, err := lab.SwapCables(f.config(g), a[0])
			if err != nil {
				return err
			}
			boot, second := vm.Port, vm.Port2
			if vm.Swapped {
				boot, second = second, boot
			}
			fmt.Fprintf(g.env.stdout, "%s: boot NIC %s now on %s/%s, second NIC %s on %s/%s\n", vm.Name, vm.MAC, vm.Switch, boot, vm.MAC2, vm.Switch, second)
			return nil
		},
	}
	power := &cobra.Command{
		Use:   "power NAME on|off|cycle",
		Short: "Power a machine on, off, or off and on",
		Args:  args(2, "a machine name and on, off or cycle"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := lab.Power(f.config(g), a[0], a[1]); err != nil {
				return err
			}
			fmt.Fprintf(g.env.stdout, "%s: power %s\n", a[0], a[1])
			return nil
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the running lab's machines",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := lab.Status(f.config(g))
			if err != nil {
				return err
			}
			return writeJSON(g.env.stdout, s)
		},
	}
	chassis := &cobra.Command{
		Use:    "chassis NAME get|set ...",
		Short:  "A lab machine's power rail, driven by its virtual BMC (ipmi_sim's chassis_control; used by lab up)",
		Hidden: true,
		Args:   cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, a []string) error {
			out, err := lab.Chassis(f.config(g), a[0], a[1:])
			if err != nil {
				// ipmi_sim reads the error from standard output.
				fmt.Fprintln(g.env.stdout, err)
				return err
			}
			fmt.Fprint(g.env.stdout, out)
			return nil
		},
	}
	image := &cobra.Command{
		Use:   "image",
		Short: "Build (or find in the cache) the lab's Debian 12 disk image and print its path",
		Long: `Builds, from Debian's packages only, a small Debian 12 disk image bootable by
BIOS and UEFI (Debian's cloud kernel, openssh-server, python3, cloud-init),
gzip-compressed, under --cache-dir. It is built once per version of its build
script; lab up puts it in the artifact catalogue for every image the design's
profiles name.`,
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			cfg := f.config(g)
			path, err := lab.BuildDiskImage(cmd.Context(), cfg.CacheDir, cfg.Log)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.env.stdout, "%s (%.1fs)\n", path, time.Since(start).Seconds())
			return nil
		},
	}
	cmd.AddCommand(up, down, replace, swap, power, status, chassis, image, newLabSwitchCommand(g))
	return cmd
}

// newLabSwitchCommand is the lab's switch agent, run inside a ToR namespace.
func newLabSwitchCommand(g *globals) *cobra.Command {
	var cfg lab.RelayConfig
	var giaddr, server, uplinkIP string
	var ports []string
	cmd := &cobra.Command{
		Use:    "switch",
		Short:  "Run a lab switch's relay and router advertisements (used by lab up)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Server, err = netip.ParseAddr(server); err != nil {
				return &usageError{fmt.Errorf("--server: %w", err)}
			}
			if giaddr != "" {
				if cfg.GIAddr, err = netip.ParseAddr(giaddr); err != nil {
					return &usageError{fmt.Errorf("--giaddr: %w", err)}
				}
			}
			if uplinkIP != "" {
				if cfg.UplinkIP, err = netip.ParseAddr(uplinkIP); err != nil {
					return &usageError{fmt.Errorf("--uplink-ip: %w", err)}
				}
			}
			cfg.Ports = map[string]string{}
			for _, p := range ports {
				ifname, port, ok := strings.Cut(p, "=")
				if !ok {
					port = ifname
				}
				cfg.Ports[ifname] = port
			}
			cfg.Log = newTextLogger(g)
			return lab.RunSwitch(cmd.Context(), cfg)
		},
	}
	cmd.Flags().StringVar(&cfg.Switch, "switch", "", "the switch's name (remote-id)")
	cmd.Flags().StringVar(&giaddr, "giaddr", "", "relay from this gateway address (one subnet per pod); empty: router advertisements only")
	cmd.Flags().BoolVar(&cfg.PerPort, "per-port", false, "relay with each port's own address as giaddr (boot_network: per-port)")
	cmd.Flags().StringVar(&server, "server", "", "drover's address")
	cmd.Flags().StringVar(&cfg.Uplink, "uplink", "uplink", "interface towards drover")
	cmd.Flags().StringSliceVar(&ports, "port", nil, "a port interface, optionally IFNAME=PORT (repeatable)")
	cmd.Flags().StringVar(&cfg.BootNS, "boot-ns", "", "drover's namespace, for host routes")
	cmd.Flags().StringVar(&uplinkIP, "uplink-ip", "", "this switch's uplink address")
	return cmd
}
