package handoff

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/zone"
)

func labHosts(t *testing.T) []Host {
	t.Helper()
	d, err := zone.Load("../../examples/lab")
	if err != nil {
		t.Fatal(err)
	}
	ms := []*machine.Machine{
		{ID: 1, MAC: "52:54:00:00:00:01", SlotKey: "p1-tor1/swp1", Name: "lab-compute-01", State: machine.Deployed, Facts: map[string]any{"cpus": 4}},
		{ID: 2, MAC: "52:54:00:00:00:02", SlotKey: "p1-tor1/swp1", Name: "lab-compute-01", State: machine.Retired}, // replaced: not the host
		{ID: 3, MAC: "52:54:00:00:00:03", SlotKey: "p1-tor2/swp1", Name: "lab-storage-01", State: machine.Maintenance,
			Maintenance: &machine.MaintenanceInfo{Reason: "disk", Owner: "ada"}},
		{ID: 4, MAC: "52:54:00:00:00:04", State: machine.Discovered}, // no slot: not a host
	}
	return Hosts(zone.NewIndex(d), ms)
}

func TestAnsibleGroups(t *testing.T) {
	inv := Ansible(labHosts(t))
	tests := []struct {
		group string
		hosts []string
	}{
		{"zone_lab", []string{"lab-compute-01", "lab-compute-02", "lab-compute-lvm-03", "lab-mgmt-01", "lab-storage-01", "lab-storage-02"}},
		{"pod_lab_p1", []string{"lab-compute-01", "lab-compute-02", "lab-compute-lvm-03", "lab-mgmt-01", "lab-storage-01", "lab-storage-02"}},
		{"role_compute", []string{"lab-compute-01", "lab-compute-02", "lab-compute-lvm-03"}},
		{"variant_compute_lvm", []string{"lab-compute-lvm-03"}},
		{"environment_test", []string{"lab-compute-01", "lab-compute-02", "lab-compute-lvm-03", "lab-mgmt-01", "lab-storage-01", "lab-storage-02"}},
		{"state_deployed", []string{"lab-compute-01"}},
		{"state_maintenance", []string{"lab-storage-01"}},
		{"state_absent", []string{"lab-compute-02", "lab-compute-lvm-03", "lab-mgmt-01", "lab-storage-02"}},
	}
	for _, tt := range tests {
		g, _ := inv[tt.group].(map[string]any)
		if got, _ := g["hosts"].([]string); !slices.Equal(got, tt.hosts) {
			t.Errorf("%s: %v, want %v", tt.group, got, tt.hosts)
		}
	}
	children := inv["all"].(map[string]any)["children"].([]string)
	if !slices.Contains(children, "role_storage") || slices.Contains(children, "_meta") {
		t.Errorf("all's children: %v", children)
	}
	v := inv["_meta"].(map[string]any)["hostvars"].(map[string]any)["lab-compute-01"].(map[string]any)
	if v["ansible_host"] != "10.77.0.11" || v["drover_mac"] != "52:54:00:00:00:01" || v["drover_state"] != "deployed" || v["drover_facts"].(map[string]any)["cpus"] != 4 {
		t.Errorf("lab-compute-01's variables: %v", v)
	}
}

func TestGroupName(t *testing.T) {
	for in, want := range map[string]string{"lab": "lab", "bgo-1": "bgo_1", "a.b c": "a_b_c"} {
		if got := GroupName("zone", in); got != "zone_"+want {
			t.Errorf("%q: %q", in, got)
		}
	}
}

func TestFind(t *testing.T) {
	hosts := labHosts(t)
	for _, name := range []string{"lab-compute-lvm-03", "lab-compute-03", "lab-compute-03.lab.drover.test", "LAB-COMPUTE-03.lab.drover.test."} {
		if h, ok := Find(hosts, name); !ok || h.Slot.Key != "p1-tor1/swp3" {
			t.Errorf("%s: %v %v", name, ok, h.Slot)
		}
	}
	if _, ok := Find(hosts, "nosuch"); ok {
		t.Error("found nosuch")
	}
}

func TestENCAndChef(t *testing.T) {
	h, _ := Find(labHosts(t), "lab-compute-03")
	enc, err := ENC(h)
	if err != nil {
		t.Fatal(err)
	}
	p := enc["parameters"].(map[string]any)
	if !slices.Equal(enc["classes"].([]string), []string{"base", "nova_compute"}) || enc["environment"] != "test" ||
		p["ephemeral_storage"] != "lvm" || p["cpu_allocation_ratio"] != 4.0 || p["drover_bmc_address"] != "10.77.8.13" {
		t.Errorf("enc: %v", enc)
	}
	if _, ok := p["drover_params"]; ok {
		t.Error("params are top-level parameters, not drover_params")
	}
	// A role parameter named like drover's own is refused, not shadowed.
	h.Zone.Role("compute").Params["drover_address"] = "x"
	if _, err := ENC(h); err == nil || !strings.Contains(err.Error(), "drover_address") {
		t.Errorf("clash: %v", err)
	}
	delete(h.Zone.Role("compute").Params, "drover_address")

	chef := Chef(h)
	b, _ := json.Marshal(chef)
	if !slices.Equal(chef["run_list"].([]string), []string{"recipe[base]", "recipe[nova_compute]"}) || chef["ephemeral_storage"] != "lvm" ||
		chef["name"] != "lab-compute-03.lab.drover.test" || chef["drover"].(map[string]any)["address"] != "10.77.0.13" {
		t.Errorf("chef: %s", b)
	}
}

func TestPrometheusTargets(t *testing.T) {
	hosts := labHosts(t) // lab-compute-01 deployed, lab-storage-01 in maintenance, the rest absent
	tests := []struct {
		network string
		port    int
		want    []string
	}{
		{"", 9100, []string{"10.77.0.11:9100", "10.77.100.2:9100"}},
		{"boot", 9182, []string{"10.77.0.11:9182", "10.77.100.2:9182"}},
		{"storage", 9100, []string{"10.77.16.11:9100", "10.77.16.101:9100"}},
		{"nosuch", 9100, nil},
	}
	for _, tt := range tests {
		var got []string
		groups := Prometheus(hosts, tt.network, tt.port)
		for _, g := range groups {
			got = append(got, g.Targets...)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("network %q port %d: %v, want %v", tt.network, tt.port, got, tt.want)
		}
		for _, g := range groups {
			if g.Labels["name"] == "lab-storage-01" && (g.Labels["state"] != "maintenance" || g.Labels["role"] != "storage" || g.Labels["pod"] != "p1" || g.Labels["environment"] != "test") {
				t.Errorf("labels %v", g.Labels)
			}
		}
	}
}
