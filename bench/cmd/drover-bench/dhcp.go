package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/drover/drover/internal/netns"
)

// DHCPReport compares DHCP servers the way ISC measures Kea: full DORA
// exchanges through the relay path, the rate raised until more than 2.5 % of
// exchanges are dropped. Once with ISC's perfdhcp, once with the harness's own
// batched generator (dhcp-load), which can offer more on one CPU.
type DHCPReport struct {
	Clients int                    `json:"clients"`
	RunSec  int                    `json:"seconds_per_run"`
	Runs    int                    `json:"runs_per_point"`
	Servers map[string][]DHCPPoint `json:"servers"` // perfdhcp, by server, rising rate
	Best    map[string]DHCPPoint   `json:"best"`    // highest rate at or under 2.5 % drops
	Profile string                 `json:"drover_cpu_profile_top"`
	// Ceiling is perfdhcp asked for far more than any server answers
	// (against drover): the most it sends and receives on its one CPU.
	Ceiling DHCPPoint `json:"perfdhcp_ceiling"`
	// Batched, BatchedBest and BatchedCeiling are the same with dhcp-load.
	Batched        map[string][]DHCPPoint `json:"servers_dhcp_load,omitempty"`
	BatchedBest    map[string]DHCPPoint   `json:"best_dhcp_load,omitempty"`
	BatchedCeiling DHCPPoint              `json:"dhcp_load_ceiling"`
}

// DHCPPoint is the median of the runs at one offered rate, with the
// smallest and largest achieved rate of those runs.
type DHCPPoint struct {
	Offered     int     `json:"offered_rate"`
	Achieved    float64 `json:"achieved_rate"`
	AchievedMin float64 `json:"achieved_rate_min"`
	AchievedMax float64 `json:"achieved_rate_max"`
	DropPct     float64 `json:"drops_percent"`
	AvgMs       float64 `json:"avg_latency_ms"` // DISCOVER-OFFER and REQUEST-ACK averaged
	// LoadCPUPct is the load generator's CPU time over its run: how close it
	// is to the limit of its one CPU.
	LoadCPUPct float64 `json:"perfdhcp_cpu_percent"`
	// LoadPPS is what the load generator sent and received, packets per second of its run.
	LoadPPS float64 `json:"perfdhcp_packets_per_second"`
	// LoadOverflow is how many replies the kernel dropped at the load
	// generator's own socket, its receive buffer full (UDP RcvbufErrors of
	// its namespace): counted as drops, yet lost after the server answered.
	LoadOverflow int64 `json:"load_socket_overflow"`
}

// The CPUs of the DHCP runs: the server on one, perfdhcp on another, so the
// load generator never takes the server's core (ISC's method for Kea).
const (
	dhcpServerCPU = "0"
	dhcpLoadCPU   = "1"
)

const dhcpClients = 2000

// dhcpCeilingRate is more DORA exchanges per second than perfdhcp can offer on
// one CPU; dhcpLoadCeilingRate more than any server here answers.
const (
	dhcpCeilingRate     = 20000
	dhcpLoadCeilingRate = 60000
)

// dhcpServers are the servers the DHCP part compares, in report order.
func dhcpServers() []string { return []string{"drover", "kea", "kea-mt", "dnsmasq"} }

// peer is a DHCP server under test.
type peer struct {
	name  string
	start func(e *env, p *pair, dir string) (*netns.Proc, error)
}

// loadGen is a DHCP load generator: one run of it at a rate, against a server
// already started in p.
type loadGen func(ctx context.Context, p *pair, dir string, rate, secs int) (DHCPPoint, error)

