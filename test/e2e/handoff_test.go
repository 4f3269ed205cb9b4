package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestHandoffToConfigManagement feeds drover's inventory to the real tools:
// Ansible reads it as an executable inventory, Puppet as its ENC.
func TestHandoffToConfigManagement(t *testing.T) {
	require(t, map[string]string{"ansible-inventory": "ansible-core", "puppet": "puppet"})
	dir := t.TempDir()
	db := filepath.Join(dir, "drover.db")
	srv := serveLoopback(t, db, "--design", "../../examples/lab")
	// The executable inventory and the ENC are two-line scripts around drover, as docs/handoff.md shows.
	env := "export DROVER_SERVER=" + srv.api + " DROVER_TOKEN_FILE=" + filepath.Join(dir, "drover-admin.token") + "\n"
	inventory := filepath.Join(dir, "drover-inventory")
	must(t, os.WriteFile(inventory, []byte("#!/bin/sh\n"+env+"exec "+droverBin+" inventory \"$@\"\n"), 0o755))
	enc := filepath.Join(dir, "drover-enc")
	must(t, os.WriteFile(enc, []byte("#!/bin/sh\n"+env+"exec "+droverBin+" enc \"$1\"\n"), 0o755))

	t.Run("ansible-inventory reads the groups and host variables", func(t *testing.T) {
		cmd := exec.Command("ansible-inventory", "-i", inventory, "--list")
		cmd.Env = append(os.Environ(), "ANSIBLE_LOCAL_TEMP="+dir, "HOME="+dir, "ANSIBLE_INVENTORY_UNPARSED_FAILED=true")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("ansible-inventory: %v %s", err, stderrOf(err))
		}
		var inv map[string]json.RawMessage
		must(t, json.Unmarshal(out, &inv))
		groups := map[string][]string{
			"zone_lab":            {"lab-compute-01", "lab-compute-02", "lab-compute-lvm-03", "lab-mgmt-01", "lab-storage-01", "lab-storage-02"},
			"pod_lab_p1":          {"lab-compute-01", "lab-compute-02", "lab-compute-lvm-03", "lab-mgmt-01", "lab-storage-01", "lab-storage-02"},
			"role_storage":        {"lab-storage-01", "lab-storage-02"},
			"variant_compute_lvm": {"lab-compute-lvm-03"},
			"environment_test":    {"lab-compute-01", "lab-compute-02", "lab-compute-lvm-03", "lab-mgmt-01", "lab-storage-01", "lab-storage-02"},
			"state_absent":        {"lab-compute-01", "lab-compute-02", "lab-compute-lvm-03", "lab-mgmt-01", "lab-storage-01", "lab-storage-02"},
		}
		for g, want := range groups {
			var group struct {
				Hosts []string `json:"hosts"`
			}
			json.Unmarshal(inv[g], &group)
			got := slices.Sorted(slices.Values(group.Hosts))
			if !slices.Equal(got, want) {
				t.Errorf("group %s: %v, want %v", g, got, want)
			}
		}
		var meta struct {
			Hostvars map[string]map[string]any `json:"hostvars"`
		}
		must(t, json.Unmarshal(inv["_meta"], &meta))
		v := meta.Hostvars["lab-compute-lvm-03"]
		nets, _ := v["drover_networks"].(map[string]any)
		storage, _ := nets["storage"].(map[string]any)
		if v["ansible_host"] != "10.77.0.13" || v["drover_bmc_address"] != "10.77.8.13" || storage["address"] != "10.77.16.13" ||
			v["drover_fqdn"] != "lab-compute-03.lab.drover.test" || v["drover_state"] != "absent" {
			t.Errorf("lab-compute-lvm-03's variables: %v", v)
		}
		params, _ := v["drover_params"].(map[string]any)
		classes, _ := v["drover_classes"].([]any)
		if params["ephemeral_storage"] != "lvm" || params["cpu_allocation_ratio"] != 4.0 || len(classes) != 2 {
			t.Errorf("role and variant not merged: classes %v params %v", classes, params)
		}
		// --host, as Ansible calls an inventory without _meta.
		cmd = exec.Command(inventory, "--host", "lab-storage-01.lab.drover.test")
		out, err = cmd.Output()
		if err != nil || !strings.Contains(string(out), `"ansible_host": "10.77.100.2"`) {
			t.Errorf("--host: %v %s", err, out)
		}
	})

	t.Run("puppet takes drover as its external node classifier", func(t *testing.T) {
		// A Puppet of its own: confdir, environments (test, the zone's), no server.
		conf := filepath.Join(dir, "puppet")
		must(t, os.MkdirAll(filepath.Join(conf, "code", "environments", "test", "manifests"), 0o755))
		cmd := exec.Command("puppet", "node", "find", "lab-compute-03.lab.drover.test", "--confdir", conf, "--vardir", filepath.Join(conf, "var"),
			"--codedir", filepath.Join(conf, "code"), "--node_terminus", "exec", "--external_nodes", enc, "--render-as", "json")
		cmd.Env = append(os.Environ(), "HOME="+dir)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("puppet node find: %v %s", err, stderrOf(err))
		}
		var node struct {
			Name        string         `json:"name"`
			Classes     any            `json:"classes"`
			Parameters  map[string]any `json:"parameters"`
			Environment string         `json:"environment"`
		}
		must(t, json.Unmarshal(out, &node))
		classes, _ := json.Marshal(node.Classes)
		if node.Environment != "test" || !strings.Contains(string(classes), "nova_compute") || node.Parameters["ephemeral_storage"] != "lvm" ||
			node.Parameters["drover_address"] != "10.77.0.13" || node.Parameters["drover_pod"] != "p1" {
			t.Errorf("puppet's node: %s", out)
		}
		// A host the design does not have: the ENC fails, and so does Puppet.
		cmd = exec.Command("puppet", "node", "find", "nosuch.lab.drover.test", "--confdir", conf, "--vardir", filepath.Join(conf, "var"),
			"--codedir", filepath.Join(conf, "code"), "--node_terminus", "exec", "--external_nodes", enc, "--render-as", "json")
		cmd.Env = append(os.Environ(), "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err == nil && !strings.Contains(string(out), "Failed") {
			t.Errorf("puppet found a host drover does not have: %s", out)
		}
	})

	t.Run("chef node JSON", func(t *testing.T) {
		cmd := exec.Command(droverBin, "--server", srv.api, "--token-file", filepath.Join(dir, "drover-admin.token"), "chef", "lab-storage-01")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chef: %v %s", err, stderrOf(err))
		}
		var node map[string]any
		must(t, json.Unmarshal(out, &node))
		rl, _ := json.Marshal(node["run_list"])
		if string(rl) != `["recipe[base]","recipe[ceph_osd]"]` || node["name"] != "lab-storage-01.lab.drover.test" || node["chef_environment"] != "test" {
			t.Errorf("chef node: %s", out)
		}
	})
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
