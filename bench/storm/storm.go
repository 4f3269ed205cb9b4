// Package storm simulates a zone powering on at once: each machine relays its
// own DHCP through its switch (its own MAC, circuit-id and remote-id, with
// RFC 2131 retransmit backoff), then fetches its iPXE script, its install
// template with the token from the script, and phones home "installed".
package storm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Client is one simulated machine.
type Client struct {
	MAC      net.HardwareAddr
	Relay    netip.Addr // giaddr: the switch's relay address
	Circuit  string     // circuit-id: the port
	RemoteID string     // remote-id: the switch
	// Unknown: the machine is on a port without a slot. It is done when its
	// iPXE script says it will not be installed; an install token is a failure.
	Unknown bool `json:",omitempty"`
}

// Config is a storm.
type Config struct {
	// Servers are drover's DHCP addresses: the relays forward every request
	// to each (as dhcrelay does with several servers).
	Servers []netip.Addr
	Clients []Client
	Spread  time.Duration // power-on times are spread uniformly over this
	Timeout time.Duration // give up on a machine after this
}

// Step latencies of one machine.
type Result struct {
	DORA, Script, Template, PhoneHome time.Duration
	Retransmits                       int
	// Restarts counts boots started over: the server an install talked
	// to stopped answering over HTTP, so the machine booted again (DHCP first).
	Restarts int
	Addr     netip.Addr // the address of its last ACK
	MAC      string
	Done     time.Duration // since the storm started
	Err      string
}

// Summary is the outcome of a storm.
type Summary struct {
	Machines    int     `json:"machines"`
	Deployed    int     `json:"deployed"`
	Failed      int     `json:"failed"`
	AllDoneSec  float64 `json:"all_deployed_seconds"`
	Retransmits int     `json:"dhcp_retransmits"`
	Restarts    int     `json:"restarts,omitempty"`
	// AddressesTwice counts addresses acknowledged to more than one machine
	// (each machine's last ACK): 0 unless two servers gave one address away.
	AddressesTwice int                    `json:"addresses_acked_twice"`
	Steps          map[string]Percentiles `json:"steps"`
	Errors         map[string]int         `json:"errors,omitempty"`
	Example        map[string]string      `json:"error_examples,omitempty"` // the first error of each kind
	Progress       [][2]float64           `json:"progress"`                 // seconds since start, deployed count
	// SimulatorCPUSec is the CPU time of the process simulating the
	// machines, which shares the CPUs with the server under test. Run does
	// not set it: whoever started that process (drover-bench) does.
	SimulatorCPUSec float64  `json:"simulated_machines_cpu_seconds,omitempty"`
	Raw             []Result `json:"-"`
}

