package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type labMachine struct {
	ID         int64          `json:"id"`
	Name       string         `json:"name"`
	MAC        string         `json:"mac"`
	State      string         `json:"state"`
	Slot       string         `json:"slot"`
	StateSince time.Time      `json:"state_since"`
	Facts      map[string]any `json:"facts"`
}

type labVM struct {
	Name      string    `json:"name"`
	MAC       string    `json:"mac"`
	PID       int       `json:"pid"`
	BMC       string    `json:"bmc"`
	Firmware  string    `json:"firmware"`
	PoweredOn time.Time `json:"powered_on"`
	Disk      string    `json:"disk"`
}

type labStatus struct {
	Server struct {
		PID int    `json:"pid"`
		NS  string `json:"ns"`
	} `json:"server"`
	API    string  `json:"api"`
	VMs    []labVM `json:"vms"`
	Fabric *struct {
		Spine     string `json:"spine"`
		VTYSocket string `json:"vty_socket"`
		Switches  int    `json:"switches"`
	} `json:"fabric"`
}

type labRun struct {
	t      *testing.T
	state  string
	prefix string
	db     string
	repo   repo
}

// api runs the CLI against the lab's drover with its admin token.
func (l *labRun) api(args ...string) (string, error) {
	st := l.status()
	out, err := exec.Command("ip", append([]string{"netns", "exec", st.Server.NS, droverBin, "--server", st.API,
		"--token-file", filepath.Join(l.state, "drover-admin.token")}, args...)...).CombinedOutput()
	return string(out), err
}

// repo is a git work tree a test commits designs to.
type repo struct {
	t   *testing.T
	dir string
}

func (r repo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", r.dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Ada Lovelace", "GIT_AUTHOR_EMAIL=ada@example.org", "GIT_COMMITTER_NAME=Ada Lovelace", "GIT_COMMITTER_EMAIL=ada@example.org")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (r repo) commit(msg string) string {
	r.git("add", "-A")
	r.git("commit", "-qm", msg)
	return r.git("rev-parse", "HEAD")
}

// labStartTimeout bounds the wait for a lab to start. On a fresh machine
// that includes building and caching the lab's images once (mmdebstrap
// fetching Debian packages): measured from 2 to over 3 minutes, which a
// 180 s wait did not always cover.
const labStartTimeout = 10 * time.Minute

func (l *labRun) drover(args ...string) ([]byte, error) {
	return exec.Command(droverBin, append(args, "--state-dir", l.state, "--prefix", l.prefix)...).CombinedOutput()
}

// up starts drover lab up with args in the run's state directory and
// prefix; the test's cleanup takes the lab down, showing logs (files of the
// state directory) if the test failed. The channel is closed when lab up exits.
func (l *labRun) up(logs []string, args ...string) <-chan struct{} {
	t := l.t
	t.Helper()
	up := exec.Command(droverBin, append(append([]string{"lab", "up"}, args...), "--state-dir", l.state, "--prefix", l.prefix, "--quiet")...)
	logf, _ := os.Create(filepath.Join(l.state, "lab-up.log"))
	up.Stdout, up.Stderr = logf, logf
	up.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	upDone := make(chan struct{})
	go func() { up.Wait(); close(upDone) }()
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range logs {
				b, _ := os.ReadFile(filepath.Join(l.state, f))
				t.Logf("%s (tail):\n%s", f, tail(string(b), 40))
			}
		}
		l.drover("lab", "down")
		select {
		case <-upDone:
		case <-time.After(30 * time.Second):
			syscall.Kill(-up.Process.Pid, syscall.SIGKILL)
		}
	})
	return upDone
}

func (l *labRun) machines() []labMachine {
	l.t.Helper()
	out, err := exec.Command(droverBin, "--db", l.db, "machines", "-o", "json").Output()
	if err != nil {
		return nil // the database may not exist yet
	}
	var ms []labMachine
	json.Unmarshal(out, &ms)
	return ms
}

func (l *labRun) status() labStatus {
	l.t.Helper()
	out, err := l.drover("lab", "status")
	if err != nil {
		l.t.Fatalf("lab status: %v %s", err, out)
	}
	var s labStatus
	if err := json.Unmarshal(out, &s); err != nil {
		l.t.Fatal(err)
	}
	return s
}

func (l *labRun) byMAC(mac string) (labMachine, bool) {
	for _, m := range l.machines() {
		if m.MAC == mac {
			return m, true
		}
	}
	return labMachine{}, false
}

func (l *labRun) waitDeployed(what string, timeout time.Duration, macs ...string) {
	l.t.Helper()
	waitFor(l.t, what, timeout, func() bool {
		for _, mac := range macs {
			if m, ok := l.byMAC(mac); !ok || m.State != "deployed" {
				return false
			}
		}
		return true
	})
}