func benchDHCP(ctx context.Context, e *env) (*DHCPReport, error) {
	rates := []int{500, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 7500, 8000, 8500, 9000, 10000, 12000, 16000}
	// dhcp-load starts where every server still answers everything and
	// rises past what perfdhcp can offer.
	batchedRates := []int{4000, 8000, 10000, 11000, 12000, 13000, 14000, 15000, 16000, 17000, 18000, 19000, 20000, 21000, 22000, 23000, 24000, 25000, 26000, 27000, 28000, 29000, 30000, 31000, 32000, 34000, 36000, 38000, 40000}
	runs, secs := 3, 5
	if e.quick {
		rates, batchedRates, runs, secs = []int{500, 2000}, []int{2000, 8000}, 1, 2
	}
	rep := &DHCPReport{Clients: dhcpClients, RunSec: secs, Runs: runs, Servers: map[string][]DHCPPoint{}, Best: map[string]DHCPPoint{},
		Batched: map[string][]DHCPPoint{}, BatchedBest: map[string]DHCPPoint{}}
	dir := filepath.Join(e.work, "dhcp")
	os.MkdirAll(dir, 0o755)
	if err := writeDHCPClients(dir); err != nil {
		return nil, err
	}
	peers := []peer{{"drover", startDroverDHCP}, {"kea", startKea}, {"kea-mt", startKeaMT}, {"dnsmasq", startDnsmasq}}
	sweeps := []struct {
		name  string
		gen   loadGen
		rates []int
		pts   map[string][]DHCPPoint
		best  map[string]DHCPPoint
		// A server that drops too many at perfdhcp's lowest rate already is not run again.
		needsPerfdhcpBest bool
	}{
		{"perfdhcp", perfdhcp, rates, rep.Servers, rep.Best, false},
		{"dhcp-load", dhcpLoadGen(e), batchedRates, rep.Batched, rep.BatchedBest, true},
	}
	for _, sw := range sweeps {
		for _, pr := range peers {
			_, hadBest := rep.Best[pr.name]
			if !e.dhcpPeers[pr.name] || (sw.needsPerfdhcpBest && !hadBest) {
				continue
			}
			pts, best, err := dhcpSweep(ctx, e, pr, sw.gen, sw.name, dir, sw.rates, runs, secs)
			if err != nil {
				return nil, err
			}
			sw.pts[pr.name] = pts
			if best.Offered > 0 {
				sw.best[pr.name] = best
			}
		}
	}
	if e.dhcpPeers["drover"] {
		var err error
		if rep.Ceiling, err = dhcpRun(ctx, e, peers[0], perfdhcp, dir, dhcpCeilingRate, secs); err != nil {
			return nil, fmt.Errorf("perfdhcp ceiling: %w", err)
		}
		e.log.Info("dhcp", "perfdhcp_ceiling_pps", rep.Ceiling.LoadPPS, "cpu%", rep.Ceiling.LoadCPUPct)
		if rep.BatchedCeiling, err = dhcpRun(ctx, e, peers[0], dhcpLoadGen(e), dir, dhcpLoadCeilingRate, secs); err != nil {
			return nil, fmt.Errorf("dhcp-load ceiling: %w", err)
		}
		e.log.Info("dhcp", "dhcp_load_ceiling_pps", rep.BatchedCeiling.LoadPPS, "cpu%", rep.BatchedCeiling.LoadCPUPct)
	}
	rate := int(max(rep.Best["drover"].Achieved, rep.BatchedBest["drover"].Achieved) * 1.5)
	var err error
	if rep.Profile, err = profileDrover(ctx, e, dir, max(rate, 1000)); err != nil {
		e.log.Warn("no CPU profile", "err", err)
	}
	return rep, nil
}

// dhcpSweep measures a server at rising rates, each rate the median of runs,
// until more than 2.5 % are dropped; best is the highest rate within 2.5 %.
func dhcpSweep(ctx context.Context, e *env, pr peer, gen loadGen, genName, dir string, rates []int, runs, secs int) (pts []DHCPPoint, best DHCPPoint, err error) {
	for _, rate := range rates {
		var points []DHCPPoint
		for run := 0; run < runs; run++ {
			pt, err := dhcpRun(ctx, e, pr, gen, dir, rate, secs)
			if err != nil {
				return nil, best, fmt.Errorf("%s at %d/s with %s: %w", pr.name, rate, genName, err)
			}
			points = append(points, pt)
		}
		sort.Slice(points, func(i, j int) bool { return points[i].DropPct < points[j].DropPct })
		med := points[len(points)/2]
		med.AchievedMin, med.AchievedMax = med.Achieved, med.Achieved
		for _, pt := range points {
			med.AchievedMin, med.AchievedMax = min(med.AchievedMin, pt.Achieved), max(med.AchievedMax, pt.Achieved)
		}
		pts = append(pts, med)
		e.log.Info("dhcp", "server", pr.name, "load", genName, "offered", rate, "achieved", med.Achieved, "drops%", med.DropPct, "avg_ms", med.AvgMs, "load_cpu%", med.LoadCPUPct)
		if med.DropPct > 2.5 {
			break
		}
		if med.Achieved > best.Achieved {
			best = med
		}
	}
	return pts, best, nil
}

