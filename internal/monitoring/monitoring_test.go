package monitoring

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/drover/drover/internal/handoff"
)

func TestCheck(t *testing.T) {
	groups := []handoff.TargetGroup{
		{Targets: []string{"10.0.0.1:9100"}, Labels: map[string]string{"name": "a", "state": "deployed"}},
		{Targets: []string{"10.0.0.2:9100"}, Labels: map[string]string{"name": "b", "state": "deployed"}},
		{Targets: []string{"10.0.0.3:9100"}, Labels: map[string]string{"name": "c", "state": "maintenance"}},
		{Targets: []string{"10.0.0.4:9100"}, Labels: map[string]string{"name": "d", "state": "deployed"}},
	}
	up := []Sample{
		{Labels: map[string]string{"instance": "10.0.0.1:9100"}, Value: 1},
		{Labels: map[string]string{"instance": "10.0.0.2:9100"}, Value: 0},
		{Labels: map[string]string{"instance": "relabelled:9100", "name": "d"}, Value: 1}, // found by its name label
	}
	got := Check(groups, up)
	want := map[string]string{"b": "down", "c": "not scraped"}
	if len(got) != len(want) {
		t.Fatalf("%+v", got)
	}
	for _, f := range got {
		if !strings.HasPrefix(f.Problem, want[f.Machine]) {
			t.Errorf("%s: %s, want %s", f.Machine, f.Problem, want[f.Machine])
		}
	}
}

func TestPrometheusUp(t *testing.T) {
	tests := []struct {
		name, body string
		wantErr    string
		want       int
	}{
		{"two series", `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"instance":"a:1"},"value":[1,"1"]},{"metric":{"instance":"b:1"},"value":[1,"0"]}]}}`, "", 2},
		{"error", `{"status":"error","error":"bad query"}`, "bad query", 0},
		{"not JSON", `<html>`, "query prometheus", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/v1/query" || r.URL.Query().Get("query") != "up" {
					http.NotFound(w, r)
					return
				}
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			got, err := (&Prometheus{URL: srv.URL}).Up(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got) != tt.want {
				t.Fatalf("%v %+v", err, got)
			}
		})
	}
}
