package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/internal/api"
	"github.com/drover/drover/internal/fleet/fleettest"
	"github.com/drover/drover/internal/secret"
	"github.com/drover/drover/internal/store"
)

// startServer runs the operator API over the lab design with one deployed
// machine, and returns its URL and an admin token.
func startServer(t *testing.T) (string, string) {
	t.Helper()
	ctx := context.Background()
	fl, st := fleettest.Start(t, "../../examples/lab", fleettest.Deployed("52:54:00:00:00:01", "p1-tor1/swp1", "lab-compute-01"))
	now := time.Now()
	admin := api.NewSecret()
	st.CreateToken(ctx, &store.Token{Name: "root", Role: api.RoleAdmin, Hash: secret.Hash(admin), Created: now}, nil)
	srv := httptest.NewServer(api.New(api.Config{Store: st, Fleet: fl, DesignDir: t.TempDir()}).Handler())
	t.Cleanup(srv.Close)
	return srv.URL, admin
}

func droverAs(t *testing.T, token string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := environment{stdin: strings.NewReader("y\n"), stdout: &out, stderr: &errb, getenv: func(k string) string {
		if k == "DROVER_TOKEN" {
			return token
		}
		return ""
	}}
	code := run(context.Background(), args, env)
	return result{code, out.String(), errb.String()}
}

func TestCLIRoundTrip(t *testing.T) {
	url, admin := startServer(t)
	r := droverAs(t, admin, "--server", url, "tokens", "create", "alice", "--role", "viewer")
	viewer := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(viewer, "drv_") || !strings.Contains(r.stderr, "shown once") {
		t.Fatalf("create viewer: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = droverAs(t, viewer, "--server", url, "machines")
	if r.code != 0 || !strings.Contains(r.stdout, "lab-compute-01") || !strings.Contains(r.stdout, "deployed") {
		t.Fatalf("machines as viewer: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = droverAs(t, viewer, "--server", url, "reinstall", "lab-compute-01")
	if r.code != exitForbidden || !strings.Contains(r.stderr, `token "alice" has role viewer; POST /api/v1/machines/{ref}/reinstall needs operator`) {
		t.Fatalf("reinstall as viewer: %d %q", r.code, r.stderr)
	}
	r = droverAs(t, "drv_wrong", "--server", url, "machines")
	if r.code != exitUnauthenticated {
		t.Fatalf("wrong token: %d %q", r.code, r.stderr)
	}
	r = droverAs(t, admin, "--server", url, "tokens", "create", "bob", "--role", "operator")
	operator := strings.TrimSpace(r.stdout)
	r = droverAs(t, operator, "--server", url, "reinstall", "lab-compute-01", "--reason", "new kernel")
	if r.code != 0 || r.stdout != "lab-compute-01: deploying\n" {
		t.Fatalf("reinstall as operator: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = droverAs(t, operator, "--server", url, "reinstall", "lab-compute-01")
	if r.code != exitConflict || !strings.Contains(r.stderr, "cannot reinstall lab-compute-01 while it is deploying") {
		t.Fatalf("reinstall while deploying: %d %q", r.code, r.stderr)
	}
	r = droverAs(t, operator, "--server", url, "maintenance", "enter", "lab-compute-01", "--reason", "x", "--owner", "bob", "--expires", "1h")
	if r.code != exitConflict || !strings.Contains(r.stderr, "illegal_transition") {
		t.Fatalf("maintenance while deploying: %d %q", r.code, r.stderr)
	}
	r = droverAs(t, viewer, "--server", url, "show", "lab-compute-01")
	if r.code != 0 || !strings.Contains(r.stdout, "deployed -> deploying") || !strings.Contains(r.stdout, "new kernel") {
		t.Fatalf("show: %d %q", r.code, r.stdout)
	}
	r = droverAs(t, viewer, "--server", url, "audit", "--action", "reinstall")
	if r.code != 0 || strings.Count(r.stdout, "bob") != 1 {
		t.Fatalf("audit: %d %q", r.code, r.stdout)
	}
	r = droverAs(t, viewer, "--server", url, "show", "lab-compute-lvm-03")
	if r.code != 0 || !strings.Contains(r.stdout, "the slot is empty") {
		t.Fatalf("remote show of an empty slot: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = droverAs(t, viewer, "--server", url, "show", "p1-tor1/swp1")
	if r.code != 0 || !strings.Contains(r.stdout, "lab-compute-01") || strings.Contains(r.stdout, "empty") {
		t.Fatalf("remote show by slot key: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = droverAs(t, viewer, "--server", url, "show", "nothing-here")
	if r.code != exitNotFound || !strings.Contains(r.stderr, `no machine or slot named "nothing-here"`) {
		t.Fatalf("remote show of nothing: %d %q", r.code, r.stderr)
	}
	r = droverAs(t, viewer, "--server", url, "slots", "--zone", "nowhere", "-o", "json")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("remote slots: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = droverAs(t, admin, "--server", url, "plan", "../../examples/lab")
	if r.code != 0 || !strings.Contains(r.stdout, "No changes") {
		t.Fatalf("remote plan: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = droverAs(t, admin, "--server", url, "apply", "--yes", "../../examples/university/test01.yaml")
	if r.code != 0 || !strings.Contains(r.stdout, "by root: 16 added") {
		t.Fatalf("remote apply: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = droverAs(t, admin, "--server", url, "tokens", "revoke", "alice")
	if r.code != 0 {
		t.Fatalf("revoke: %d %q", r.code, r.stderr)
	}
	if r = droverAs(t, viewer, "--server", url, "machines"); r.code != exitUnauthenticated || !strings.Contains(r.stderr, "revoked") {
		t.Fatalf("revoked token: %d %q", r.code, r.stderr)
	}
	if r = droverAs(t, "", "reinstall", "x"); r.code != exitUsage || !strings.Contains(r.stderr, "--server") {
		t.Fatalf("no server: %d %q", r.code, r.stderr)
	}
}
