package boot

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/zone"
)

// fakeFleet hands out one target; it records notes.
type fakeFleet struct {
	target fleet.Target
	mu     sync.Mutex
	notes  []string
}

func (f *fakeFleet) Script(context.Context, string, netip.Addr) (fleet.Target, error) {
	return f.target, nil
}
func (f *fakeFleet) Holder(string, netip.Addr) (fleet.Target, error) { return f.target, nil }
func (f *fakeFleet) IssueBootToken(ctx context.Context, installToken string) (string, error) {
	if installToken != "good" {
		return "", fleet.ErrUnknown
	}
	return "boot-token", nil
}

func (f *fakeFleet) Installing(token string) (fleet.Target, error) {
	if token != "good" {
		return fleet.Target{}, fleet.ErrUnknown
	}
	return f.target, nil
}
func (f *fakeFleet) PhoneHome(context.Context, string, string, string, map[string]any) (machine.Machine, error) {
	return f.target.Machine, nil
}
func (f *fakeFleet) Note(_ netip.Addr, kind machine.Kind, reason string) {
	f.note(string(kind) + ": " + reason)
}
func (f *fakeFleet) NoteMachine(_ int64, kind machine.Kind, reason string) {
	f.note(string(kind) + ": " + reason)
}
func (f *fakeFleet) note(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.notes = append(f.notes, s)
}

func labTarget(t *testing.T, template string) fleet.Target {
	return labTargetAt(t, template, "p1-tor2/swp1")
}

// labTargetAt is the example lab's machine in the slot at key, its install
// template replaced by template.
func labTargetAt(t *testing.T, template, key string) fleet.Target {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile("../../examples/lab/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "templates"), 0o755)
	os.WriteFile(filepath.Join(dir, "templates", "install.sh"), []byte(template), 0o644)
	os.CopyFS(filepath.Join(dir, "templates", "switch"), os.DirFS("../../examples/lab/templates/switch")) // the lab's switches' ZTP templates
	os.WriteFile(filepath.Join(dir, "lab.yaml"), b, 0o644)
	os.MkdirAll(filepath.Join(dir, "keys"), 0o755)
	pub, _ := os.ReadFile("../../examples/lab/keys/lab_ed25519.pub")
	os.WriteFile(filepath.Join(dir, "keys", "lab_ed25519.pub"), pub, 0o644)
	d, err := zone.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ix := zone.NewIndex(d)
	s := ix.Slot(key)
	return fleet.Target{Machine: machine.Machine{ID: 1, MAC: "52:54:00:00:00:01", Name: s.Name, State: machine.Deploying},
		Slot: s, Zone: d.Zone("lab"), Action: fleet.ActionInstall, Token: "good"}
}

func TestScripts(t *testing.T) {
	tg := labTarget(t, "x")
	tests := []struct {
		action string
		state  machine.State
		want   []string
		not    []string
	}{
		{fleet.ActionInstall, machine.Deploying, []string{"#!ipxe\n", "kernel http://drover:8080/artifacts/lab/vmlinuz?step=kernel initrd=initrd.gz console=ttyS0 drover.url=http://drover:8080 drover.token=good drover.name=lab-storage-01 BOOTIF=01-${netX/mac:hexhyp}\n",
			"initrd --name initrd.gz http://drover:8080/artifacts/lab/initrd.gz?step=initrd\n", "boot\n"}, nil},
		{fleet.ActionLocal, machine.Deployed, []string{"is deployed: booting from local disk\nexit\n"}, []string{"kernel"}},
		{fleet.ActionDiscovery, machine.Discovered, []string{"not installing\nexit\n"}, []string{"kernel"}},
		{fleet.ActionNone, machine.Retired, []string{"retired"}, []string{"kernel"}},
	}
	s := &Server{cfg: Config{}}
	for _, tt := range tests {
		tg.Action, tg.Machine.State = tt.action, tt.state
		got, err := s.render(tg, "http://drover:8080")
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s script lacks %q:\n%s", tt.action, w, got)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(got, n) {
				t.Errorf("%s script has %q:\n%s", tt.action, n, got)
			}
		}
	}
}

func TestTemplates(t *testing.T) {
	tests := []struct {
		name, template, token string
		code                  int
		body, note            string
	}{
		{"rendered", "host={{.PermanentName}} ip={{.Address}}/{{.Prefix}} classes={{.Classes}} home={{.PhoneHomeURL}}", "good", 200,
			"host=lab-compute-01 ip=10.77.0.11/24 classes=[base nova_compute] home=http://example.test/phone-home?token=good", "template: rendered install"},
		{"missing field fails whole", "first line\n{{.NoSuchField}}\nlast line", "good", 500, "could not render", "template-error"},
		{"wrong token", "x", "bad", 403, "install token is not valid", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ff := &fakeFleet{target: labTargetAt(t, tt.template, "p1-tor1/swp1")}
			s := &Server{cfg: Config{Fleet: ff, Log: nil}}
			s.cfg.Log = discardLogger()
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "http://example.test/install/install?token="+tt.token, nil)
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.body) {
				t.Fatalf("%d %q", rec.Code, rec.Body.String())
			}
			if strings.Contains(rec.Body.String(), "first line") {
				t.Error("a half-rendered template was sent")
			}
			if tt.note != "" && (len(ff.notes) != 1 || !strings.HasPrefix(ff.notes[0], tt.note)) {
				t.Errorf("notes %q", ff.notes)
			}
		})
	}
}

func TestArtifactsStayInRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "lab"), 0o755)
	os.WriteFile(filepath.Join(root, "lab", "vmlinuz"), []byte("0123456789"), 0o644)
	os.WriteFile(filepath.Join(filepath.Dir(root), "secret"), []byte("secret"), 0o644)
	ff := &fakeFleet{}
	s, err := NewServer(Config{Fleet: ff, ArtifactRoot: root, IPXERoot: root, Log: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	tests := []struct {
		path, rng string
		code      int
		body      string
	}{
		{"/artifacts/lab/vmlinuz", "", 200, "0123456789"},
		{"/artifacts/lab/vmlinuz", "bytes=2-4", 206, "234"},
		{"/artifacts/../secret", "", 404, ""},
		{"/artifacts/lab/..%2f..%2fsecret", "", 404, ""},
		{"/artifacts/lab", "", 404, ""},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest("GET", srv.URL+tt.path, nil)
		if tt.rng != "" {
			req.Header.Set("Range", tt.rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 64)
		n, _ := resp.Body.Read(b)
		resp.Body.Close()
		if resp.StatusCode != tt.code || (tt.body != "" && string(b[:n]) != tt.body) {
			t.Errorf("%s %s: %d %q", tt.path, tt.rng, resp.StatusCode, b[:n])
		}
		if tt.code == 200 && (resp.Header.Get("ETag") == "" || resp.ContentLength != 10) {
			t.Errorf("%s: ETag %q length %d", tt.path, resp.Header.Get("ETag"), resp.ContentLength)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
