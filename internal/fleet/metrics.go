package fleet

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover/drover/internal/cabling"
	"github.com/drover/drover/internal/machine"
)

var (
	descMachines = prometheus.NewDesc("drover_machines", "Machines, by lifecycle state.", []string{"state"}, nil)
	descLeases   = prometheus.NewDesc("drover_leases", "Current leases, by state.", []string{"state"}, nil)
)

// Collector exports the inventory as Prometheus gauges: machines by state and
// leases by state, counted at scrape time.
func (f *Fleet) Collector() prometheus.Collector { return fleetCollector{f} }

type fleetCollector struct{ f *Fleet }

var descCabling = prometheus.NewDesc("drover_cabling_machines", "Machines by what their NICs heard over LLDP against the design: ok, mismatch, no-lldp.", []string{"status"}, nil)

func (c fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descMachines
	ch <- descLeases
	ch <- descCabling
}

func (c fleetCollector) Collect(ch chan<- prometheus.Metric) {
	machines, leases := c.f.Counts()
	for _, st := range machine.States() {
		ch <- prometheus.MustNewConstMetric(descMachines, prometheus.GaugeValue, float64(machines[st]), string(st))
	}
	for _, st := range []string{LeaseOffered, LeaseBound, LeaseDeclined} {
		ch <- prometheus.MustNewConstMetric(descLeases, prometheus.GaugeValue, float64(leases[st]), st)
	}
	cab := map[string]int{}
	for _, r := range c.f.Cabling() {
		cab[r.Status]++
	}
	for _, st := range []string{cabling.OK, cabling.Mismatch, cabling.NoLLDP} {
		ch <- prometheus.MustNewConstMetric(descCabling, prometheus.GaugeValue, float64(cab[st]), st)
	}
}
