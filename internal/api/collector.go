package api

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover/drover/internal/machine"
)

// collector turns the services' counters and the inventory into metrics at scrape time.
type collector struct{ s *Server }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	descDHCPReceived := prometheus.NewDesc("drover_dhcp_received_total", "DHCP requests received, by message type.", []string{"type"}, nil)
	descDHCPSent := prometheus.NewDesc("drover_dhcp_replies_total", "DHCP replies sent, by message type.", []string{"type"}, nil)
	descDHCPDropped := prometheus.NewDesc("drover_dhcp_dropped_total", "DHCP packets dropped, by reason.", []string{"reason"}, nil)
	descDHCPPackets := prometheus.NewDesc("drover_dhcp_packets_total", "UDP packets read by the DHCP server.", nil, nil)
	descDHCPRelay := prometheus.NewDesc("drover_dhcp_relay_replies_total", "Offers and acks sent through each relay.", []string{"relay", "type"}, nil)
	descLeases := prometheus.NewDesc("drover_leases", "Current leases, by state.", []string{"state"}, nil)
	descMachines := prometheus.NewDesc("drover_machines", "Machines, by lifecycle state.", []string{"state"}, nil)
	descTFTP := prometheus.NewDesc("drover_tftp_transfers_total", "TFTP transfers, by outcome.", []string{"outcome"}, nil)
	descTFTPBytes := prometheus.NewDesc("drover_tftp_bytes_total", "Bytes sent by TFTP.", nil, nil)
	descBoot := prometheus.NewDesc("drover_boot_http_requests_total", "Machine HTTP requests, by kind and status.", []string{"kind", "code"}, nil)
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for k, v := range c.s.cfg.DHCP.Snapshot() {
		switch {
		case k == "rx_packets":
			counter(descDHCPPackets, v)
		case strings.HasPrefix(k, "rx_"):
			counter(descDHCPReceived, v, strings.TrimPrefix(k, "rx_"))
		case k == "tx_error":
			counter(descDHCPDropped, v, "send_error")
		case strings.HasPrefix(k, "tx_"):
			counter(descDHCPSent, v, strings.TrimPrefix(k, "tx_"))
		case strings.HasPrefix(k, "drop_"):
			counter(descDHCPDropped, v, strings.TrimPrefix(k, "drop_"))
		case strings.HasPrefix(k, "relay|"):
			if parts := strings.Split(k, "|"); len(parts) == 3 {
				counter(descDHCPRelay, v, parts[1], parts[2])
			}
		}
	}
	for k, v := range c.s.cfg.TFTP.Snapshot() {
		if k == "bytes" {
			counter(descTFTPBytes, v)
		} else {
			counter(descTFTP, v, k)
		}
	}
	for k, v := range c.s.cfg.Boot.Snapshot() {
		if kind, code, ok := strings.Cut(k, "|"); ok {
			counter(descBoot, v, kind, code)
		}
	}
	machines, leases := c.s.cfg.Fleet.Counts()
	for _, st := range machine.States() {
		ch <- prometheus.MustNewConstMetric(descMachines, prometheus.GaugeValue, float64(machines[st]), string(st))
	}
	for _, st := range []string{"offered", "bound", "declined"} {
		ch <- prometheus.MustNewConstMetric(descLeases, prometheus.GaugeValue, float64(leases[st]), st)
	}
}