// profileDrover takes a CPU profile of drover while dhcp-load pushes it past
// its best rate, and returns pprof's top functions.
func profileDrover(ctx context.Context, e *env, dir string, rate int) (string, error) {
	p, err := dhcpPair(e)
	if err != nil {
		return "", err
	}
	defer p.close()
	proc, _, err := startDrover(e, p, filepath.Join(dir, "design"), "--dhcp-client-rate", "100000", "--pprof-listen", "127.0.0.1:6060")
	if err != nil {
		return "", err
	}
	defer proc.Stop(5 * time.Second)
	load := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", p.net.NS("ld")}, pinned(dhcpLoadCPU, dhcpLoadArgs(e, dir, rate, 9)...)...)...)
	if err := load.Start(); err != nil {
		return "", err
	}
	defer load.Wait()
	time.Sleep(2 * time.Second)
	prof := filepath.Join(e.out, "dhcp-cpu.pprof")
	os.MkdirAll(e.out, 0o755)
	if _, err := p.net.Run(ctx, "srv", "curl", "-sf", "-o", prof, "http://127.0.0.1:6060/debug/pprof/profile?seconds=5"); err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", e.drover, prof).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("pprof: %v: %s", err, out)
	}
	return fmt.Sprintf("dhcp-load offering %d DORA/s; `go tool pprof -top` of a 5 s CPU profile:\n\n%s", rate, out), nil
}

