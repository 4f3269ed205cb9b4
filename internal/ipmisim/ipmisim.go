// Package ipmisim runs OpenIPMI's BMC simulator, ipmi_sim (Debian package
// openipmi), as a real IPMI 2.0 BMC for the lab, the tests and the
// benchmarks. Its chassis control (what a motherboard's power rails do) is a
// program given by the caller: the lab's drives a QEMU machine, Hook's keeps
// the power in a file and logs every call so that sessions can be counted at
// the BMC.
package ipmisim

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config is one simulated BMC.
type Config struct {
	Name     string     // BMC name (its state directory is named after it)
	Addr     netip.Addr // listens here, UDP port 623 unless Port is set
	Port     uint16
	Username string
	Password string
	Dir      string // configuration and state
	Chassis  string // chassis control command: "CMD get power|boot", "CMD set power 0|1", "CMD set boot pxe|default"
	NS       string // network namespace to run in, or "" for the current one
	Log      string // ipmi_sim's output (default Dir/ipmi_sim.log)
}

// Sim is a running ipmi_sim.
type Sim struct {
	Config
	PID int
}

// Binary is the simulator's path.
const Binary = "ipmi_sim"

// Start writes the BMC's configuration and starts ipmi_sim; it returns once
// the BMC listens.
func Start(cfg Config) (*Sim, error) {
	if cfg.Port == 0 {
		cfg.Port = 623
	}
	if cfg.Log == "" {
		cfg.Log = filepath.Join(cfg.Dir, "ipmi_sim.log")
	}
	state := filepath.Join(cfg.Dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, err
	}
	lan := fmt.Sprintf(`name %q
set_working_mc 0x20
  startlan 1
    addr %s %d
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid %032x
  endlan
  chassis_control %q
  user 2 true %q %q admin 10 none md2 md5 straight
`, cfg.Name, cfg.Addr, cfg.Port, guid(cfg.Name), cfg.Chassis, cfg.Username, cfg.Password)
	// One management controller, the BMC, at the usual IPMB address.
	emu := "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n"
	if err := os.WriteFile(filepath.Join(cfg.Dir, "lan.conf"), []byte(lan), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, "bmc.emu"), []byte(emu), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(cfg.Log, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args := []string{Binary, "-n", "-c", filepath.Join(cfg.Dir, "lan.conf"), "-f", filepath.Join(cfg.Dir, "bmc.emu"), "-s", state}
	if cfg.NS != "" {
		args = append([]string{"ip", "netns", "exec", cfg.NS}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start ipmi_sim (Debian package openipmi): %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	s := &Sim{Config: cfg, PID: cmd.Process.Pid}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			out, _ := os.ReadFile(cfg.Log)
			return nil, fmt.Errorf("ipmi_sim %s exited at start: %v: %s", cfg.Name, err, strings.TrimSpace(string(out)))
		default:
		}
		if listening(s.PID, cfg) {
			return s, nil
		}
	}
	s.Stop()
	return nil, fmt.Errorf("ipmi_sim %s does not listen on %s:%d after 10 s", cfg.Name, cfg.Addr, cfg.Port)
}

// listening reports whether process pid has a UDP socket bound to the BMC's
// address, reading its network namespace's socket table (binding the port
// to find out would race with the simulator's own bind).
func listening(pid int, cfg Config) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/udp", pid))
	if err != nil {
		return false
	}
	a := cfg.Addr.As4()
	// /proc/net/udp writes the address as a little-endian hex word.
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", a[3], a[2], a[1], a[0], cfg.Port)
	for _, line := range strings.Split(string(b), "\n") {
		if fs := strings.Fields(line); len(fs) > 1 && fs[1] == want {
			return true
		}
	}
	return false
}

// Stop ends the simulator (its process group, so a chassis command it runs ends too).
func (s *Sim) Stop() {
	if s == nil || s.PID == 0 {
		return
	}
	syscall.Kill(-s.PID, syscall.SIGTERM)
	for i := 0; i < 50 && syscall.Kill(s.PID, 0) == nil; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(-s.PID, syscall.SIGKILL)
}

func guid(name string) uint64 {
	var h uint64 = 1469598103934665603
	for _, c := range []byte(name) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h
}

// Hook writes a chassis control program for simulated BMCs without a
// machine behind them: it keeps each BMC's power and boot device in files
// under dir, and appends "start|end UNIX-NANOS BMC OP" to dir/calls.log around
// every call, taking delay per call, so the calls in progress at once can be
// counted (Calls). It returns the command for Config.Chassis, without
// the BMC name, which is the command's last argument.
func Hook(dir string, delay time.Duration) (string, error) {
	script := `#!/bin/sh
# chassis control for a simulated BMC: $1 = BMC name, then get|set ...
dir=$(dirname "$0"); bmc=$1; shift
call="$*"
echo "start $(date +%s%N) $bmc $call" >> "$dir/calls.log"
sleep ` + strconv.FormatFloat(delay.Seconds(), 'f', 3, 64) + `
op=$1; shift
case $op in
get) for p in "$@"; do case $p in
	power) if [ -f "$dir/$bmc.on" ]; then echo power:1; else echo power:0; fi;;
	boot) echo "boot:$(cat "$dir/$bmc.boot" 2>/dev/null || echo default)";;
	esac; done;;
set) while [ $# -gt 1 ]; do case $1 in
	power) if [ "$2" = 1 ]; then touch "$dir/$bmc.on"; else rm -f "$dir/$bmc.on"; fi;;
	boot) echo "$2" > "$dir/$bmc.boot";;
	esac; shift 2; done;;
esac
echo "end $(date +%s%N) $bmc $call" >> "$dir/calls.log"
`
	path := filepath.Join(dir, "chassis.sh")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		return "", err
	}
	return "/bin/sh " + path, nil
}

// Power reads a Hook BMC's power.
func Power(dir, bmc string) bool {
	_, err := os.Stat(filepath.Join(dir, bmc+".on"))
	return err == nil
}

// BootDevice reads a Hook BMC's boot device ("default" unless set).
func BootDevice(dir, bmc string) string {
	b, err := os.ReadFile(filepath.Join(dir, bmc+".boot"))
	if err != nil {
		return "default"
	}
	return strings.TrimSpace(string(b))
}

// Calls is what dir/calls.log says: calls made, and the largest number of
// BMCs that were in a call at the same moment. Given operations (such as
// "set power 0"), only those count: ipmi_sim also makes calls of its own
// outside any session (it polls "get power" after a power-off, and powers a
// cycled machine back on a second later).
func Calls(dir string, only ...string) (calls, maxInFlight int, err error) {
	f, err := os.Open(filepath.Join(dir, "calls.log"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	type ev struct {
		at    int64
		delta int
	}
	var evs []ev
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 || len(only) > 0 && !slices.Contains(only, strings.Join(fs[3:], " ")) {
			continue
		}
		at, err := strconv.ParseInt(fs[1], 10, 64)
		if err != nil {
			continue
		}
		switch fs[0] {
		case "start":
			calls++
			evs = append(evs, ev{at, 1})
		case "end":
			evs = append(evs, ev{at, -1})
		}
	}
	// Ends sort before starts at the same instant: touching calls do not overlap.
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].at != evs[j].at {
			return evs[i].at < evs[j].at
		}
		return evs[i].delta < evs[j].delta
	})
	cur := 0
	for _, e := range evs {
		cur += e.delta
		maxInFlight = max(maxInFlight, cur)
	}
	return calls, maxInFlight, sc.Err()
}