// Percentiles of a step, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// Run runs the storm from this network namespace: every client's relay
// address and its slot address must be local addresses here.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{Port: 67})
	if err != nil {
		return nil, fmt.Errorf("storm relay socket: %w", err)
	}
	defer conn.Close()
	conn.SetReadBuffer(8 << 20)
	conn.SetWriteBuffer(8 << 20)
	var mu sync.Mutex
	// Replies go to the exchange waiting for them by transaction id and MAC:
	// 100,000 random ids alone collide about once a storm.
	waiting := map[exchangeKey]chan *dhcpv4.DHCPv4{}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			rep, err := dhcpv4.FromBytes(buf[:n])
			if err != nil {
				continue
			}
			mu.Lock()
			ch := waiting[keyOf(rep)]
			mu.Unlock()
			if ch != nil {
				select {
				case ch <- rep:
				default:
				}
			}
		}
	}()
	var servers []*net.UDPAddr
	for _, a := range cfg.Servers {
		servers = append(servers, &net.UDPAddr{IP: a.AsSlice(), Port: 67})
	}
	start := time.Now()
	results := make([]Result, len(cfg.Clients))
	var wg sync.WaitGroup
	var inflight atomic.Int64
	for i := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := cfg.Clients[i]
			results[i].MAC = c.MAC.String()
			time.Sleep(time.Duration(rand.Int64N(int64(cfg.Spread) + 1)))
			inflight.Add(1)
			defer inflight.Add(-1)
			mctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
			defer cancel()
			// exchange sends req until the answer it wants comes. Each send
			// carries the seconds since the boot began (secs, RFC 2131 4.1).
			exchange := func(req *dhcpv4.DHCPv4, began time.Time, want dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
				ch := make(chan *dhcpv4.DHCPv4, 4)
				key := keyOf(req)
				mu.Lock()
				waiting[key] = ch
				mu.Unlock()
				defer func() { mu.Lock(); delete(waiting, key); mu.Unlock() }()
				// RFC 2131 4.1: 4 s, then doubling to 64 s, each randomised by +-1 s.
				delay := 4 * time.Second
				timer := time.NewTimer(0)
				defer timer.Stop()
				for {
					req.NumSeconds = uint16(min(time.Since(began)/time.Second, 0xffff))
					b := req.ToBytes()
					for _, server := range servers {
						if _, err := conn.WriteToUDP(b, server); err != nil {
							return nil, err
						}
					}
					if !timer.Stop() {
						select {
						case <-timer.C:
						default:
						}
					}
					timer.Reset(delay + time.Duration(rand.Int64N(int64(2*time.Second))) - time.Second)
				wait:
					select {
					case rep := <-ch:
						switch rep.MessageType() {
						case want:
							return rep, nil
						case dhcpv4.MessageTypeNak:
							return nil, fmt.Errorf("got NAK, want %s", want)
						}
						// A late answer to an earlier message (an OFFER to a
						// retransmitted DISCOVER while requesting): a client ignores it.
						goto wait
					case <-timer.C:
						if want == dhcpv4.MessageTypeAck && delay >= 16*time.Second {
							// No ACK after three sends (28 s): back to INIT, as
							// dhclient does when its REQUEST goes unanswered.
							return nil, errNoAck
						}
						results[i].Retransmits++
						delay = min(2*delay, 64*time.Second)
					case <-mctx.Done():
						return nil, fmt.Errorf("no %s", want)
					}
				}
			}
			relay := func(d *dhcpv4.DHCPv4) {
				d.GatewayIPAddr = c.Relay.AsSlice()
				d.HopCount = 1
				d.UpdateOption(dhcpv4.OptRelayAgentInfo(
					dhcpv4.OptGeneric(dhcpv4.AgentCircuitIDSubOption, []byte(c.Circuit)),
					dhcpv4.OptGeneric(dhcpv4.AgentRemoteIDSubOption, []byte(c.RemoteID))))
			}
			// boot is one boot from power-on to phone-home. A failure after
			// DHCP (the server that answered is gone, or refuses a ticket or
			// token its pod's new owner never issued) makes the machine boot
			// again, as iPXE and installers do; so does a REQUEST nobody answers.
			// phonedHome: a phone-home was sent, whether or not its answer came back.
			phonedHome := false
			boot := func() (again bool) {
				t0 := time.Now()
				disc, _ := dhcpv4.NewDiscovery(c.MAC, relay, dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE")))
				offer, err := exchange(disc, t0, dhcpv4.MessageTypeOffer)
				if err != nil {
					results[i].Err = "discover: " + err.Error()
					return false
				}
				req, _ := dhcpv4.NewRequestFromOffer(offer, relay, dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE")))
				ack, err := exchange(req, t0, dhcpv4.MessageTypeAck)
				if err != nil {
					results[i].Err = "request: " + err.Error()
					return errors.Is(err, errNoAck)
				}
				results[i].DORA = time.Since(t0)
				local, _ := netip.AddrFromSlice(ack.YourIPAddr.To4())
				results[i].Addr = local
				hc := &machineHTTP{local: local, timeout: 30 * time.Second}
				defer hc.close()
				get := hc.get
				t1 := time.Now()
				script, err := get(ack.BootFileName)
				if err != nil {
					results[i].Err = "script: " + err.Error()
					return true
				}
				results[i].Script = time.Since(t1)
				token, base := field(script, "drover.token="), field(script, "drover.url=")
				if c.Unknown {
					if token != "" {
						results[i].Err = "unknown machine given an install token"
					}
					return false
				}
				if token == "" {
					// A phone-home that landed on a server killed before it
					// answered: the machine is deployed, and boots its disk.
					if !phonedHome {
						results[i].Err = "script has no install token"
					}
					return false
				}
				t2 := time.Now()
				if _, err := get(base + "/install/install?token=" + url.QueryEscape(token)); err != nil {
					results[i].Err = "template: " + err.Error()
					return true
				}
				results[i].Template = time.Since(t2)
				t3 := time.Now()
				phonedHome = true
				status, _, err := hc.do(http.MethodPost, base+"/phone-home?token="+url.QueryEscape(token), url.Values{"status": {"installed"}}.Encode())
				if err != nil {
					results[i].Err = "phone-home: " + err.Error()
					return true
				}
				if status != http.StatusOK {
					results[i].Err = fmt.Sprintf("phone-home: %d", status)
					return true
				}
				results[i].PhoneHome = time.Since(t3)
				return false
			}
			for boot() {
				results[i].Restarts++
				select {
				case <-mctx.Done():
					return // failed with the last boot's error
				case <-time.After(time.Second): // the machine reboots
				}
				results[i].Err = ""
			}
			if results[i].Err != "" {
				return
			}
			results[i].Done = time.Since(start)
		}()
	}
	wg.Wait()
	return summarise(results), nil
}

