package ui

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/internal/fleet/fleettest"
	"github.com/drover/drover/internal/rollout"
	"github.com/drover/drover/internal/secret"
	"github.com/drover/drover/internal/store"
)

func rank(r string) int {
	return map[string]int{"viewer": 1, "operator": 2, "admin": 3}[r]
}

type fixture struct {
	srv    *httptest.Server
	st     *store.DB
	runner *rollout.Runner
	tokens map[string]string
}

func newFixture(t *testing.T) *fixture {
	fl, st := fleettest.Start(t, "../../examples/lab",
		fleettest.Deployed("52:54:00:00:00:01", "p1-tor1/swp1", "lab-compute-01"),
		fleettest.Deployed("52:54:00:00:00:02", "p1-tor1/swp2", "lab-compute-02"))
	f := &fixture{st: st, tokens: map[string]string{}}
	now := time.Now()
	for _, tk := range []struct {
		name, role string
		expires    time.Time
		revoked    bool
	}{{"viewer", "viewer", time.Time{}, false}, {"operator", "operator", time.Time{}, false},
		{"expired", "admin", now.Add(-time.Minute), false}, {"revoked", "admin", time.Time{}, true}} {
		tok := "drv_" + secret.Hex(32)
		if err := st.CreateToken(context.Background(), &store.Token{Name: tk.name, Role: tk.role, Hash: secret.Hash(tok), Created: now, Expires: tk.expires}, nil); err != nil {
			t.Fatal(err)
		}
		if tk.revoked {
			st.RevokeToken(context.Background(), tk.name, nil)
		}
		f.tokens[tk.name] = tok
	}
	f.runner = rollout.New(rollout.Config{Store: st, Fleet: fl}) // not run: rollouts stay queued
	u, err := New(Config{Store: st, Fleet: fl, Rollouts: f.runner, RoleRank: rank})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(u)
	t.Cleanup(f.srv.Close)
	return f
}

