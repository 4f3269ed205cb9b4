package zone

import (
	"strings"
	"testing"
	"time"
)

func TestProfileChangeNeedsReinstall(t *testing.T) {
	before, ps := parseText(t, readBase(t))
	if ps != nil {
		t.Fatal(ps)
	}
	after, ps := parseText(t, strings.Replace(readBase(t), "initrd: [debian/initrd.gz]", "initrd: [debian/initrd-2.gz]", 1))
	if ps != nil {
		t.Fatal(ps)
	}
	p := Diff(before.Slots, after.Slots)
	if len(p.Changed) != len(before.Slots) || !p.Changed[0].Reinstall || p.Changed[0].Fields[0] != "profile" {
		t.Fatalf("changed %d of %d slots: %+v", len(p.Changed), len(before.Slots), p.Changed[0])
	}
	// Slots stored before digests existed have none: not a change.
	old := *before.Slots[0]
	old.ProfileDigest = ""
	if p := Diff([]*Slot{&old}, after.Slots[:1]); len(p.Changed) != 0 {
		t.Errorf("a slot without a digest shows as changed: %+v", p.Changed)
	}
}

func TestPolicyDefaultsAndOrderAgreement(t *testing.T) {
	d, ps := parseText(t, readBase(t))
	if ps != nil {
		t.Fatal(ps)
	}
	pol := d.Zones[0].Policy()
	if pol.Canary != 1 || pol.PodMax != (Limit{N: 1}) || pol.FailureBudget != 0 || pol.Soak != 0 || pol.Drain != nil {
		t.Errorf("defaults %+v", pol)
	}
	text := strings.Replace(readBase(t), "dns_servers: [10.10.0.53]\n", `dns_servers: [10.10.0.53]
rollout:
  canary: 0
  soak: 5m
  max_unavailable: {pod: 25%, roles: {mgmt: 1}}
  health: {tcp: 22}
`, 1)
	d, ps = parseText(t, text)
	if ps != nil {
		t.Fatal(ps)
	}
	pol = d.Zones[0].Policy()
	if pol.Canary != 0 || pol.Soak != 5*time.Minute || pol.PodMax.Of(26) != 6 || pol.PodMax.Of(2) != 1 || pol.RoleMax["mgmt"].Of(3) != 1 ||
		pol.Health == nil || pol.Health.Timeout != DefaultHealthWindow {
		t.Errorf("policy %+v", pol)
	}
	if got := d.Order(); strings.Join(got, ",") != "dev,test,prod" {
		t.Errorf("order %v", got)
	}
}

func TestRolloutOrderIsDesignWide(t *testing.T) {
	dir := t.TempDir()
	base := readBase(t)
	test := strings.NewReplacer("zone: bgo", "zone: t01", "environment: prod", "environment: test", "10.10.", "10.20.", "10.11.", "10.21.").Replace(base)
	test = strings.Replace(test, "dns_servers: [10.20.0.53]\n", "dns_servers: [10.20.0.53]\nrollout:\n  order: [test, prod]\n", 1)
	dev := strings.NewReplacer("zone: bgo", "zone: d01", "environment: prod", "environment: dev", "10.10.", "10.30.", "10.11.", "10.31.").Replace(base)
	src := map[string][]byte{dir + "/bgo.yaml": []byte(base), dir + "/t01.yaml": []byte(test), dir + "/d01.yaml": []byte(dev)}
	_, err := Parse(src)
	if err == nil || !strings.Contains(err.Error(), "d01.yaml:2:14: environment: environment dev is not in the design's rollout order [test prod]") {
		t.Fatalf("err = %v", err)
	}
}
