package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// State is what a running lab made, written to its state directory so that
// `lab down`, `lab replace` and `lab power` (other processes) can find it, and
// so that a lab killed without cleaning up can still be removed.
type State struct {
	PID        int       `json:"pid"` // the `lab up` process
	Started    time.Time `json:"started"`
	Prefix     string    `json:"prefix"`
	Design     string    `json:"design"`
	DB         string    `json:"db"`
	Drover     string    `json:"drover"`
	Namespaces []string  `json:"namespaces"`
	Server     Proc      `json:"server"`
	Helpers    []Proc    `json:"helpers"`
	VMs        []*VM     `json:"vms"`
	HTTP       string    `json:"http"` // drover's machine HTTP address inside the boot namespace
	API        string    `json:"api"`  // drover's operator API inside the boot namespace
	// Secrets is the power secrets file drover serve reads; the lab's BMCs
	// take the credentials it holds.
	Secrets string `json:"secrets,omitempty"`
	// Agents are the pod agents (lab up --agents), also among Helpers.
	Agents []Agent `json:"agents,omitempty"`
	// Fabric is set once the provisioned switches are up.
	Fabric *FabricState `json:"fabric,omitempty"`
}

// FabricState is where the lab's spine runs, for checks of its BGP sessions.
type FabricState struct {
	Spine       string    `json:"spine"`      // the spine's namespace
	VTYSocket   string    `json:"vty_socket"` // its FRR's vty socket directory (vtysh --vty_socket)
	Switches    int       `json:"switches"`   // provisioned ToRs cabled to it
	Provisioned time.Time `json:"provisioned"`
}

// Proc is a process the lab started.
type Proc struct {
	PID  int      `json:"pid"`
	NS   string   `json:"ns"`
	Args []string `json:"args"`
	Env  []string `json:"env,omitempty"` // added to the lab's own environment
	Log  string   `json:"log"`
}

// VM is a QEMU machine on a switch port.
type VM struct {
	Name      string    `json:"name"` // the slot's name, or switch/port for a port without a slot
	Slot      string    `json:"slot,omitempty"`
	Switch    string    `json:"switch"`
	Port      string    `json:"port"`
	NS        string    `json:"ns"`
	Tap       string    `json:"tap"`
	Firmware  string    `json:"firmware"`
	Gen       int       `json:"gen"` // hardware generation: a replacement has a new MAC
	MAC       string    `json:"mac"`
	PID       int       `json:"pid"`
	PoweredOn time.Time `json:"powered_on,omitzero"`
	Log       string    `json:"log"`
	Off       bool      `json:"off"`
	BMC       string    `json:"bmc,omitempty"`  // the address its virtual BMC (ipmi_sim) listens on
	Boot      string    `json:"boot,omitempty"` // the boot device its BMC was last told
	Disk      string    `json:"disk,omitempty"` // its virtio disk (qcow2)
	// A second NIC (lab up --second-nic): its port on the same switch, and
	// whether the two NICs' cables are swapped (the boot NIC on Port2).
	Port2   string `json:"port2,omitempty"`
	Tap2    string `json:"tap2,omitempty"`
	MAC2    string `json:"mac2,omitempty"`
	Swapped bool   `json:"swapped,omitempty"`
	QMP     string `json:"qmp,omitempty"` // QEMU's QMP socket (the BMC's boot-once uses it)
}

func statePath(dir string) string { return filepath.Join(dir, "state.json") }

// lockFile takes an exclusive flock on path; block says whether to wait.
func lockFile(path string, block bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_EX
	if !block {
		how |= syscall.LOCK_NB
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// withState runs fn on the state under the state lock and saves it after.
func withState(dir string, fn func(*State) error) error {
	l, err := lockFile(filepath.Join(dir, "state.lock"), true)
	if err != nil {
		return err
	}
	defer l.Close()
	s, err := readState(dir)
	if err != nil {
		return err
	}
	if err := fn(s); err != nil {
		return err
	}
	return writeState(dir, s)
}

// ErrNoLab is returned when no lab state exists.
var ErrNoLab = errors.New("no lab is running (nothing in the state directory)")

func readState(dir string) (*State, error) {
	b, err := os.ReadFile(statePath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoLab
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("lab state %s: %w", statePath(dir), err)
	}
	return &s, nil
}

// writeState replaces the state file atomically.
func writeState(dir string, s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := statePath(dir) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, statePath(dir))
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	// A zombie still answers signal 0; its state in /proc tells the truth.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

// kill stops a process group started by the lab: SIGTERM, then SIGKILL.
func kill(pid int, grace time.Duration) {
	if pid <= 0 || !alive(pid) {
		return
	}
	syscall.Kill(-pid, syscall.SIGTERM)
	syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) && alive(pid) {
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
}

// teardown removes everything the state records: processes by PID, then the
// namespaces by name (killing anything still inside them). Nothing else.
func teardown(s *State) []error {
	var errs []error
	for _, vm := range s.VMs {
		kill(vm.PID, 2*time.Second)
	}
	for _, h := range s.Helpers {
		kill(h.PID, 2*time.Second)
	}
	kill(s.Server.PID, 5*time.Second)
	if s.Prefix != "" {
		old, _ := filepath.Glob(filepath.Join(lldpDir, s.Prefix+"*"))
		for _, f := range old {
			os.Remove(f)
		}
		switches, _ := filepath.Glob(filepath.Join(switchDir, s.Prefix+"*"))
		for _, d := range switches {
			os.RemoveAll(d)
		}
	}
	for i := len(s.Namespaces) - 1; i >= 0; i-- {
		ns := s.Namespaces[i]
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
			continue
		}
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("delete namespace %s: %v: %s", ns, err, strings.TrimSpace(string(out))))
		}
	}
	return errs
}
