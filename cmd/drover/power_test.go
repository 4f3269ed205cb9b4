package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesBadPowerSecrets: drover serve does not start on a secrets
// file others can read, or one without credentials for a power driver the
// design names; each message names the file. validate checks the same.
func TestServeRefusesBadPowerSecrets(t *testing.T) {
	lab, _ := filepath.Abs("../../examples/lab")
	tests := []struct {
		name    string
		mode    os.FileMode
		text    string
		want    []string
		checkOK bool // validate --power-secrets passes
	}{
		{"readable by others", 0o644, "zones:\n  lab: {username: admin, password: pw}\n", []string{"mode 0644 lets other users read BMC passwords", "chmod 600"}, false},
		{"missing zone", 0o600, "zones:\n  other: {username: admin, password: pw}\n",
			[]string{filepath.Join(lab, "lab.yaml") + ":10:8: power: role compute of zone lab uses the ipmi power driver but has no BMC credentials", "add zone lab"}, false},
		{"fine", 0o600, "zones:\n  lab: {username: admin, password: pw}\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			secrets := filepath.Join(dir, "power-secrets.yaml")
			os.WriteFile(secrets, []byte(tt.text), tt.mode)
			os.Chmod(secrets, tt.mode)
			r := drover(t, "", "validate", lab, "--power-secrets", secrets)
			if tt.checkOK {
				if r.code != 0 {
					t.Fatalf("validate: %d %s", r.code, r.stderr)
				}
				return
			}
			if r.code != 1 || !strings.Contains(r.stderr, secrets) {
				t.Fatalf("validate: exit %d, stderr %q: want 1 and the file named", r.code, r.stderr)
			}
			r = drover(t, "", "--db", filepath.Join(dir, "d.db"), "serve", "--design", lab, "--power-secrets", secrets,
				"--dhcp-listen", "127.0.0.1:0", "--tftp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:18080", "--api-listen", "127.0.0.1:0")
			if r.code == 0 || !strings.Contains(r.stderr, secrets) {
				t.Fatalf("serve: exit %d, stderr %q: want a refusal naming %s", r.code, r.stderr, secrets)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("serve's refusal lacks %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}