func TestLab(t *testing.T) {
	require(t, map[string]string{"ip": "iproute2", "qemu-system-x86_64": "qemu-system-x86", "dhcrelay": "isc-dhcp-relay",
		"busybox": "busybox-static", "cpio": "cpio", "curl": "curl", "apt-get": "apt", "ipmi_sim": "openipmi",
		"lldpd": "lldpd", "vtysh": "frr", "mmdebstrap": "mmdebstrap", "grub-mkimage": "grub-pc-bin grub-efi-amd64-bin", "mcopy": "mtools", "mkfs.vfat": "dosfstools",
		"sfdisk": "fdisk", "qemu-img": "qemu-utils", "qemu-io": "qemu-utils", "ssh": "openssh-client", "ansible-playbook": "ansible-core"})
	for _, f := range []string{"/usr/share/ovmf/OVMF.fd", "/usr/lib/ipxe/qemu/efi-virtio.rom"} {
		if _, err := os.Stat(f); err != nil {
			require(t, map[string]string{f: "ovmf ipxe-qemu"})
		}
	}
	require(t, map[string]string{"git": "git"})
	l := &labRun{t: t, state: t.TempDir(), prefix: "dl" + randomID() + "-"}
	l.db = filepath.Join(l.state, "drover.db")
	// The lab zone (test) and a prod zone, in a git repository drover follows.
	l.repo = repo{t: t, dir: t.TempDir()}
	l.repo.git("init", "-q", "-b", "main")
	copyDir(t, "../../examples/lab", filepath.Join(l.repo.dir, "zone"))
	b, err := os.ReadFile("../../examples/rollout/prod.yaml")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(l.repo.dir, "zone", "prod.yaml"), b, 0o644))
	l.repo.commit("the lab and prod zones")
	upDone := l.up([]string{"lab-up.log", "drover.log", "p1-tor1-ztp.log", "p1-tor1-ztp-script.log", "p1-tor2-ztp-script.log"}, filepath.Join(l.repo.dir, "zone"), "--follow", "--extra", "p1-tor2/swp5", "--second-nic", "lab-compute-02=p1-tor1/swp6")
	waitFor(t, "the lab to start", labStartTimeout, func() bool {
		_, err := os.Stat(l.db)
		return err == nil && len(l.status().VMs) == 9
	})
	vms := map[string]labVM{}
	for _, vm := range l.status().VMs {
		vms[vm.Name] = vm
	}
	slotVMs := []string{"lab-compute-01", "lab-compute-02", "lab-compute-lvm-03", "lab-storage-01", "lab-storage-02"}

	t.Run("every machine reaches deployed with its slot's identity and facts", func(t *testing.T) {
		var macs []string
		for _, name := range slotVMs {
			macs = append(macs, vms[name].MAC)
		}
		l.waitDeployed("five machines deployed", 12*time.Minute, macs...)
		wantSlot := map[string]string{"lab-compute-01": "p1-tor1/swp1", "lab-compute-02": "p1-tor1/swp2", "lab-compute-lvm-03": "p1-tor1/swp3",
			"lab-storage-01": "p1-tor2/swp1", "lab-storage-02": "p1-tor2/swp2"}
		for _, vm := range l.status().VMs {
			vms[vm.Name] = vm // now with their power-on times
		}
		for _, name := range slotVMs {
			vm := vms[name]
			m, _ := l.byMAC(vm.MAC)
			if m.Name != name || m.Slot != wantSlot[name] {
				t.Errorf("%s: machine %s in %s", name, m.Name, m.Slot)
			}
			macsFact, _ := m.Facts["macs"].([]any)
			if len(macsFact) == 0 || macsFact[0] != vm.MAC || m.Facts["cpus"] != 1.0 || m.Facts["memory_bytes"].(float64) < 1e8 ||
				!strings.HasPrefix(m.Facts["serial"].(string), "drover-lab-") || m.Facts["product"] != "drover lab VM" {
				t.Errorf("%s facts %v", name, m.Facts)
			}
			t.Logf("%s (%s): power-on to deployed %.1fs", name, vm.Firmware, m.StateSince.Sub(vm.PoweredOn).Seconds())
		}
		for name, addr := range map[string]string{"lab-compute-01": "10.77.0.11", "lab-storage-02": "10.77.100.10"} {
			out, _ := exec.Command(droverBin, "--db", l.db, "show", name).Output()
			if !strings.Contains(string(out), "dhcp-ack") || !strings.Contains(string(out), addr+" as "+strings.Replace(name, "-lvm", "", 1)) {
				t.Errorf("%s timeline lacks its address %s:\n%s", name, addr, out)
			}
		}
	})

	t.Run("the ToRs were provisioned by ZTP before their hosts booted, BGP up with the spine", func(t *testing.T) {
		st := l.status()
		if st.Fabric == nil || st.Fabric.Switches != 2 {
			t.Fatalf("lab fabric %+v, want two provisioned ToRs", st.Fabric)
		}
		out, err := exec.Command("ip", "netns", "exec", st.Fabric.Spine, "vtysh", "--vty_socket", st.Fabric.VTYSocket, "-c", "show bgp summary json").Output()
		var sum struct {
			IPv4 struct {
				Peers map[string]struct {
					State    string `json:"state"`
					Hostname string `json:"hostname"`
					RemoteAS int64  `json:"remoteAs"`
					PfxRcd   int    `json:"pfxRcd"`
				} `json:"peers"`
			} `json:"ipv4Unicast"`
		}
		if err != nil || json.Unmarshal(out, &sum) != nil {
			t.Fatalf("vtysh on the spine: %v\n%s", err, out)
		}
		peers := map[string]int64{}
		for _, p := range sum.IPv4.Peers {
			if p.State == "Established" && p.PfxRcd > 0 {
				peers[p.Hostname] = p.RemoteAS
			}
		}
		if peers["p1-tor1"] != 65101 || peers["p1-tor2"] != 65102 {
			t.Errorf("spine's established BGP peers with routes: %v, want p1-tor1 AS 65101 and p1-tor2 AS 65102\n%s", peers, out)
		}
		firstPowerOn := time.Time{}
		for _, vm := range l.status().VMs {
			if !vm.PoweredOn.IsZero() && (firstPowerOn.IsZero() || vm.PoweredOn.Before(firstPowerOn)) {
				firstPowerOn = vm.PoweredOn
			}
		}
		for _, name := range []string{"p1-tor1", "p1-tor2"} {
			s := showJSON(t, l.db, name)
			if s.Machine.State != "deployed" || !hasEntry(s, "ztp", "served ztp") || !hasEntry(s, "ztp", "served frr.conf") || !hasEntry(s, "phone-home", "installed") {
				t.Errorf("%s was not provisioned by ZTP: %+v %+v", name, s.Machine, s.Timeline)
			}
			if s.Machine.State == "deployed" && !s.Machine.StateSince.Before(firstPowerOn) {
				t.Errorf("%s was deployed at %s, after the first host powered on at %s", name, s.Machine.StateSince, firstPowerOn)
			}
		}
	})

	t.Run("real installs: Debian on disk, booted, reachable by ssh as its slot's name, cabling checked", func(t *testing.T) {
		for name, want := range map[string]struct{ addr, host, sw, port string }{
			"lab-compute-lvm-03": {"10.77.0.13", "lab-compute-03", "p1-tor1", "swp3"},  // BIOS
			"lab-storage-01":     {"10.77.100.2", "lab-storage-01", "p1-tor2", "swp1"}, // UEFI
		} {
			s := showJSON(t, l.db, vms[name].MAC)
			if !hasEntry(s, "phone-home", "installed to disk: debian-12") || !hasEntry(s, "phone-home", "booted") {
				t.Errorf("%s was not deployed by its installed system's first boot: %+v", name, s.Timeline)
			}
			if hasEntry(s, "cabling-mismatch", "") {
				t.Errorf("%s: cabling mismatch on a correctly cabled machine", name)
			}
			lldp, _ := s.Machine.Facts["lldp"].([]any)
			if len(lldp) != 1 || lldp[0].(map[string]any)["system_name"] != want.sw || lldp[0].(map[string]any)["port_id"] != want.port {
				t.Errorf("%s heard %v over LLDP, want %s/%s", name, s.Machine.Facts["lldp"], want.sw, want.port)
			}
			out, err := exec.Command("ip", "netns", "exec", l.status().Server.NS, "ssh", "-i", filepath.Join(l.state, "ssh-lab"),
				"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=20", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
				"root@"+want.addr, "hostname; findmnt -no SOURCE /").CombinedOutput()
			if err != nil || !strings.HasPrefix(string(out), want.host+"\n") || !strings.Contains(string(out), "/dev/vda") {
				t.Errorf("ssh %s (%s): %v\n%s", name, want.addr, err, out)
			}
		}
		out, err := l.api("cabling", "-o", "json")
		if err != nil || !strings.Contains(out, `"status": "ok"`) || strings.Contains(out, `"mismatch"`) {
			t.Errorf("drover cabling: %v\n%s", err, out)
		}
		// Configuration management takes over: ansible-playbook with drover's inventory, over SSH.
		st := l.status()
		dir := t.TempDir()
		inventory := filepath.Join(dir, "drover-inventory")
		must(t, os.WriteFile(inventory, []byte("#!/bin/sh\nexport DROVER_SERVER="+st.API+" DROVER_TOKEN_FILE="+filepath.Join(l.state, "drover-admin.token")+
			"\nexec "+droverBin+" inventory \"$@\"\n"), 0o755))
		playbook := filepath.Join(dir, "site.yml")
		must(t, os.WriteFile(playbook, []byte(`- hosts: state_deployed:&variant_compute_lvm
  gather_facts: false
  tasks:
    - copy:
        dest: /etc/drover-handoff
        content: "{{ drover_fqdn }} {{ drover_role }} {{ drover_networks.storage.address }}\n"
`), 0o644))
		cmd := exec.Command("ip", "netns", "exec", st.Server.NS, "ansible-playbook", "-i", inventory, playbook, "-u", "root", "--private-key", filepath.Join(l.state, "ssh-lab"))
		cmd.Env = append(os.Environ(), "HOME="+dir, "ANSIBLE_HOST_KEY_CHECKING=False", "ANSIBLE_LOCAL_TEMP="+dir, "ANSIBLE_SSH_ARGS=-o UserKnownHostsFile=/dev/null -o ConnectTimeout=20")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "lab-compute-lvm-03") || !strings.Contains(string(out), "changed=1") {
			t.Errorf("ansible-playbook: %v\n%s", err, out)
		}
		out2, err := exec.Command("ip", "netns", "exec", st.Server.NS, "ssh", "-i", filepath.Join(l.state, "ssh-lab"),
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
			"root@10.77.0.13", "cat /etc/drover-handoff").CombinedOutput()
		if err != nil || string(out2) != "lab-compute-03.lab.drover.test compute 10.77.16.13\n" {
			t.Errorf("what ansible wrote: %v %q", err, out2)
		}
	})

	t.Run("a deployed machine that reboots boots from its disk", func(t *testing.T) {
		vm := vms["lab-compute-02"]
		if out, err := l.drover("lab", "power", "lab-compute-02", "cycle"); err != nil {
			t.Fatalf("power cycle: %v %s", err, out)
		}
		since := time.Now()
		waitFor(t, "the rebooted machine's script", 2*time.Minute, func() bool {
			s := showJSON(t, l.db, vm.MAC)
			for _, e := range s.Timeline {
				if e.Kind == "ipxe-script" && strings.Contains(e.Reason, "boot from local disk") && e.At.After(since) {
					return true
				}
			}
			return false
		})
		s := showJSON(t, l.db, vm.MAC)
		deployed := false
		for _, e := range s.Timeline {
			if e.To == "deployed" {
				deployed = true
			}
			if deployed && (e.To == "deploying" || (e.Kind == "ipxe-script" && strings.HasPrefix(e.Reason, "install"))) {
				t.Errorf("an install started again after deployment: %+v", e)
			}
		}
		if s.Machine.State != "deployed" {
			t.Errorf("state %s", s.Machine.State)
		}
	})

	t.Run("reinstall --power-cycle through the machine's BMC, nobody touching it", func(t *testing.T) {
		const name = "lab-compute-01"
		vm := vms[name]
		if vm.BMC != "10.77.8.11" {
			t.Fatalf("%s's BMC is at %q, want its slot's BMC address 10.77.8.11", name, vm.BMC)
		}
		st := l.status()
		operator := func(args ...string) (string, error) {
			out, err := exec.Command("ip", append([]string{"netns", "exec", st.Server.NS, droverBin, "--server", st.API,
				"--token-file", filepath.Join(l.state, "drover-admin.token")}, args...)...).CombinedOutput()
			return string(out), err
		}
		if out, err := operator("power", name, "status"); err != nil || !strings.Contains(out, "power on") {
			t.Fatalf("power status: %v %s", err, out)
		}
		since := time.Now()
		out, err := operator("reinstall", name, "--power-cycle", "--reason", "new kernel")
		if err != nil || !strings.Contains(out, "power cycle via BMC 10.77.8.11:623") {
			t.Fatalf("reinstall --power-cycle: %v %s", err, out)
		}
		waitFor(t, name+" reinstalled", 6*time.Minute, func() bool {
			s := showJSON(t, l.db, vm.MAC)
			return s.Machine.State == "deployed" && s.Machine.StateSince.After(since)
		})
		// The timeline reads: power action, then DHCP, then the install, then deployed.
		want := []struct{ kind, text string }{
			{"power", "power pxe-once, then cycle via ipmi BMC 10.77.8.11:623: ok"},
			{"dhcp-ack", "10.77.0.11"},
			{"ipxe-script", "install " + name},
			{"phone-home", "installed"},
			{"transition", "deploying -> deployed"},
		}
		var got []string
		i := 0
		for _, e := range showJSON(t, l.db, vm.MAC).Timeline {
			if e.At.Before(since.Add(-time.Second)) {
				continue
			}
			line := e.Kind + ": " + e.Reason
			if e.Kind == "transition" {
				line = e.Kind + ": " + e.From + " -> " + e.To
			}
			got = append(got, line)
			if i < len(want) && e.Kind == want[i].kind && strings.Contains(line, want[i].text) {
				i++
			}
		}
		if i < len(want) {
			t.Fatalf("timeline after the reinstall lacks %s %q in order:\n%s", want[i].kind, want[i].text, strings.Join(got, "\n"))
		}
		t.Logf("timeline after reinstall --power-cycle:\n%s", strings.Join(got, "\n"))
		// The BMC restarted the machine: its QEMU is a new process.
		for _, v := range l.status().VMs {
			if v.Name == name && (v.PID == vm.PID || v.PID == 0) {
				t.Errorf("%s's QEMU was not restarted by its BMC (pid %d before, %d after)", name, vm.PID, v.PID)
			}
		}
		if out, err := operator("audit", "--action", "power pxe-once,cycle"); err != nil || !strings.Contains(out, name) {
			t.Errorf("audit: %v %s", err, out)
		}
	})

	t.Run("a machine on a port without a slot stays discovered", func(t *testing.T) {
		vm := vms["p1-tor2/swp5"]
		waitFor(t, "the unknown machine's script", 2*time.Minute, func() bool {
			m, ok := l.byMAC(vm.MAC)
			return ok && hasEntry(showJSON(t, l.db, vm.MAC), "ipxe-script", "discovery") && m.State == "discovered"
		})
		for _, e := range showJSON(t, l.db, vm.MAC).Timeline {
			if e.To == "deploying" || e.Kind == "template" || e.Kind == "kernel" {
				t.Errorf("the unknown machine started an install: %+v", e)
			}
		}
	})

	t.Run("replaced hardware installs into the same identity", func(t *testing.T) {
		old := vms["lab-compute-01"]
		out, err := l.drover("lab", "replace", "lab-compute-01")
		if err != nil {
			t.Fatalf("replace: %v %s", err, out)
		}
		var newMAC string
		for _, vm := range l.status().VMs {
			if vm.Name == "lab-compute-01" {
				newMAC = vm.MAC
			}
		}
		if newMAC == old.MAC || !strings.Contains(string(out), newMAC) {
			t.Fatalf("replace output %s, MAC %s", out, newMAC)
		}
		l.waitDeployed("the replacement deployed", 3*time.Minute, newMAC)
		s := showJSON(t, l.db, newMAC)
		if s.Machine.Name != "lab-compute-01" || s.Machine.Slot != "p1-tor1/swp1" || !hasEntry(s, "hardware-replaced", old.MAC+" replaced by "+newMAC) ||
			!hasEntry(s, "dhcp-ack", "10.77.0.11 as lab-compute-01") {
			t.Errorf("replacement %+v\n%+v", s.Machine, s.Timeline)
		}
		if o := showJSON(t, l.db, old.MAC); o.Machine.State != "retired" {
			t.Errorf("old hardware is %s", o.Machine.State)
		}
	})

	t.Run("drover killed mid-install: the install completes, no address given twice", func(t *testing.T) {
		if _, err := l.drover("lab", "replace", "lab-storage-02"); err != nil {
			t.Fatal(err)
		}
		var mac string
		for _, vm := range l.status().VMs {
			if vm.Name == "lab-storage-02" {
				mac = vm.MAC
			}
		}
		waitFor(t, "the install to start", 2*time.Minute, func() bool {
			return hasEntry(showJSON(t, l.db, mac), "ipxe-script", "install")
		})
		pid := l.status().Server.PID
		syscall.Kill(pid, syscall.SIGKILL)
		waitFor(t, "the lab to restart drover", 30*time.Second, func() bool { return l.status().Server.PID != pid })
		l.waitDeployed("the install to finish after the restart", 6*time.Minute, mac)
		holders := map[string]map[string]bool{}
		for _, m := range l.machines() {
			if m.State == "retired" {
				continue
			}
			for _, e := range showJSON(t, l.db, m.MAC).Timeline {
				if e.Kind == "dhcp-ack" || e.Kind == "dhcp-offer" {
					addr, _, _ := strings.Cut(e.Reason, " ")
					if holders[addr] == nil {
						holders[addr] = map[string]bool{}
					}
					holders[addr][m.MAC] = true
				}
			}
		}
		for addr, macs := range holders {
			if len(macs) > 1 {
				t.Errorf("%s was given to %d machines: %v", addr, len(macs), macs)
			}
		}
	})

	t.Run("a commit rolls through the test zone, waits for approval, then prod one machine at a time", func(t *testing.T) {
		testRollout(t, l)
	})

	// Two installs on different machines at once: they share the lab's two cores, not each other's time.
	t.Run("failures the install catches", func(t *testing.T) {
		t.Run("a machine whose two cables are swapped shows cabling-mismatch naming both ports", func(t *testing.T) {
			t.Parallel()
			const name = "lab-compute-02" // its second NIC is cabled to p1-tor1/swp6 (lab up --second-nic)
			out, err := l.drover("lab", "swap-cables", name)
			if err != nil || !strings.Contains(string(out), "now on p1-tor1/swp6") {
				t.Fatalf("swap-cables: %v %s", err, out)
			}
			since := time.Now()
			if out, err := l.api("reinstall", name, "--power-cycle", "--reason", "cables checked"); err != nil {
				t.Fatalf("reinstall: %v %s", err, out)
			}
			mac := vms[name].MAC
			waitFor(t, name+" reinstalled", 5*time.Minute, func() bool {
				m := showJSON(t, l.db, mac).Machine
				return m.State == "deployed" && m.StateSince.After(since)
			})
			var found []string
			for _, e := range showJSON(t, l.db, mac).Timeline {
				if e.Kind == "cabling-mismatch" && e.At.After(since) {
					found = append(found, e.Reason)
				}
			}
			all := strings.Join(found, "\n")
			for _, want := range []string{"boot NIC eth0 (" + mac + ") is cabled to p1-tor1/swp6; the design puts lab-compute-02 on p1-tor1/swp2",
				"is on p1-tor1/swp2, lab-compute-02's boot port, but it is not the NIC that booted (" + mac + "): the cables are swapped"} {
				if !strings.Contains(all, want) {
					t.Errorf("cabling-mismatch entries lack %q:\n%s", want, all)
				}
			}
			listing, err := l.api("cabling", "-o", "json")
			var reports []struct{ Machine, Status string }
			json.Unmarshal([]byte(listing), &reports)
			mismatched := map[string]bool{}
			for _, r := range reports {
				mismatched[r.Machine] = r.Status == "mismatch"
			}
			if !mismatched[name] || len(reports) == 0 {
				t.Errorf("drover cabling does not list %s as mismatched: %v\n%s", name, err, listing)
			}
			for m, bad := range mismatched {
				if bad && m != name {
					t.Errorf("drover cabling: %s mismatched too", m)
				}
			}
		})

		t.Run("an image that fails its checksum fails the install and is not booted", func(t *testing.T) {
			t.Parallel()
			// A new version reaches the test channel; its file is then damaged on the server.
			bad := filepath.Join(t.TempDir(), "bad.raw")
			must(t, os.WriteFile(bad, bytes.Repeat([]byte("not an OS "), 300_000), 0o644))
			artifacts := filepath.Join(l.state, "artifacts")
			out, err := exec.Command(droverBin, "--db", l.db, "artifacts", "add", "debian-12", "damaged", bad, "--channel", "test", "--artifacts", artifacts).CombinedOutput()
			if err != nil {
				t.Fatalf("artifacts add: %v %s", err, out)
			}
			sum := strings.Fields(strings.SplitN(string(out), "sha256 ", 2)[1])[0]
			sum = strings.TrimSuffix(sum, ",")
			f, err := os.OpenFile(filepath.Join(artifacts, "sha256", sum), os.O_RDWR, 0)
			must(t, err)
			f.WriteAt([]byte("X"), 1234)
			f.Close()
			const name = "lab-storage-01"
			since := time.Now()
			if out, err := l.api("reinstall", name, "--power-cycle"); err != nil {
				t.Fatalf("reinstall: %v %s", err, out)
			}
			mac := vms[name].MAC
			waitFor(t, name+" deploy-failed", 5*time.Minute, func() bool { return showJSON(t, l.db, mac).Machine.State == "deploy-failed" })
			s := showJSON(t, l.db, mac)
			if !hasEntry(s, "transition", "image checksum mismatch") {
				t.Errorf("%s failed without naming the checksum: %+v", name, s.Timeline)
			}
			for _, e := range s.Timeline {
				if e.At.After(since) && (e.Kind == "phone-home" && strings.Contains(e.Reason, "booted") || e.Kind == "ipxe-script" && strings.Contains(e.Reason, "local disk")) {
					t.Errorf("the failed image was booted: %+v", e)
				}
			}
			// Its disk has no boot sector left: firmware finds nothing to boot on it.
			var disk string
			for _, vm := range l.status().VMs {
				if vm.Name == name {
					disk = vm.Disk
				}
			}
			if out, err := exec.Command("qemu-io", "-f", "qcow2", "-r", "-U", "-c", "read -P 0 0 1M", disk).CombinedOutput(); err != nil || strings.Contains(string(out), "Pattern verification failed") {
				t.Errorf("%s's disk still has a boot sector after a failed image: %v %s", name, err, out)
			}
		})

	})

	t.Run("lab down leaves nothing behind", func(t *testing.T) {
		if out, err := l.drover("lab", "down"); err != nil {
			t.Fatalf("lab down: %v %s", err, out)
		}
		select {
		case <-upDone:
		case <-time.After(30 * time.Second):
			t.Fatal("lab up did not exit")
		}
		out, _ := exec.Command("ip", "netns", "list").Output()
		if strings.Contains(string(out), l.prefix) {
			t.Errorf("namespaces left: %s", out)
		}
		ps, _ := exec.Command("ps", "-eo", "args").Output()
		for _, line := range strings.Split(string(ps), "\n") {
			if strings.Contains(line, l.state) || strings.Contains(line, l.prefix) {
				t.Errorf("process left: %s", line)
			}
		}
		if _, err := os.Stat(filepath.Join(l.state, "state.json")); err == nil {
			t.Error("state file left")
		}
	})
}

