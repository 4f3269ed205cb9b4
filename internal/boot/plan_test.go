package boot

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/drover/drover/internal/install"
	"github.com/drover/drover/internal/store"
)

type fakeCatalogue map[string]store.Artifact

func (c fakeCatalogue) ResolveArtifact(_ context.Context, name, channel string) (store.Artifact, error) {
	a, ok := c[name+"@"+channel]
	if !ok {
		return store.Artifact{}, fmt.Errorf("%w: no version of artifact %s is on channel %s", store.ErrNotFound, name, channel)
	}
	return a, nil
}

func TestPlan(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	tests := []struct {
		name  string
		token string
		cat   fakeCatalogue
		code  int
		check func(t *testing.T, p install.Plan, body string)
	}{
		{name: "image from the zone's channel, with its seed", token: "good",
			cat:  fakeCatalogue{"debian-12@test": {Name: "debian-12", Version: "7", SHA256: sum, Size: 100, Format: "raw.gz", Disk: 1000}},
			code: 200,
			check: func(t *testing.T, p install.Plan, _ string) {
				if p.Image == nil || p.Image.URL != "http://example.test/artifacts/sha256/"+sum || p.Image.Version != "7" || p.Image.DiskBytes != 1000 {
					t.Fatalf("image %+v", p.Image)
				}
				for _, want := range []string{"hostname: lab-storage-01", "ssh-ed25519 ", "url: \"http://example.test/phone-home?status=booted&token=boot-token\""} {
					if !strings.Contains(p.Seed.UserData, want) {
						t.Errorf("user-data lacks %q:\n%s", want, p.Seed.UserData)
					}
				}
				for _, want := range []string{"mac_address: \"52:54:00:00:00:01\"", "address: 10.77.100.2/29", "gateway: 10.77.100.1", "address: 10.77.16."} {
					if !strings.Contains(p.Seed.NetworkConfig, want) {
						t.Errorf("network-config lacks %q:\n%s", want, p.Seed.NetworkConfig)
					}
				}
				if strings.Contains(p.Seed.NetworkConfig, "10.77.8.") {
					t.Errorf("the BMC's address is on the host:\n%s", p.Seed.NetworkConfig)
				}
				if !strings.Contains(p.Seed.MetaData, "local-hostname: lab-storage-01") {
					t.Errorf("meta-data %q", p.Seed.MetaData)
				}
			}},
		{name: "no version on the channel", token: "good", cat: fakeCatalogue{"debian-12@prod": {}}, code: 409,
			check: func(t *testing.T, _ install.Plan, body string) {
				if !strings.Contains(body, "no version of artifact debian-12 is on channel test") {
					t.Errorf("body %q", body)
				}
			}},
		{name: "bad token", token: "bad", code: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ff := &fakeFleet{target: labTarget(t, "x")}
			s, err := NewServer(Config{Fleet: ff, Catalogue: tt.cat, Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://example.test/agent/plan?token="+tt.token, nil))
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != tt.code {
				t.Fatalf("code %d, want %d: %s", rec.Code, tt.code, body)
			}
			var p install.Plan
			json.Unmarshal(body, &p)
			if tt.check != nil {
				tt.check(t, p, string(body))
			}
		})
	}
}
