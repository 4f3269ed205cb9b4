package tftp

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts the server's transfers; it is a Prometheus collector.
type Metrics struct {
	ok, failed, bytes atomic.Int64
}

var (
	descTransfers = prometheus.NewDesc("drover_tftp_transfers_total", "TFTP transfers, by outcome.", []string{"outcome"}, nil)
	descBytes     = prometheus.NewDesc("drover_tftp_bytes_total", "Bytes sent by TFTP.", nil, nil)
)

func (m *Metrics) record(n int64, err error) {
	if m == nil {
		return
	}
	m.bytes.Add(n)
	if err != nil {
		m.failed.Add(1)
	} else {
		m.ok.Add(1)
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) { ch <- descTransfers; ch <- descBytes }

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descTransfers, prometheus.CounterValue, float64(m.ok.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(descTransfers, prometheus.CounterValue, float64(m.failed.Load()), "error")
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(m.bytes.Load()))
}