type timelineEntry struct {
	At                     time.Time
	Kind, Reason, From, To string
}

type shownMachine struct {
	Machine  labMachine      `json:"machine"`
	Timeline []timelineEntry `json:"timeline"`
}

func showJSON(t *testing.T, db, ref string) shownMachine {
	t.Helper()
	out, err := exec.Command(droverBin, "--db", db, "show", "-o", "json", ref).Output()
	if err != nil {
		return shownMachine{}
	}
	var s shownMachine
	json.Unmarshal(out, &s)
	return s
}

func hasEntry(s shownMachine, kind, reason string) bool {
	for _, e := range s.Timeline {
		if e.Kind == kind && strings.Contains(e.Reason, reason) {
			return true
		}
	}
	return false
}

type rolloutView struct {
	ID       int64  `json:"id"`
	State    string `json:"state"`
	Detail   string `json:"detail"`
	Source   string `json:"source"`
	Machines []struct {
		Name     string    `json:"name"`
		Zone     string    `json:"zone"`
		Batch    int       `json:"batch"`
		Phase    string    `json:"phase"`
		Detail   string    `json:"detail"`
		Started  time.Time `json:"started"`
		Finished time.Time `json:"finished"`
	} `json:"machines"`
}

func (l *labRun) rollout(id int64) rolloutView {
	l.t.Helper()
	out, err := l.api("rollout", "status", fmt.Sprint(id), "-o", "json")
	if err != nil {
		l.t.Fatalf("rollout status: %v %s", err, out)
	}
	var v rolloutView
	must(l.t, json.Unmarshal([]byte(out), &v))
	return v
}

