package power

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover/drover/internal/zone"
)

func TestLoadSecrets(t *testing.T) {
	tests := []struct {
		name    string
		mode    os.FileMode
		text    string
		wantErr string // "" for valid
	}{
		{"valid", 0o600, "zones:\n  bgo:\n    username: admin\n    password: pw\n    roles:\n      storage: {username: root, password: other}\n", ""},
		{"readable by others", 0o644, "zones:\n  bgo: {username: admin, password: pw}\n", "mode 0644 lets other users read BMC passwords: run `chmod 600"},
		{"readable by the group", 0o640, "zones:\n  bgo: {username: admin, password: pw}\n", "mode 0640"},
		{"no zones", 0o600, "zones: {}\n", "no zones"},
		{"no password", 0o600, "zones:\n  bgo: {username: admin}\n", "zone bgo: add both username and password"},
		{"role without user", 0o600, "zones:\n  bgo:\n    username: a\n    password: b\n    roles: {storage: {password: x}}\n", "zone bgo role storage: add both"},
		{"unknown key", 0o600, "zones:\n  bgo: {username: a, password: b, pasword: c}\n", "field pasword not found"},
		{"password too long for IPMI", 0o600, "zones:\n  bgo: {username: a, password: 123456789012345678901}\n", "longer than IPMI's 20 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "secrets.yaml")
			if err := os.WriteFile(p, []byte(tt.text), tt.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, tt.mode)
			s, err := LoadSecrets(p)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c, _ := s.Lookup("bgo", "storage"); c.Username != "root" {
					t.Errorf("role credentials %v", c)
				}
				if c, _ := s.Lookup("bgo", "compute"); c.Username != "admin" || c.Password != "pw" {
					t.Errorf("zone credentials %v", c)
				}
				if _, ok := s.Lookup("other", "compute"); ok {
					t.Error("credentials for a zone the file does not have")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), p) {
				t.Fatalf("error %v, want it to name %s and say %q", err, p, tt.wantErr)
			}
		})
	}
}

func TestCredentialsPrintRedacted(t *testing.T) {
	c := Credentials{Username: "admin", Password: "hunter2"}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c)} {
		if strings.Contains(s, "hunter2") {
			t.Fatalf("password printed: %s", s)
		}
	}
}

func TestSecretsCheckNamesThePowerSetting(t *testing.T) {
	dir := t.TempDir()
	design := "zone: bgo\nenvironment: prod\ndomain: bgo.example.org\npower: ipmi\nprofiles:\n  p: {kernel: k}\nroles:\n  compute: {profile: p}\n  storage:\n    profile: p\n    power: none\naddressing: {compute: 10, storage: 100}\npods:\n  p1:\n    networks:\n      boot: {subnet: 10.10.0.0/24, gateway: 10.10.0.1}\n      bmc: {subnet: 10.11.0.0/24, gateway: 10.11.0.1}\n    switches:\n      t1:\n        kind: tor\n        relay: 10.10.0.2\n        ports: [swp1-swp4]\n        slots:\n          - {ports: swp1-swp2, role: compute, ids: 1-2}\n          - {ports: swp3, role: storage, ids: 1}\n"
	path := filepath.Join(dir, "bgo.yaml")
	os.WriteFile(path, []byte(design), 0o644)
	d, err := zone.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sp := filepath.Join(dir, "secrets.yaml")
	os.WriteFile(sp, []byte("zones:\n  other: {username: a, password: b}\n"), 0o600)
	s, err := LoadSecrets(sp)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Check(d)
	var ps zone.Problems
	if !errors.As(err, &ps) || len(ps) != 1 {
		t.Fatalf("want one problem (compute; storage has power: none), got %v", err)
	}
	if got := ps[0].Error(); !strings.HasPrefix(got, path+":4:8: power: role compute of zone bgo uses the ipmi power driver but has no BMC credentials") || !strings.Contains(got, sp) {
		t.Fatalf("problem %q", got)
	}
	if err := (*Secrets)(nil).Check(d); err == nil || !strings.Contains(err.Error(), "--power-secrets") {
		t.Fatalf("no secrets file: %v", err)
	}
	os.WriteFile(sp, []byte("zones:\n  bgo: {username: a, password: b}\n"), 0o600)
	if s, _ = LoadSecrets(sp); s.Check(d) != nil {
		t.Fatal(s.Check(d))
	}
}
