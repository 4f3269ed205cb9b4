package boot

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover/drover/internal/counter"
)

// Collector exports the boot HTTP server's request counts (Config.Stats,
// "kind|code") as Prometheus metrics.
func Collector(stats *counter.Set) prometheus.Collector { return &collector{stats: stats} }

type collector struct{ stats *counter.Set }

var descRequests = prometheus.NewDesc("drover_boot_http_requests_total", "Machine HTTP requests, by kind and status.", []string{"kind", "code"}, nil)

func (c *collector) Describe(ch chan<- *prometheus.Desc) { ch <- descRequests }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for k, v := range c.stats.Snapshot() {
		if kind, code, ok := strings.Cut(k, "|"); ok {
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(v), kind, code)
		}
	}
}
