package api

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover/drover/internal/boot"
	"github.com/drover/drover/internal/counter"
	"github.com/drover/drover/internal/dhcp"
	"github.com/drover/drover/internal/dnszone"
	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/fleet/fleettest"
	"github.com/drover/drover/internal/monitoring"
	"github.com/drover/drover/internal/rollout"
	"github.com/drover/drover/internal/secret"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/tftp"
)

type fixture struct {
	srv    *Server
	http   *httptest.Server
	st     *store.DB
	fl     *fleet.Fleet
	tokens map[string]string // credential name -> secret
	design string
}

const labDesign = "../../examples/lab"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	fl, st := fleettest.Start(t, labDesign,
		fleettest.Deployed("52:54:00:00:00:01", "p1-tor1/swp1", "lab-compute-01"),
		fleettest.Deployed("52:54:00:00:00:02", "p1-tor1/swp2", "lab-compute-02"))
	now := time.Now()
	f := &fixture{st: st, fl: fl, tokens: map[string]string{}, design: labDesign}
	mk := func(name, role string, expires time.Time, revoke bool) {
		token := NewSecret()
		var pod string
		if role == RoleAgent {
			pod = "lab/p1"
		}
		if err := st.CreateToken(ctx, &store.Token{Name: name, Role: role, Hash: secret.Hash(token), Created: now, Expires: expires, Pod: pod}, nil); err != nil {
			t.Fatal(err)
		}
		if revoke {
			st.RevokeToken(ctx, name, nil)
		}
		f.tokens[name] = token
	}
	mk("viewer", RoleViewer, time.Time{}, false)
	mk("operator", RoleOperator, time.Time{}, false)
	mk("admin", RoleAdmin, time.Time{}, false)
	mk("agent", RoleAgent, time.Time{}, false)
	mk("expired", RoleAdmin, now.Add(-time.Minute), false)
	mk("revoked", RoleAdmin, time.Time{}, true)
	f.tokens["bad"] = "drv_not-a-token"
	stats := &counter.Set{}
	stats.Add("rx_DISCOVER")
	stats.Add("tx_OFFER")
	stats.Add("drop_malformed")
	stats.Add("relay|p1-tor1|OFFER")
	bootStats := &counter.Set{}
	bootStats.Add("script|200")
	metrics := []prometheus.Collector{dhcp.Collector(stats), &tftp.Metrics{}, boot.Collector(bootStats), fl.Collector()}
	f.srv = New(Config{Store: st, Fleet: fl, DesignDir: t.TempDir(), Metrics: metrics, Rollouts: rollout.New(rollout.Config{Store: st, Fleet: fl}),
		Monitoring: noSeries{}, DNS: designZones{fl}})
	f.http = httptest.NewServer(f.srv.Handler())
	t.Cleanup(f.http.Close)
	return f
}

