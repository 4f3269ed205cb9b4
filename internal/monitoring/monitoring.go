// Package monitoring checks that monitoring watches what drover deployed:
// every machine drover hands to Prometheus should be scraped and up.
package monitoring

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/drover/drover/internal/handoff"
)

// Sample is one series of Prometheus's `up`.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Prometheus queries a Prometheus server's HTTP API.
type Prometheus struct {
	URL  string // e.g. http://prometheus:9090
	HTTP *http.Client
}

// Up returns every series of `up`.
func (p *Prometheus) Up(ctx context.Context) ([]Sample, error) {
	c := p.HTTP
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	u := strings.TrimSuffix(p.URL, "/") + "/api/v1/query?query=" + url.QueryEscape("up")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query prometheus %s: %w", p.URL, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query prometheus %s: %s: %w", p.URL, resp.Status, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query prometheus %s: %s %s", p.URL, resp.Status, body.Error)
	}
	out := make([]Sample, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query prometheus %s: value %v", p.URL, r.Value[1])
		}
		out = append(out, Sample{Labels: r.Metric, Value: v})
	}
	return out, nil
}

// Finding is a machine monitoring does not see as up.
type Finding struct {
	Machine string `json:"machine"`
	Target  string `json:"target"`
	State   string `json:"state"`
	Problem string `json:"problem"`
}

// Check lists the targets drover hands to monitoring that `up` does not
// show as up: not scraped at all (by instance address or name label), or down.
func Check(groups []handoff.TargetGroup, up []Sample) []Finding {
	byInstance, byName := map[string][]Sample{}, map[string][]Sample{}
	for _, s := range up {
		byInstance[s.Labels["instance"]] = append(byInstance[s.Labels["instance"]], s)
		if n := s.Labels["name"]; n != "" {
			byName[n] = append(byName[n], s)
		}
	}
	out := []Finding{}
	for _, g := range groups {
		name := g.Labels["name"]
		for _, target := range g.Targets {
			series := byInstance[target]
			if len(series) == 0 {
				series = byName[name]
			}
			f := Finding{Machine: name, Target: target, State: g.Labels["state"]}
			switch {
			case len(series) == 0:
				f.Problem = "not scraped: Prometheus has no `up` series for " + target
			case !anyUp(series):
				f.Problem = "down: `up` is 0 for " + target
			default:
				continue
			}
			out = append(out, f)
		}
	}
	return out
}

func anyUp(series []Sample) bool {
	for _, s := range series {
		if s.Value == 1 {
			return true
		}
	}
	return false
}