// browser is a client with a cookie jar that does not follow redirects.
func (f *fixture) browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (f *fixture) login(t *testing.T, c *http.Client, who string) int {
	t.Helper()
	resp, err := c.PostForm(f.srv.URL+"/login", url.Values{"token": {f.tokens[who]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func TestLoginAndRoles(t *testing.T) {
	f := newFixture(t)
	for _, who := range []string{"expired", "revoked"} {
		c := f.browser(t)
		if code := f.login(t, c, who); code != http.StatusUnauthorized {
			t.Errorf("%s token logged in: %d", who, code)
		}
		if code, _ := get(t, c, f.srv.URL+"/"); code != http.StatusSeeOther {
			t.Errorf("%s token reached the zones page: %d", who, code)
		}
	}

	viewer := f.browser(t)
	if code := f.login(t, viewer, "viewer"); code != http.StatusSeeOther {
		t.Fatalf("viewer login: %d", code)
	}
	code, page := get(t, viewer, f.srv.URL+"/machines/lab-compute-01")
	if code != 200 || !strings.Contains(page, "lab-compute-01") || strings.Contains(page, `id="act-`) {
		t.Fatalf("viewer's machine page %d (action buttons shown?):\n%s", code, page)
	}
	csrf := csrfRE.FindStringSubmatch(page)[1]
	resp, _ := viewer.PostForm(f.srv.URL+"/machines/lab-compute-01/retire", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("viewer's forged retire: %d", resp.StatusCode)
	}

	op := f.browser(t)
	f.login(t, op, "operator")
	_, page = get(t, op, f.srv.URL+"/machines/lab-compute-02")
	if !strings.Contains(page, `id="act-maintenance-enter"`) {
		t.Fatalf("operator sees no maintenance action:\n%s", page)
	}
	csrf = csrfRE.FindStringSubmatch(page)[1]
	form := url.Values{"reason": {"disk swap"}, "owner": {"ops"}, "expires": {"2h"}}
	resp, _ = op.PostForm(f.srv.URL+"/machines/lab-compute-02/maintenance-enter", form)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("maintenance without a CSRF token: %d", resp.StatusCode)
	}
	form.Set("csrf", csrf)
	resp, _ = op.PostForm(f.srv.URL+"/machines/lab-compute-02/maintenance-enter", form)
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "done=") {
		t.Fatalf("maintenance: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	es, _ := f.st.Audit(context.Background(), store.AuditFilter{Actor: "operator", Action: "maintenance-enter"})
	if len(es) != 1 || es[0].Outcome != "ok" {
		t.Errorf("audit %+v", es)
	}
	denied, _ := f.st.Audit(context.Background(), store.AuditFilter{Actor: "viewer"})
	if len(denied) == 0 || !strings.HasPrefix(denied[len(denied)-1].Outcome, "denied") {
		t.Errorf("the viewer's refusal is not audited: %+v", denied)
	}

	// Logging out ends the session; a revoked token ends it too.
	resp, _ = op.PostForm(f.srv.URL+"/logout", url.Values{"csrf": {csrf}})
	if code, _ := get(t, op, f.srv.URL+"/"); resp.StatusCode != http.StatusSeeOther || code != http.StatusSeeOther {
		t.Errorf("after logout: %d, then %d", resp.StatusCode, code)
	}
	f.st.RevokeToken(context.Background(), "viewer", nil)
	if code, _ := get(t, viewer, f.srv.URL+"/"); code != http.StatusSeeOther {
		t.Errorf("a session of a revoked token still works: %d", code)
	}
}

func TestPodPageShowsEveryPortInOrder(t *testing.T) {
	f := newFixture(t)
	c := f.browser(t)
	f.login(t, c, "viewer")
	code, page := get(t, c, f.srv.URL+"/zones/lab/pods/p1")
	if code != 200 {
		t.Fatal(code)
	}
	last := -1
	for _, port := range []string{"swp1", "swp2", "swp3", "swp4", "swp5", "swp6", "swp7", "swp8"} {
		i := strings.Index(page[last+1:], `class="pname">`+port+`<`)
		if i < 0 {
			t.Fatalf("port %s missing or out of order", port)
		}
		last += i + 1
	}
	if !strings.Contains(page, `data-slot="p1-tor1/swp1" data-state="deployed"`) || !strings.Contains(page, `data-slot="p1-tor1/swp3" data-state="empty"`) {
		t.Errorf("states:\n%s", page)
	}
}

func TestLoginRedirectsOnlyWithinTheSite(t *testing.T) {
	f := newFixture(t)
	for next, want := range map[string]string{"/zones/lab/pods/p1": "/zones/lab/pods/p1", "//evil.example": "/", `/\evil.example`: "/", "https://evil.example/": "/"} {
		c := f.browser(t)
		resp, err := c.PostForm(f.srv.URL+"/login", url.Values{"token": {f.tokens["viewer"]}, "next": {next}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Location"); got != want {
			t.Errorf("next %q: redirected to %q, want %q", next, got, want)
		}
		for _, ck := range resp.Cookies() {
			if ck.Name == cookieName && (!ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode) {
				t.Errorf("session cookie %+v is not HttpOnly and SameSite=Strict", ck)
			}
		}
	}
}

func TestRolloutPages(t *testing.T) {
	f := newFixture(t)
	ro, _, err := f.runner.Start(context.Background(), rollout.Request{Role: "compute"}, "admin", store.AuditEntry{})
	if err != nil {
		t.Fatal(err)
	}
	op := f.browser(t)
	f.login(t, op, "operator")
	if code, page := get(t, op, f.srv.URL+"/rollouts"); code != 200 || !strings.Contains(page, `href="/rollouts/1"`) || !strings.Contains(page, "queued") {
		t.Fatalf("rollouts %d:\n%s", code, page)
	}
	code, page := get(t, op, f.srv.URL+"/rollouts/1")
	if code != 200 || !strings.Contains(page, "lab-compute-01") || !strings.Contains(page, `<progress max="2" value="0">`) ||
		!strings.Contains(page, `id="act-pause"`) || strings.Contains(page, `id="act-abort"`) || !strings.Contains(page, `http-equiv="refresh"`) {
		t.Fatalf("rollout page %d:\n%s", code, page)
	}
	csrf := csrfRE.FindStringSubmatch(page)[1]
	resp, _ := op.PostForm(f.srv.URL+"/rollouts/1/abort", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("operator abort: %d", resp.StatusCode)
	}
	resp, _ = op.PostForm(f.srv.URL+"/rollouts/1/pause", url.Values{"csrf": {csrf}, "reason": {"change freeze"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "done=") {
		t.Fatalf("pause: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	got, _, _ := f.st.Rollout(context.Background(), ro.ID)
	if got.State != store.RolloutPaused || !strings.Contains(got.Detail, "change freeze") {
		t.Errorf("rollout %+v", got)
	}
}