// powerEntries counts a machine's power actions since a time.
func (l *labRun) powerEntries(name string, since time.Time) int {
	n := 0
	for _, e := range showJSON(l.t, l.db, name).Timeline {
		if e.Kind == "power" && e.At.After(since) {
			n++
		}
	}
	return n
}

func testRollout(t *testing.T, l *labRun) {
	labMachines := []string{"lab-compute-01", "lab-compute-02", "lab-compute-lvm-03", "lab-storage-01", "lab-storage-02"}
	// The commit changes the busybox installer's profile: of the test zone,
	// only the machines installed with it (not the Debian ones) reinstall.
	changed := []string{"lab-compute-01", "lab-compute-02"}
	prod := []string{"prod-compute-01", "prod-compute-02", "prod-compute-03"}
	waitFor(t, "every machine deployed", 5*time.Minute, func() bool {
		for _, n := range append(append([]string{}, labMachines...), prod...) {
			if showJSON(t, l.db, n).Machine.State != "deployed" {
				return false
			}
		}
		return true
	})
	// prod-compute-01, the prod canary, will fail its health gate.
	must(t, os.WriteFile(filepath.Join(l.state, "unhealthy-prod-compute-01"), nil, 0o644))
	since := time.Now()
	for _, f := range []string{"lab.yaml", "prod.yaml"} {
		path := filepath.Join(l.repo.dir, "zone", f)
		b, err := os.ReadFile(path)
		must(t, err)
		must(t, os.WriteFile(path, []byte(strings.Replace(string(b), "args: console=ttyS0 quiet", "args: console=ttyS0 quiet image=2", 1)), 0o644))
	}
	commit := l.repo.commit("new image")

	// The test zone (auto_apply) takes it at once, as a rollout.
	var test rolloutView
	waitFor(t, "the test zone's rollout", time.Minute, func() bool {
		out, _ := l.api("rollout", "status", "-o", "json")
		var ros []rolloutView
		json.Unmarshal([]byte(out), &ros)
		if len(ros) == 0 {
			return false
		}
		test = ros[0]
		return true
	})
	if !strings.Contains(test.Source, commit[:12]) {
		t.Errorf("rollout source %q does not name the commit", test.Source)
	}
	waitFor(t, "the test zone's rollout done", 5*time.Minute, func() bool { return l.rollout(test.ID).State == "done" })
	test = l.rollout(test.ID)
	testDone := time.Time{}
	for _, m := range test.Machines {
		if m.Zone != "lab" || m.Phase != "done" {
			t.Errorf("test rollout machine %+v", m)
		}
		if m.Finished.After(testDone) {
			testDone = m.Finished
		}
	}
	if len(test.Machines) != len(changed) {
		t.Errorf("the test rollout reinstalled %d machines, want %d", len(test.Machines), len(changed))
	}
	for _, n := range prod {
		if l.powerEntries(n, since) != 0 {
			t.Errorf("%s was touched before the prod zone was approved", n)
		}
	}
	out, err := l.api("pending")
	if err != nil || !strings.Contains(out, "waiting for `drover approve "+commit[:12]+"`: zones prod") {
		t.Fatalf("pending: %v\n%s", err, out)
	}

	// Approved, prod rolls out one machine at a time; its canary fails the gate.
	approved := time.Now()
	if out, err := l.api("approve", commit[:12]); err != nil || !strings.Contains(out, "approved by admin") {
		t.Fatalf("approve: %v %s", err, out)
	}
	prodID := test.ID + 1
	waitFor(t, "the prod rollout paused by the failed health gate", 4*time.Minute, func() bool {
		out, err := l.api("rollout", "status", fmt.Sprint(prodID), "-o", "json")
		return err == nil && strings.Contains(out, `"state": "paused"`)
	})
	pr := l.rollout(prodID)
	if !strings.Contains(pr.Detail, "prod-compute-01") || !strings.Contains(pr.Detail, "health") {
		t.Errorf("paused: %s", pr.Detail)
	}
	for _, n := range prod[1:] {
		if c := l.powerEntries(n, since); c != 0 {
			t.Errorf("%s was power-cycled while the canary failed", n)
		}
	}

	// Healthy again, resumed; drover is killed while the next machine installs.
	must(t, os.Remove(filepath.Join(l.state, "unhealthy-prod-compute-01")))
	if out, err := l.api("rollout", "resume", fmt.Sprint(prodID)); err != nil {
		t.Fatalf("resume: %v %s", err, out)
	}
	waitFor(t, "prod-compute-02 installing", 3*time.Minute, func() bool {
		for _, m := range l.rollout(prodID).Machines {
			if m.Name == "prod-compute-02" && m.Phase == "installing" {
				return true
			}
		}
		return false
	})
	pid := l.status().Server.PID
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, "the lab to restart drover", 30*time.Second, func() bool { return l.status().Server.PID != pid })
	waitFor(t, "the prod rollout done after the restart", 5*time.Minute, func() bool {
		out, err := l.api("rollout", "status", fmt.Sprint(prodID), "-o", "json")
		return err == nil && strings.Contains(out, `"state": "done"`)
	})
	pr = l.rollout(prodID)
	for _, m := range pr.Machines {
		want := "done"
		if m.Name == "prod-compute-01" {
			want = "failed"
		}
		if m.Phase != want {
			t.Errorf("%s: %s (%s), want %s", m.Name, m.Phase, m.Detail, want)
		}
		if c := l.powerEntries(m.Name, approved); c != 1 {
			t.Errorf("%s was power-cycled %d times by the rollout, want once", m.Name, c)
		}
		if m.Started.Before(testDone) {
			t.Errorf("%s started before the test zone was done", m.Name)
		}
	}
	for i, a := range pr.Machines {
		for _, b := range pr.Machines[i+1:] {
			if a.Started.Before(b.Finished) && b.Started.Before(a.Finished) {
				t.Errorf("%s and %s of pod p2 were down together", a.Name, b.Name)
			}
		}
	}
	hooks, _ := os.ReadFile(filepath.Join(l.state, "hooks.log"))
	if !strings.Contains(string(hooks), "drain prod-compute-02 10.78.0.12") || !strings.Contains(string(hooks), "undrain prod-compute-02") {
		t.Errorf("hooks.log:\n%s", hooks)
	}
	if out, err := l.api("audit", "--action", "design-apply", "-o", "json"); err != nil || !strings.Contains(out, "approved by admin") || !strings.Contains(out, "Ada Lovelace") {
		t.Errorf("audit: %v %s", err, out)
	}
	// The timeline per wave, for the record.
	for _, ro := range []rolloutView{test, pr} {
		for _, m := range ro.Machines {
			t.Logf("rollout %d %-18s batch %d %-7s %s -> %s (%.1fs) %s", ro.ID, m.Name, m.Batch, m.Phase, m.Started.Sub(since).Round(100*time.Millisecond),
				m.Finished.Sub(since).Round(100*time.Millisecond), m.Finished.Sub(m.Started).Seconds(), m.Detail)
		}
	}
}
