package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLabWithAgents runs drover lab up --agents: pod lab/p1 is served by its
// agent, in a namespace of its own, through the ToRs' relays. While a UEFI
// machine writes Debian to its disk the controller stops (SIGSTOP: it holds
// its sockets and answers nothing); the machine finishes, reboots into its
// installed system and reaches deployed through the agent alone. Then the
// stopped controller is killed and the lab restarts it: the agent's queue
// drains and the machine's timeline at the controller is the agent's, entry
// for entry. A power call to the controller drives the machine's BMC from
// the controller and the agent records it.
func TestLabWithAgents(t *testing.T) {
	require(t, map[string]string{"ip": "iproute2", "qemu-system-x86_64": "qemu-system-x86", "dhcrelay": "isc-dhcp-relay",
		"busybox": "busybox-static", "cpio": "cpio", "curl": "curl", "apt-get": "apt", "ipmi_sim": "openipmi",
		"lldpd": "lldpd", "vtysh": "frr", "mmdebstrap": "mmdebstrap", "grub-mkimage": "grub-pc-bin grub-efi-amd64-bin", "mcopy": "mtools", "mkfs.vfat": "dosfstools",
		"sfdisk": "fdisk", "qemu-img": "qemu-utils", "qemu-io": "qemu-utils"})
	if _, err := os.Stat("/usr/share/ovmf/OVMF.fd"); err != nil {
		require(t, map[string]string{"/usr/share/ovmf/OVMF.fd": "ovmf"})
	}
	l := &labRun{t: t, state: t.TempDir(), prefix: "da" + randomID() + "-"}
	l.db = filepath.Join(l.state, "drover.db")
	l.up([]string{"lab-up.log", "drover.log", "agent0.log", "p1-tor1-ztp.log", "p1-tor1-ztp-script.log"}, "../../examples/lab", "--agents", "--only", "lab-compute-01", "--only", "lab-storage-01")
	var server int
	t.Cleanup(func() { // before the lab goes down: a stopped controller would not stop
		if server != 0 {
			syscall.Kill(server, syscall.SIGCONT)
		}
	})
	var st struct {
		labStatus
		Agents []struct{ Pod, NS, Addr, State, Log string } `json:"agents"`
	}
	waitFor(t, "the lab and its agent to start", labStartTimeout, func() bool {
		out, err := l.drover("lab", "status")
		return err == nil && json.Unmarshal(out, &st) == nil && len(st.Agents) == 1 && len(st.VMs) == 2
	})
	agentDB := filepath.Join(st.Agents[0].State, "agent.db")
	if st.Agents[0].Pod != "lab/p1" {
		t.Fatalf("agents %+v, want one for lab/p1", st.Agents)
	}
	macs := map[string]string{}
	for _, vm := range st.VMs {
		macs[vm.Name] = vm.MAC
	}
	storage := macs["lab-storage-01"]

	waitFor(t, "lab-storage-01 to write its image", 5*time.Minute, func() bool {
		return hasEntry(showJSON(t, agentDB, storage), "progress", "writing debian-12")
	})
	server = st.Server.PID
	must(t, syscall.Kill(server, syscall.SIGSTOP))
	stopped := time.Now()
	t.Run("the install finishes through the agent while the controller is stopped", func(t *testing.T) {
		waitFor(t, "lab-storage-01 deployed at the agent", 6*time.Minute, func() bool {
			return showJSON(t, agentDB, storage).Machine.State == "deployed"
		})
		s := showJSON(t, agentDB, storage)
		if !hasEntry(s, "phone-home", "installed to disk: debian-12") || !hasEntry(s, "phone-home", "booted") {
			t.Errorf("timeline at the agent: %+v", s.Timeline)
		}
		if m, ok := l.byMAC(storage); ok && m.State == "deployed" {
			t.Error("the stopped controller's database says deployed already")
		}
		t.Logf("deployed %s after the controller stopped", time.Since(stopped).Round(time.Second))
	})
	// The controller dies while stopped; the lab starts it again.
	must(t, syscall.Kill(server, syscall.SIGKILL))
	server = 0
	t.Run("the controller's timelines are whole once it is back", func(t *testing.T) {
		for name, mac := range macs {
			waitFor(t, name+" deployed at the controller", 60*time.Second, func() bool {
				m, ok := l.byMAC(mac)
				return ok && m.State == "deployed"
			})
			// The agent keeps booting machines (a deployed one that restarts
			// adds entries): the two agree once its latest report is in.
			var ctl, agent shownMachine
			agree := func() bool {
				ctl, agent = showJSON(t, l.db, mac), showJSON(t, agentDB, mac)
				return entryKinds(ctl) == entryKinds(agent)
			}
			for deadline := time.Now().Add(20 * time.Second); !agree() && time.Now().Before(deadline); {
				time.Sleep(300 * time.Millisecond)
			}
			if got, want := entryKinds(ctl), entryKinds(agent); got != want || len(ctl.Timeline) < 8 {
				t.Errorf("%s: the controller's timeline\n  %s\nthe agent's\n  %s", name, got, want)
			}
		}
	})
	t.Run("power through the controller, recorded by the agent", func(t *testing.T) {
		out, err := l.api("power", "lab-storage-01", "status")
		if err != nil || !strings.Contains(out, "on") {
			t.Fatalf("power status: %v\n%s", err, out)
		}
		waitFor(t, "the power entry at the controller", 20*time.Second, func() bool {
			return hasEntry(showJSON(t, l.db, storage), "power", "power status")
		})
		if !hasEntry(showJSON(t, agentDB, storage), "power", "power status") {
			t.Error("the agent did not record the power call")
		}
	})
}

// entryKinds is a timeline as its entries' kinds, transitions and reasons.
func entryKinds(s shownMachine) string {
	var k []string
	for _, e := range s.Timeline {
		k = append(k, e.Kind+":"+e.From+">"+e.To+":"+e.Reason)
	}
	return strings.Join(k, "\n  ")
}