// errNoAck is a REQUEST that nobody answered: the machine starts over.
var errNoAck = errors.New("no ACK")

// exchangeKey names one client's exchange.
type exchangeKey struct {
	xid dhcpv4.TransactionID
	mac [6]byte
}

func keyOf(d *dhcpv4.DHCPv4) exchangeKey {
	k := exchangeKey{xid: d.TransactionID}
	copy(k.mac[:], d.ClientHWAddr)
	return k
}

func field(script, key string) string {
	i := strings.Index(script, key)
	if i < 0 {
		return ""
	}
	rest := script[i+len(key):]
	if j := strings.IndexAny(rest, " \n"); j >= 0 {
		return rest[:j]
	}
	return rest
}

func summarise(rs []Result) *Summary {
	s := &Summary{Machines: len(rs), Steps: map[string]Percentiles{}, Errors: map[string]int{}, Example: map[string]string{}, Raw: rs}
	steps := map[string][]float64{}
	var done []float64
	holders := map[netip.Addr]int{}
	for _, r := range rs {
		if r.Addr.IsValid() {
			if holders[r.Addr]++; holders[r.Addr] == 2 {
				s.AddressesTwice++
			}
		}
		s.Retransmits += r.Retransmits
		s.Restarts += r.Restarts
		if r.Err != "" {
			s.Failed++
			kind, _, _ := strings.Cut(r.Err, ":")
			s.Errors[kind]++
			if _, ok := s.Example[kind]; !ok {
				s.Example[kind] = r.MAC + ": " + r.Err
			}
			continue
		}
		s.Deployed++
		done = append(done, r.Done.Seconds())
		for name, d := range map[string]time.Duration{"dhcp_dora": r.DORA, "ipxe_script": r.Script, "template": r.Template, "phone_home": r.PhoneHome} {
			steps[name] = append(steps[name], float64(d.Microseconds())/1000)
		}
	}
	for name, v := range steps {
		sort.Float64s(v)
		s.Steps[name] = Percentiles{P50: pct(v, 0.50), P99: pct(v, 0.99), Max: v[len(v)-1]}
	}
	sort.Float64s(done)
	if len(done) > 0 {
		s.AllDoneSec = done[len(done)-1]
	}
	for i, d := range done {
		if i%max(1, len(done)/200) == 0 || i == len(done)-1 {
			s.Progress = append(s.Progress, [2]float64{d, float64(i + 1)})
		}
	}
	return s
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}
