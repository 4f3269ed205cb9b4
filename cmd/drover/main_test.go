package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover/drover/internal/zone"
)

type result struct {
	code           int
	stdout, stderr string
}

func drover(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := environment{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(k string) string {
		if k == "USER" {
			return "tester"
		}
		return ""
	}}
	code := run(context.Background(), args, env)
	return result{code, out.String(), errb.String()}
}

func TestValidateExamples(t *testing.T) {
	tests := []struct{ path, want string }{
		{"../../examples/lab", "1 zones, 1 pods, 3 switches, 8 slots"}, // 6 hosts, 2 provisioned switches
		{"../../examples/university", "4 zones, 16 pods, 48 switches, 1406 slots"},
		{"../../examples/university/bgo.yaml", "1 zones, 10 pods, 30 switches, 981 slots"},
	}
	for _, tt := range tests {
		r := drover(t, "", "validate", tt.path)
		if r.code != 0 || !strings.Contains(r.stdout, tt.want) {
			t.Errorf("validate %s: exit %d, %q %q", tt.path, r.code, r.stdout, r.stderr)
		}
	}
}

func TestValidateReportsEveryError(t *testing.T) {
	b, err := os.ReadFile("../../examples/lab/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.NewReplacer("environment: test", "environment: live", "ids: 1-2}", "ids: 1-3}").Replace(string(b))
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "templates"), 0o755)
	os.WriteFile(filepath.Join(dir, "templates", "install.sh"), nil, 0o644)
	os.CopyFS(filepath.Join(dir, "templates", "switch"), os.DirFS("../../examples/lab/templates/switch")) // the lab's switches' ZTP templates
	path := filepath.Join(dir, "lab.yaml")
	os.WriteFile(path, []byte(bad), 0o644)
	r := drover(t, "", "validate", path)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	for _, want := range []string{"has 4 problem(s)", path + ":4:14: environment:", path + ":88:52: pods.p1.switches.p1-tor1.slots[0].ids: 3 ids for 2 ports", path + ":100:52: pods.p1.switches.p1-tor2.slots[0].ids:", path + ":108:54: pods.p1.switches.p1-lom1.slots[1].ids:"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

func TestPlanApplyPlan(t *testing.T) {
	db := filepath.Join(t.TempDir(), "d.db")
	design := "../../examples/university"

	r := drover(t, "", "--db", db, "plan", design)
	if r.code != exitChanges || !strings.Contains(r.stdout, "Plan: 1406 to add, 0 to change (0 need reinstall), 0 to remove.") || !strings.Contains(r.stdout, "zone bgo, pod p1:") {
		t.Fatalf("first plan: exit %d\n%s%s", r.code, r.stdout[max(0, len(r.stdout)-300):], r.stderr)
	}
	r = drover(t, "", "--db", db, "plan", "--json", design)
	var pj struct {
		Changes bool              `json:"changes"`
		Added   []json.RawMessage `json:"added"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &pj); err != nil || !pj.Changes || len(pj.Added) != 1406 || r.code != exitChanges {
		t.Fatalf("plan --json: %v %+v exit %d", err, pj.Changes, r.code)
	}

	r = drover(t, "n\n", "--db", db, "apply", design)
	if r.code != 1 || !strings.Contains(r.stderr, "not applied") {
		t.Fatalf("apply answered no: exit %d %s", r.code, r.stderr)
	}
	r = drover(t, "y\n", "--db", db, "apply", design)
	if r.code != 0 || !strings.Contains(r.stdout, "Applied revision 1") || !strings.Contains(r.stdout, "by tester: 1406 added") {
		t.Fatalf("apply: exit %d %s %s", r.code, r.stdout[max(0, len(r.stdout)-300):], r.stderr)
	}
	r = drover(t, "", "--db", db, "plan", design)
	if r.code != 0 || !strings.Contains(r.stdout, "No changes") {
		t.Fatalf("plan after apply: exit %d %s", r.code, r.stdout)
	}
	r = drover(t, "", "--db", db, "apply", "--yes", design)
	if r.code != 0 || !strings.Contains(r.stdout, "already applied (revision 1)") {
		t.Fatalf("re-apply: exit %d %s", r.code, r.stdout)
	}

	r = drover(t, "", "--db", db, "slots", "--zone", "osl", "--role", "compute", "--variant", "gpu")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 5 || !strings.Contains(r.stdout, "osl-compute-gpu-") {
		t.Fatalf("slots: exit %d\n%s", r.code, r.stdout)
	}
	r = drover(t, "", "--db", db, "slots", "--zone", "test01", "-o", "json")
	var slots []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &slots); err != nil || len(slots) != 16 {
		t.Fatalf("slots json: %v %d", err, len(slots))
	}
	r = drover(t, "", "--db", db, "machines", "--state", "deployed")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "NAME") {
		t.Fatalf("machines: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = drover(t, "", "--db", db, "machines", "--state", "happy")
	if r.code != exitUsage || !strings.Contains(r.stderr, `unknown state "happy"`) {
		t.Fatalf("machines --state happy: %d %q", r.code, r.stderr)
	}
	r = drover(t, "", "--db", db, "show", "bgo-compute-01")
	if r.code != 0 || !strings.Contains(r.stdout, "the slot is empty") || !strings.Contains(r.stdout, "bgo-compute-01") {
		t.Fatalf("show of an empty slot: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = drover(t, "", "--db", db, "show", "-o", "json", "bgo-compute-01")
	if r.code != 0 || !strings.Contains(r.stdout, `"machine": null`) || !strings.Contains(r.stdout, `"timeline": []`) {
		t.Fatalf("show -o json of an empty slot: %d %q", r.code, r.stdout)
	}
	r = drover(t, "", "--db", db, "show", "bgo-nothing-99")
	if r.code != exitNotFound || !strings.Contains(r.stderr, `no machine or slot named "bgo-nothing-99"`) {
		t.Fatalf("show of nothing: %d %q", r.code, r.stderr)
	}
	// Empty lists are [] in JSON, never null.
	for _, args := range [][]string{{"slots", "--zone", "nowhere"}, {"machines"}, {"machines", "--zone", "nowhere"}} {
		r = drover(t, "", append([]string{"--db", db}, append(args, "-o", "json")...)...)
		if r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
			t.Errorf("%v -o json: %d %q", args, r.code, r.stdout)
		}
	}
}

// Ports sort by number (swp2 before swp10) in slots and in plans.
func TestPortsSortNaturally(t *testing.T) {
	db := filepath.Join(t.TempDir(), "d.db")
	design := "../../examples/university"
	plan := drover(t, "", "--db", db, "plan", design).stdout
	if i2, i10 := strings.Index(plan, "bgo-p1-tor1/swp2 "), strings.Index(plan, "bgo-p1-tor1/swp10 "); i2 < 0 || i10 < 0 || i2 > i10 {
		t.Errorf("plan lists swp10 before swp2 (%d, %d)", i2, i10)
	}
	if r := drover(t, "", "--db", db, "apply", "--yes", design); r.code != 0 {
		t.Fatalf("apply: %d %s", r.code, r.stderr)
	}
	r := drover(t, "", "--db", db, "slots", "--zone", "bgo", "--pod", "p1", "-o", "json")
	var slots []struct{ Key, Switch, Port string }
	if err := json.Unmarshal([]byte(r.stdout), &slots); err != nil || len(slots) == 0 {
		t.Fatalf("slots: %v", err)
	}
	for i := 1; i < len(slots); i++ {
		a, b := slots[i-1], slots[i]
		if a.Switch == b.Switch && zone.NaturalLess(b.Port, a.Port) {
			t.Fatalf("slots list %s before %s", a.Key, b.Key)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"validate"}, {"plan", "a", "b"}, {"machines", "--bogus"}, {"slots", "-o", "yaml"}} {
		if r := drover(t, "", args...); r.code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, r.code, exitUsage, r.stderr)
		}
	}
	for _, cmd := range []string{"validate", "plan", "apply", "slots", "machines", "show"} {
		if r := drover(t, "", cmd, "--help"); r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%s --help: exit %d %q", cmd, r.code, r.stdout)
		}
	}
}
