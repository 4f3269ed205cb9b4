package dhcp

import (
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover/drover/internal/counter"
)

// Collector exports the DHCP server's counters (the handler's Stats) as
// Prometheus metrics. The hot path counts by name in a counter.Set; only this
// package knows what the names mean.
func Collector(stats *counter.Set) prometheus.Collector { return &collector{stats: stats} }

type collector struct{ stats *counter.Set }

var (
	descReceived = prometheus.NewDesc("drover_dhcp_received_total", "DHCP requests received, by message type.", []string{"type"}, nil)
	descSent     = prometheus.NewDesc("drover_dhcp_replies_total", "DHCP replies sent, by message type.", []string{"type"}, nil)
	descDropped  = prometheus.NewDesc("drover_dhcp_dropped_total", "DHCP packets dropped, by reason.", []string{"reason"}, nil)
	descPackets  = prometheus.NewDesc("drover_dhcp_packets_total", "UDP packets read by the DHCP server.", nil, nil)
	descRelay    = prometheus.NewDesc("drover_dhcp_relay_replies_total", "Offers and acks sent through each relay: the switch by name, or the relay's address when the design names no switch for it.", []string{"relay", "type"}, nil)
	descZTP      = prometheus.NewDesc("drover_dhcp_ztp_answers_total", "ZTP answers to provisioned switches, by what they were given: an OS's ZTP, onie (the installer), or refused (the switch says it runs another OS).", []string{"answer"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReceived, descSent, descDropped, descPackets, descRelay, descZTP} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for k, v := range c.stats.Snapshot() {
		switch {
		case k == "rx_packets":
			counter(descPackets, v)
		case strings.HasPrefix(k, "rx_"):
			counter(descReceived, v, strings.TrimPrefix(k, "rx_"))
		case k == "tx_error":
			counter(descDropped, v, "send_error")
		case strings.HasPrefix(k, "tx_"):
			counter(descSent, v, strings.TrimPrefix(k, "tx_"))
		case strings.HasPrefix(k, "drop_"):
			counter(descDropped, v, strings.TrimPrefix(k, "drop_"))
		case strings.HasPrefix(k, "ztp|"):
			counter(descZTP, v, strings.TrimPrefix(k, "ztp|"))
		case strings.HasPrefix(k, "relay|"):
			if parts := strings.Split(k, "|"); len(parts) == 3 {
				counter(descRelay, v, parts[1], parts[2])
			}
		}
	}
}

// typeCounters are a Set's counters of one prefix ("rx_", "tx_") by message
// type, each looked up once: every request and reply is counted, and
// building and boxing the name each time was a tenth of the DHCP path's
// allocations.
type typeCounters [256]atomic.Pointer[atomic.Int64]

func (t *typeCounters) add(stats *counter.Set, prefix string, mt dhcpv4.MessageType) {
	c := t[mt].Load()
	if c == nil {
		// Racing workers get the same counter from the Set.
		c = stats.Counter(prefix + mt.String())
		t[mt].Store(c)
	}
	c.Add(1)
}

// relayCounters count replies by relay and message type, as typeCounters.
// A relay is counted by the design's switch it belongs to, by address only
// when the design names none (one that relayed a MAC-pinned machine): a
// switch with a network per port relays from an address per port, and
// counting by address made two series per port (200,000 in a 100,000-machine
// zone; 13-16 MB of counters in the storm's heap profiles).
type relayCounters struct {
	mu sync.RWMutex
	m  map[relayType]*atomic.Int64
}

type relayType struct {
	sw    string
	relay netip.Addr // set only without sw
	mt    dhcpv4.MessageType
}

func (r *relayCounters) add(stats *counter.Set, sw string, relay netip.Addr, mt dhcpv4.MessageType) {
	k := relayType{sw: sw, mt: mt}
	if sw == "" {
		k.relay = relay
	}
	r.mu.RLock()
	c := r.m[k]
	r.mu.RUnlock()
	if c == nil {
		name := sw
		if name == "" {
			name = relay.String()
		}
		c = stats.Counter("relay|" + name + "|" + mt.String())
		r.mu.Lock()
		if r.m == nil {
			r.m = map[relayType]*atomic.Int64{}
		}
		r.m[k] = c
		r.mu.Unlock()
	}
	c.Add(1)
}