// writeDHCPClients writes the clients every server knows: perfdhcp's MAC
// list, drover's MAC pins, Kea's reservations and dnsmasq's hosts, all for the
// same MACs and addresses, so the servers do comparable work.
func writeDHCPClients(dir string) error {
	var macs, pins, kea, hosts []string
	for i := 1; i <= dhcpClients; i++ {
		mac := fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff)
		ip := fmt.Sprintf("10.200.%d.%d", (10+i)>>8, (10+i)&0xff)
		macs = append(macs, mac)
		pins = append(pins, fmt.Sprintf("  - {mac: \"%s\", pod: p1, role: compute, id: %d}", mac, i))
		kea = append(kea, fmt.Sprintf(`{"hw-address": "%s", "ip-address": "%s"}`, mac, ip))
		hosts = append(hosts, mac+","+ip)
	}
	design := `zone: bench
environment: test
domain: bench.drover.test
dns_servers: [10.200.0.1]
roles:
  compute: {}
addressing:
  compute: 10
pods:
  p1:
    networks:
      boot: {subnet: 10.200.0.0/16, gateway: 10.200.0.1, pool: 10.200.100.0-10.200.199.255}
    switches:
      relay:
        kind: tor
        relay: 10.200.0.2
pins:
` + strings.Join(pins, "\n") + "\n"
	kconf := `{"Dhcp4": {
  "interfaces-config": {"interfaces": ["s0"], "dhcp-socket-type": "udp"},
  "lease-database": {"type": "memfile", "persist": true, "name": "` + filepath.Join(dir, "kea-leases4.csv") + `", "lfc-interval": 0},
  "valid-lifetime": 3600,
  "subnet4": [{"id": 1, "subnet": "10.200.0.0/16", "pools": [{"pool": "10.200.100.0 - 10.200.199.255"}],
    "option-data": [{"name": "routers", "data": "10.200.0.1"}],
    "reservations": [` + strings.Join(kea, ",\n") + `]}],
  "loggers": [{"name": "kea-dhcp4", "severity": "WARN", "output_options": [{"output": "stderr"}]}]
}}`
	// Kea's multi-threading: its packet queue and a worker thread per CPU of the machine.
	kmt := strings.Replace(kconf, `"valid-lifetime": 3600,`, `"valid-lifetime": 3600,
  "multi-threading": {"enable-multi-threading": true, "thread-pool-size": 2, "packet-queue-size": 64},`, 1)
	kmt = strings.Replace(kmt, "kea-leases4.csv", "kea-mt-leases4.csv", 1)
	for name, content := range map[string]string{"macs.txt": strings.Join(macs, "\n") + "\n", "design/bench.yaml": design, "kea.json": kconf, "kea-mt.json": kmt, "dnsmasq.hosts": strings.Join(hosts, "\n") + "\n"} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func dhcpPair(e *env) (*pair, error) {
	p, err := newPair(fmt.Sprintf("dvd%d-", os.Getpid()%10000))
	if err != nil {
		return nil, err
	}
	p.serverCPU = dhcpServerCPU
	if err := firstErr(p.net.Addr("srv", "s0", "10.200.0.1/16"), p.net.Addr("ld", "eth0", "10.200.0.2/16")); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func startDroverDHCP(e *env, p *pair, dir string) (*netns.Proc, error) {
	// The per-client rate limit is meant for real clients; perfdhcp repeats 2,000 MACs thousands of times a second.
	proc, _, err := startDrover(e, p, filepath.Join(dir, "design"), "--dhcp-client-rate", "100000")
	return proc, err
}

func startKea(e *env, p *pair, dir string) (*netns.Proc, error) { return startKeaWith(p, dir, "kea") }

// startKeaMT runs Kea with its multi-threading enabled.
func startKeaMT(e *env, p *pair, dir string) (*netns.Proc, error) {
	return startKeaWith(p, dir, "kea-mt")
}

func startKeaWith(p *pair, dir, name string) (*netns.Proc, error) {
	os.Remove(filepath.Join(dir, name+"-leases4.csv"))
	env := []string{"KEA_PIDFILE_DIR=" + dir, "KEA_LOCKFILE_DIR=" + dir}
	proc, err := p.net.Start("srv", filepath.Join(dir, name+".log"), env, p.server("kea-dhcp4", "-c", filepath.Join(dir, name+".json"))...)
	if err != nil {
		return nil, err
	}
	return proc, waitUDP(p, proc, 67)
}

func startDnsmasq(e *env, p *pair, dir string) (*netns.Proc, error) {
	lease := filepath.Join(dir, "dnsmasq.leases")
	os.Remove(lease)
	proc, err := p.net.Start("srv", filepath.Join(dir, "dnsmasq.log"), nil, p.server("dnsmasq", "-d", "--port=0", "--no-resolv", "--no-hosts",
		"--dhcp-range=10.200.100.0,10.200.199.255,1h", "--dhcp-hostsfile="+filepath.Join(dir, "dnsmasq.hosts"),
		"--dhcp-leasefile="+lease, "--dhcp-authoritative", "--dhcp-lease-max=100000", "--pid-file="+filepath.Join(dir, "dnsmasq.pid"),
		"--log-facility=-", "--quiet-dhcp")...)
	if err != nil {
		return nil, err
	}
	return proc, waitUDP(p, proc, 67)
}

// waitUDP waits until something listens on a UDP port in the server namespace.
func waitUDP(p *pair, proc *netns.Proc, port int) error {
	for i := 0; i < 100; i++ {
		out, _ := p.net.Run(context.Background(), "srv", "ss", "-uln")
		if strings.Contains(string(out), ":"+strconv.Itoa(port)+" ") {
			return nil
		}
		if proc.Exited() {
			return fmt.Errorf("%s exited: %v", proc.Name, proc.Wait())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s is not listening on %d", proc.Name, port)
}

var (
	reRate  = regexp.MustCompile(`Rate: ([0-9.]+) 4-way exchanges/second`)
	reSent  = regexp.MustCompile(`sent packets: (\d+)`)
	reRecv  = regexp.MustCompile(`received packets: (\d+)`)
	reDelay = regexp.MustCompile(`avg delay: ([0-9.]+) ms`)
)

// dhcpRun runs one server fresh and one load generator run against it.
func dhcpRun(ctx context.Context, e *env, pr peer, gen loadGen, dir string, rate, secs int) (DHCPPoint, error) {
	p, err := dhcpPair(e)
	if err != nil {
		return DHCPPoint{}, err
	}
	defer p.close()
	proc, err := pr.start(e, p, dir)
	if err != nil {
		return DHCPPoint{}, err
	}
	defer proc.Stop(5 * time.Second)
	rctx, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
	defer cancel()
	pt, err := gen(rctx, p, dir, rate, secs)
	if err != nil {
		return pt, err
	}
	// The namespace is the run's own: its counter is the run's.
	snmp, err := p.net.Run(ctx, "ld", "cat", "/proc/net/snmp")
	if err != nil {
		return pt, err
	}
	if pt.LoadOverflow, err = udpRcvbufErrors(string(snmp)); err != nil {
		return pt, err
	}
	return pt, nil
}

// udpRcvbufErrors reads the UDP receive buffer errors of /proc/net/snmp: a
// line of field names, then a line of values, both starting "Udp:".
func udpRcvbufErrors(snmp string) (int64, error) {
	var names []string
	for _, line := range strings.Split(snmp, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, name := range names {
			if name == "RcvbufErrors" && i < len(fields) {
				return strconv.ParseInt(fields[i], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no UDP RcvbufErrors in /proc/net/snmp")
}

// loadCommand runs a load generator pinned to its CPU in the load namespace,
// and measures its CPU use over its wall time.
func loadCommand(ctx context.Context, p *pair, args ...string) (out []byte, cpuPct, wallSec float64, cmd *exec.Cmd, err error) {
	cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", p.net.NS("ld")}, pinned(dhcpLoadCPU, args...)...)...)
	began := time.Now()
	out, err = cmd.CombinedOutput()
	wallSec = time.Since(began).Seconds()
	// ip netns exec and taskset exec the generator in their own process: its CPU time is the child's.
	if ps := cmd.ProcessState; ps != nil {
		cpuPct = 100 * (ps.UserTime() + ps.SystemTime()).Seconds() / wallSec
	}
	return out, cpuPct, wallSec, cmd, err
}

// perfdhcp is ISC's load generator.
func perfdhcp(ctx context.Context, p *pair, dir string, rate, secs int) (DHCPPoint, error) {
	out, cpu, wall, cmd, err := loadCommand(ctx, p, "perfdhcp", "-4", "-l", "10.200.0.2", "-r", strconv.Itoa(rate),
		"-p", strconv.Itoa(secs), "-M", filepath.Join(dir, "macs.txt"), "-W", "250000", "10.200.0.1")
	if err != nil && (cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 3) {
		return DHCPPoint{}, fmt.Errorf("perfdhcp: %v: %s", err, tail(string(out), 10))
	}
	s := string(out)
	pt := DHCPPoint{Offered: rate, LoadCPUPct: cpu}
	if m := reRate.FindStringSubmatch(s); m != nil {
		pt.Achieved, _ = strconv.ParseFloat(m[1], 64)
	}
	var sent, recv float64
	for _, m := range reSent.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		sent += v
	}
	for _, m := range reRecv.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		recv += v
	}
	if sent > 0 {
		pt.DropPct = 100 * (sent - recv) / sent
	}
	pt.LoadPPS = (sent + recv) / wall
	var delays []float64
	for _, m := range reDelay.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		delays = append(delays, v)
	}
	for _, d := range delays {
		pt.AvgMs += d / float64(len(delays))
	}
	return pt, nil
}

// dhcpLoadArgs is the command line of dhcp-load at a rate for secs seconds.
func dhcpLoadArgs(e *env, dir string, rate, secs int) []string {
	return []string{e.self, "dhcp-load", "-l", "10.200.0.2", "-s", "10.200.0.1", "-r", strconv.Itoa(rate),
		"-p", strconv.Itoa(secs) + "s", "-W", "250ms", "-M", filepath.Join(dir, "macs.txt")}
}

// dhcpLoadGen is the harness's own batched generator (dhcp-load), counted as perfdhcp counts.
func dhcpLoadGen(e *env) loadGen {
	return func(ctx context.Context, p *pair, dir string, rate, secs int) (DHCPPoint, error) {
		out, cpu, wall, _, err := loadCommand(ctx, p, dhcpLoadArgs(e, dir, rate, secs)...)
		if err != nil {
			return DHCPPoint{}, fmt.Errorf("dhcp-load: %v: %s", err, tail(string(out), 10))
		}
		var r loadResult
		if err := json.Unmarshal(out, &r); err != nil {
			return DHCPPoint{}, fmt.Errorf("dhcp-load output %q: %w", out, err)
		}
		pt := DHCPPoint{Offered: rate, LoadCPUPct: cpu, Achieved: float64(r.Acks) / r.Seconds}
		if sent := r.Discovers + r.Requests; sent > 0 {
			pt.DropPct = 100 * float64(sent-r.Offers-r.Acks-r.Naks) / float64(sent)
		}
		pt.LoadPPS = float64(r.Discovers+r.Offers+r.Requests+r.Acks+r.Naks) / wall
		pt.AvgMs = (r.AvgDOms + r.AvgRAms) / 2
		return pt, nil
	}
}

func (d *DHCPReport) markdown(md *strings.Builder) {
	fmt.Fprintf(md, "## DHCP throughput (ISC's method)\n\nperfdhcp (kea-admin) sends full DORA exchanges as a relay, at a fixed rate for %d s, %d runs per point (median, with the smallest and largest achieved rate of the runs); the rate rises until more than 2.5 %% of packets are dropped. The server runs on CPU %s and perfdhcp on CPU %s (`taskset`), for every server. Every server knows the same %d clients: drover as MAC pins, Kea 2.2 as host reservations (memfile, persisted) single-threaded (`kea`) and with its multi-threading enabled (`kea-mt`: 2 threads, packet queue 64), dnsmasq as dhcp-host entries. Each run starts the server afresh.\n\n", d.RunSec, d.Runs, dhcpServerCPU, dhcpLoadCPU, d.Clients)
	bestTable(md, d.Best, d.Servers)
	if kea, which := betterKea(d.Best); kea > 0 {
		fmt.Fprintf(md, "\ndrover / Kea with perfdhcp (the better of single- and multi-threaded: %s): %.2fx.\n", which, d.Best["drover"].Achieved/kea)
		if c := d.Ceiling; c.LoadPPS > 0 {
			fmt.Fprintf(md, "\nperfdhcp's own limit: asked for %d DORA/s, it sent and received %.0f packets/s at %.0f %% of its CPU. A full exchange is four packets, so twice Kea's best here (%.0f DORA/s) would take %.0f packets/s: %.1fx what perfdhcp manages on one CPU of this machine. Where the best points sit close to that limit, they measure perfdhcp more than the server.\n",
				dhcpCeilingRate, c.LoadPPS, c.LoadCPUPct, 2*kea, 8*kea, 8*kea/c.LoadPPS)
		}
	}
	pointsTable(md, "perfdhcp", d.Servers)
	if len(d.Batched) > 0 {
		fmt.Fprintf(md, "### The same method with a faster load generator\n\n`drover-bench dhcp-load` ([bench/cmd/drover-bench/dhcpload.go](bench/cmd/drover-bench/dhcpload.go)) keeps perfdhcp's method and counting: DISCOVERs as a relay at a fixed rate from the same %d MACs, a REQUEST for each OFFER, a drop is a DISCOVER without an OFFER or a REQUEST without an ACK, the rate is ACKs per second of the sending period, 0.25 s of waiting for late replies. It sends and receives up to %d datagrams per system call and writes each packet into a reused buffer, so that one CPU offers more than perfdhcp can. Same CPUs, runs and fresh servers as above; a server that drops more than 2.5 %% already at perfdhcp's lowest rate is not run again.\n\n", d.Clients, loadBatch)
		bestTable(md, d.BatchedBest, d.Batched)
		if kea, which := betterKea(d.BatchedBest); kea > 0 {
			fmt.Fprintf(md, "\n**drover / Kea with dhcp-load** (the better of single- and multi-threaded: %s): **%.2fx** (target: 2x).\n", which, d.BatchedBest["drover"].Achieved/kea)
		}
		if c := d.BatchedCeiling; c.LoadPPS > 0 {
			fmt.Fprintf(md, "\ndhcp-load's own limit: asked for %d DORA/s against drover, it sent and received %.0f packets/s at %.0f %% of its CPU.\n", dhcpLoadCeilingRate, c.LoadPPS, c.LoadCPUPct)
		}
		pointsTable(md, "dhcp-load", d.Batched)
	}
	md.WriteString("![DHCP rate against drops](bench/results/dhcp.png)\n\n")
	if d.Profile != "" {
		md.WriteString("### Where drover's DHCP time goes\n\n```\n" + d.Profile + "\n```\n\n")
	}
}

// betterKea is the better of Kea single-threaded and multi-threaded.
func betterKea(best map[string]DHCPPoint) (float64, string) {
	kea, which := best["kea"].Achieved, "kea"
	if mt := best["kea-mt"].Achieved; mt > kea {
		kea, which = mt, "kea-mt"
	}
	return kea, which
}

func bestTable(md *strings.Builder, best map[string]DHCPPoint, servers map[string][]DHCPPoint) {
	fmt.Fprintf(md, "| server | best rate at <= 2.5 %% drops (median) | min-max of its runs | drops | avg latency | load generator CPU |\n|---|---|---|---|---|---|\n")
	for _, name := range dhcpServers() {
		b, ok := best[name]
		if !ok {
			if pts := servers[name]; len(pts) > 0 {
				fmt.Fprintf(md, "| %s | none: %.2f %% drops already at %d/s | | | | |\n", name, pts[0].DropPct, pts[0].Offered)
			}
			continue
		}
		fmt.Fprintf(md, "| %s | %.0f DORA/s (offered %d) | %.0f-%.0f | %.2f %% | %.2f ms | %.0f %% |\n", name, b.Achieved, b.Offered, b.AchievedMin, b.AchievedMax, b.DropPct, b.AvgMs, b.LoadCPUPct)
	}
}

func pointsTable(md *strings.Builder, gen string, servers map[string][]DHCPPoint) {
	fmt.Fprintf(md, "\nAll points with %s (median of runs; load generator CPU is its use of its one CPU over its wall time, including its start and its wait for late replies; lost at the generator: replies the kernel dropped at the generator's own socket, its receive buffer full, which count as drops):\n\n| server | offered | achieved (min-max) | drops | lost at the generator | avg latency | load generator CPU |\n|---|---|---|---|---|---|---|\n", gen)
	for _, name := range dhcpServers() {
		for _, p := range servers[name] {
			fmt.Fprintf(md, "| %s | %d | %.0f (%.0f-%.0f) | %.2f %% | %d | %.2f ms | %.0f %% |\n", name, p.Offered, p.Achieved, p.AchievedMin, p.AchievedMax, p.DropPct, p.LoadOverflow, p.AvgMs, p.LoadCPUPct)
		}
	}
	md.WriteString("\n")
}

func (d *DHCPReport) plot() (string, map[string]string) {
	data := map[string]string{}
	var lines []string
	for _, gen := range []struct {
		name, suffix string
		servers      map[string][]DHCPPoint
	}{{"perfdhcp", "", d.Servers}, {"dhcp-load", "-batched", d.Batched}} {
		for _, name := range dhcpServers() {
			pts := gen.servers[name]
			if len(pts) == 0 {
				continue
			}
			var b strings.Builder
			for _, p := range pts {
				fmt.Fprintf(&b, "%d %.3f\n", p.Offered, p.DropPct)
			}
			file := "dhcp-" + name + gen.suffix + ".dat"
			data[file] = b.String()
			lines = append(lines, fmt.Sprintf("'%s' with linespoints lw 2 title '%s (%s)'", file, name, gen.name))
		}
	}
	script := "set title 'DHCP: offered DORA rate against drops (median of runs)'\nset xlabel 'offered DORA exchanges per second'\nset ylabel 'drops (%)'\nset grid\nset yrange [0:*]\nset key outside right\n" +
		"plot " + strings.Join(lines, ", ") + ", 2.5 with lines dt 2 title '2.5 %'\n"
	return script, data
}