func (f *fixture) do(t *testing.T, cred, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.http.URL+path, rd)
	if secret, ok := f.tokens[cred]; ok {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (f *fixture) auditCount(t *testing.T, filter store.AuditFilter) []store.AuditEntry {
	t.Helper()
	es, err := f.st.Audit(context.Background(), filter)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestAuthorisationMatrix(t *testing.T) {
	f := newFixture(t)
	creds := []string{"none", "bad", "expired", "revoked", "viewer", "operator", "admin", "agent"}
	denials := 0
	for _, rt := range f.srv.routes {
		path := strings.NewReplacer("{ref}", "lab-compute-02", "{name}", "nobody", "{id}", "1", "{zone}", "lab", "{pod}", "p1").Replace(rt.Path)
		for _, cred := range creds {
			t.Run(rt.Method+" "+rt.Path+" as "+cred, func(t *testing.T) {
				code, body := f.do(t, cred, rt.Method, path, nil)
				var want string
				switch {
				case rt.Role == "":
					want = "allowed"
				case cred == "none" || cred == "bad" || cred == "expired" || cred == "revoked":
					want = "401"
				case (cred == RoleAgent) != (rt.Role == RoleAgent):
					// An agent token opens its pod's agent calls and nothing else.
					want = "403"
				case roleRank(cred) < roleRank(rt.Role):
					want = "403"
				default:
					want = "allowed"
				}
				if want != "allowed" {
					denials++
				}
				switch want {
				case "allowed":
					if code == 401 || code == 403 || code >= 500 {
						t.Fatalf("got %d %s", code, body)
					}
				default:
					if want != http.StatusText(code) && want != itoa(code) {
						t.Fatalf("got %d, want %s: %s", code, want, body)
					}
					var e map[string]apiError
					if json.Unmarshal(body, &e) != nil || e["error"].Code == "" || e["error"].Message == "" {
						t.Errorf("error body %s", body)
					}
				}
			})
		}
	}
	// Every refusal was audited, once.
	audited := 0
	for _, e := range f.auditCount(t, store.AuditFilter{Limit: 10000}) {
		if strings.HasPrefix(e.Outcome, "denied: ") {
			audited++
		}
	}
	if audited != denials {
		t.Errorf("%d refusals, %d audit entries", denials, audited)
	}
	if es := f.auditCount(t, store.AuditFilter{Actor: "expired", Outcome: "denied: token_expired"}); len(es) == 0 {
		t.Error("expired token refusals not audited under its name")
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestMutationsAreAuditedOnce(t *testing.T) {
	f := newFixture(t)
	code, body := f.do(t, "admin", "POST", "/api/v1/design/apply", map[string]any{"path": f.design})
	if code != 200 {
		t.Fatalf("apply: %d %s", code, body)
	}
	if es := f.auditCount(t, store.AuditFilter{Action: "design-apply"}); len(es) != 1 || es[0].Actor != "admin" || es[0].Revision == 0 || es[0].RequestID == "" {
		t.Errorf("apply audit %+v", es)
	}
	code, body = f.do(t, "operator", "POST", "/api/v1/machines/lab-compute-01/reinstall", map[string]string{"reason": "new image"})
	if code != 200 || !strings.Contains(string(body), `"state": "deploying"`) {
		t.Fatalf("reinstall: %d %s", code, body)
	}
	if es := f.auditCount(t, store.AuditFilter{Action: fleet.ActReinstall}); len(es) != 1 || es[0].Actor != "operator" || es[0].Target != "lab-compute-01" || es[0].Detail != "new image" {
		t.Errorf("reinstall audit %+v", es)
	}
	maint := map[string]string{"reason": "disk swap", "owner": "alice", "expires": "4h"}
	if code, body = f.do(t, "operator", "POST", "/api/v1/machines/lab-compute-02/maintenance", maint); code != 200 {
		t.Fatalf("maintenance: %d %s", code, body)
	}
	if es := f.auditCount(t, store.AuditFilter{Action: fleet.ActMaintenanceEnter}); len(es) != 1 || es[0].Actor != "operator" || !strings.Contains(es[0].Detail, "owner alice") {
		t.Errorf("maintenance audit %+v", es)
	}

	// Failed mutations change nothing and leave no audit entry.
	before := len(f.auditCount(t, store.AuditFilter{Outcome: "ok"}))
	m0, _ := f.st.Machine(context.Background(), "lab-compute-02")
	tests := []struct {
		method, path string
		body         any
		code         int
		errCode      string
	}{
		{"POST", "/api/v1/machines/lab-compute-02/reinstall", nil, 409, "illegal_transition"},
		{"POST", "/api/v1/machines/lab-compute-02/maintenance", maint, 409, "illegal_transition"},
		{"POST", "/api/v1/machines/lab-compute-01/maintenance", map[string]string{"reason": "x"}, 400, "bad_request"},
		{"POST", "/api/v1/machines/nobody/retire", nil, 404, "not_found"},
		{"POST", "/api/v1/design/apply", map[string]any{"files": map[string]string{"bad.yaml": "zone: x\n"}}, 422, "invalid_design"},
		{"POST", "/api/v1/machines/lab-compute-02/reinstall", map[string]string{"surprise": "x"}, 400, "bad_request"},
	}
	for _, tt := range tests {
		cred := "operator"
		if strings.Contains(tt.path, "design") {
			cred = "admin"
		}
		code, body := f.do(t, cred, tt.method, tt.path, tt.body)
		var e map[string]apiError
		json.Unmarshal(body, &e)
		if code != tt.code || e["error"].Code != tt.errCode {
			t.Errorf("%s %s: %d %s", tt.method, tt.path, code, body)
		}
	}
	if after := len(f.auditCount(t, store.AuditFilter{Outcome: "ok"})); after != before {
		t.Errorf("failed mutations left %d audit entries", after-before)
	}
	m1, _ := f.st.Machine(context.Background(), "lab-compute-02")
	if m1.State != m0.State || !m1.StateSince.Equal(m0.StateSince) {
		t.Errorf("a failed mutation changed the machine: %s -> %s", m0.State, m1.State)
	}
	// Leaving maintenance works and is audited.
	if code, body = f.do(t, "operator", "DELETE", "/api/v1/machines/lab-compute-02/maintenance", nil); code != 200 || !strings.Contains(string(body), `"state": "deployed"`) {
		t.Fatalf("leave maintenance: %d %s", code, body)
	}
}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	f := newFixture(t)
	var doc struct {
		Paths map[string]map[string]struct {
			Role string `json:"x-drover-role"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{}
	for p, ops := range doc.Paths {
		for method, op := range ops {
			documented[strings.ToUpper(method)+" "+p] = op.Role
		}
	}
	routed := map[string]bool{}
	for _, rt := range f.srv.routes {
		key := rt.Method + " " + rt.Path
		routed[key] = true
		role, ok := documented[key]
		want := rt.Role
		if want == "" {
			want = "public"
		}
		if !ok {
			t.Errorf("route %s is not in openapi.json", key)
		} else if role != want {
			t.Errorf("%s: documented role %s, router role %s", key, role, want)
		}
	}
	for key := range documented {
		if !routed[key] {
			t.Errorf("openapi.json documents %s, which the router does not serve", key)
		}
	}
	code, body := f.do(t, "none", "GET", "/api/v1/openapi.json", nil)
	if code != 200 || !bytes.Equal(body, openAPI) {
		t.Errorf("served document differs: %d", code)
	}
}

func TestMetricsPassPromtool(t *testing.T) {
	f := newFixture(t)
	f.do(t, "viewer", "GET", "/api/v1/machines", nil)
	code, body := f.do(t, "none", "GET", "/metrics", nil)
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{`drover_dhcp_received_total{type="DISCOVER"} 1`, `drover_dhcp_dropped_total{reason="malformed"} 1`,
		`drover_dhcp_relay_replies_total{relay="p1-tor1",type="OFFER"} 1`, `drover_machines{state="deployed"} 2`, `drover_tftp_bytes_total 0`,
		`drover_boot_http_requests_total{code="200",kind="script"} 1`, `drover_api_requests_total{code="200",method="GET",route="/api/v1/machines"} 1`,
		`drover_api_request_duration_seconds_bucket`, `drover_leases{state="bound"} 0`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed: apt-get install prometheus (make test installs it)")
		}
		t.Skip("promtool not installed")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestTimelineStream(t *testing.T) {
	f := newFixture(t)
	req, _ := http.NewRequest("GET", f.http.URL+"/api/v1/machines/lab-compute-01/timeline?follow=true", nil)
	req.Header.Set("Authorization", "Bearer "+f.tokens["viewer"])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	if code, body := f.do(t, "operator", "POST", "/api/v1/machines/lab-compute-01/reinstall", nil); code != 200 {
		t.Fatalf("reinstall %d %s", code, body)
	}
	buf := make([]byte, 4096)
	var got string
	for !strings.Contains(got, `"to":"deploying"`) {
		n, err := resp.Body.Read(buf)
		if err != nil {
			t.Fatalf("stream ended: %v (%q)", err, got)
		}
		got += string(buf[:n])
	}
	if !strings.Contains(got, "event: entry\ndata: {") {
		t.Errorf("not an event stream: %q", got)
	}
}

func TestTLS(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, cert, key)
	srv := New(Config{Listen: "127.0.0.1:0", TLSCert: cert, TLSKey: key, Store: f.st, Fleet: f.fl})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-srv.Ready()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + srv.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("%d tls=%v", resp.StatusCode, resp.TLS != nil)
	}
	if resp, err := http.Get("http://" + srv.Addr().String() + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Error("plain HTTP answered on the TLS listener")
	}
}

func writeSelfSigned(t *testing.T, certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}

func TestBadQueryParametersAre400(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{
		"/api/v1/audit?since=yesterday",
		"/api/v1/audit?after=abc",
		"/api/v1/audit?after=-1",
		"/api/v1/audit?limit=ten",
		"/api/v1/machines/lab-compute-01/timeline?after=x",
		"/api/v1/machines?page=0",
		"/api/v1/machines?per_page=big",
	} {
		code, body := f.do(t, "admin", "GET", path, nil)
		var e map[string]apiError
		json.Unmarshal(body, &e)
		if code != 400 || e["error"].Code != "bad_request" {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	for _, path := range []string{"/api/v1/audit?after=0&limit=5", "/api/v1/machines/lab-compute-01/timeline?after=0"} {
		if code, body := f.do(t, "admin", "GET", path, nil); code != 200 {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
}

func TestMachinesArePaged(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct {
		query string
		want  []string
		total int
	}{
		{"", []string{"lab-compute-01", "lab-compute-02"}, 2},
		{"?per_page=1", []string{"lab-compute-01"}, 2},
		{"?per_page=1&page=2", []string{"lab-compute-02"}, 2},
		{"?per_page=1&page=3", []string{}, 2},
		{"?page=9223372036854775807&per_page=1000", []string{}, 2},
		{"?state=deployed&per_page=1&page=2", []string{"lab-compute-02"}, 2},
		{"?state=ready", []string{}, 0},
	} {
		code, body := f.do(t, "viewer", "GET", "/api/v1/machines"+tt.query, nil)
		var pg struct {
			Items []struct {
				Name string `json:"name"`
			} `json:"items"`
			Total int `json:"total"`
		}
		if err := json.Unmarshal(body, &pg); code != 200 || err != nil {
			t.Fatalf("GET /api/v1/machines%s: %d %s", tt.query, code, body)
		}
		got := []string{}
		for _, m := range pg.Items {
			got = append(got, m.Name)
		}
		if !reflect.DeepEqual(got, tt.want) || pg.Total != tt.total {
			t.Errorf("GET /api/v1/machines%s = %v of %d; want %v of %d", tt.query, got, pg.Total, tt.want, tt.total)
		}
	}
}

// designZones is a nameserver serving the fleet's design.
type designZones struct{ fl *fleet.Fleet }

func (d designZones) Zones() *dnszone.Set { return dnszone.Build(d.fl.Index().Design()) }

func TestDNSZones(t *testing.T) {
	f := newFixture(t)
	code, body := f.do(t, "viewer", "GET", "/api/v1/dns/zones", nil)
	var zones []DNSZone
	if code != 200 || json.Unmarshal(body, &zones) != nil || len(zones) == 0 {
		t.Fatalf("zones: %d %s", code, body)
	}
	code, body = f.do(t, "viewer", "GET", "/api/v1/dns/zones/"+zones[0].Zone, nil)
	if code != 200 || !strings.Contains(string(body), "\tIN\tSOA\t") {
		t.Fatalf("zone %s: %d %s", zones[0].Zone, code, body)
	}
	if code, _ := f.do(t, "viewer", "GET", "/api/v1/dns/zones/example.com", nil); code != 404 {
		t.Errorf("unknown zone: %d, want 404", code)
	}
}

// noSeries is a Prometheus that scrapes nothing.
type noSeries struct{}

func (noSeries) Up(context.Context) ([]monitoring.Sample, error) { return nil, nil }
