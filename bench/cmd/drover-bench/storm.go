package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover/drover/bench"
	"github.com/drover/drover/bench/storm"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/netns"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

// StormReport is the boot storm's outcome.
type StormReport struct {
	storm.Summary
	PeakRSSMB  float64 `json:"drover_peak_rss_mb"`
	CPUSeconds float64 `json:"drover_cpu_seconds"`
	SpreadSec  float64 `json:"power_on_spread_seconds"`
	// Counters are the server's DHCP and boot counters after the storm
	// (drops by reason, overload, replies, HTTP requests by kind and status).
	Counters map[string]float64 `json:"server_counters,omitempty"`
	// Runs is every run of the storm, each against a fresh server; the
	// figures above are the median run's (by time until all deployed).
	Runs []StormRun `json:"runs,omitempty"`
	// ServeArgs are the drover serve flags the storm adds to the usual ones.
	ServeArgs []string `json:"serve_args,omitempty"`
}

// stormMemoryLimit is the soft memory limit the boot storm's server runs
// with, as docs/boot.md advises for a server that must stay under 512 MB.
const stormMemoryLimit = "450MiB"

// StormRun is one run of a storm.
type StormRun struct {
	AllDoneSec     float64 `json:"all_done_seconds"`
	Deployed       int     `json:"done"`
	Failed         int     `json:"failed"`
	Retransmits    int     `json:"dhcp_retransmits"`
	PeakRSSMB      float64 `json:"drover_peak_rss_mb"`
	CPUSeconds     float64 `json:"drover_cpu_seconds"`
	SimCPUSeconds  float64 `json:"simulated_machines_cpu_seconds,omitempty"`
	AddressesTwice int     `json:"addresses_acked_twice"`
	// The discovery storm's database checks.
	DBDiscovered int `json:"db_discovered,omitempty"`
	DBInstalled  int `json:"db_installing_or_deployed,omitempty"`
	DBAddrsTwice int `json:"db_addresses_leased_twice,omitempty"`
}

// stormRuns is how many times each storm runs, each against a fresh server.
func stormRuns(e *env) int {
	if e.stormRuns > 0 {
		return e.stormRuns
	}
	if e.quick {
		return 1
	}
	return 3
}

// medianRun is the index of the run with the median time until all were done.
func medianRun(runs []StormRun) int {
	idx := make([]int, len(runs))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return runs[idx[a]].AllDoneSec < runs[idx[b]].AllDoneSec })
	return idx[len(idx)/2]
}

// spread is the smallest and largest of a figure over the runs.
func spread(runs []StormRun, f func(StormRun) float64) (lo, hi float64) {
	lo, hi = f(runs[0]), f(runs[0])
	for _, r := range runs[1:] {
		lo, hi = min(lo, f(r)), max(hi, f(r))
	}
	return lo, hi
}

// runOf is one run's figures from its summary and drover's peak memory and CPU.
func runOf(s storm.Summary, rssMB, cpuSec float64) StormRun {
	return StormRun{AllDoneSec: s.AllDoneSec, Deployed: s.Deployed, Failed: s.Failed, Retransmits: s.Retransmits,
		PeakRSSMB: rssMB, CPUSeconds: cpuSec, SimCPUSeconds: s.SimulatorCPUSec, AddressesTwice: s.AddressesTwice}
}

// pair is a server namespace and a load namespace joined by a veth.
type pair struct {
	net   *netns.Net
	srvIP netip.Addr // in namespace "srv"
	ldIP  netip.Addr // in namespace "ld"
	// serverCPU, when set, pins the server to these CPUs (taskset -c) so that
	// the load generator, pinned elsewhere, does not take the server's core.
	serverCPU string
}

// server is a server's command line, pinned to serverCPU when set.
func (p *pair) server(args ...string) []string { return pinned(p.serverCPU, args...) }

// pinned prefixes a command with taskset when cpus is set.
func pinned(cpus string, args ...string) []string {
	if cpus == "" {
		return args
	}
	return append([]string{"taskset", "-c", cpus}, args...)
}

func newPair(prefix string) (*pair, error) {
	p := &pair{net: netns.New(prefix), srvIP: netip.MustParseAddr("192.168.250.1"), ldIP: netip.MustParseAddr("192.168.250.2")}
	for _, ns := range []string{"srv", "ld"} {
		if err := p.net.AddNS(ns); err != nil {
			p.close()
			return nil, err
		}
	}
	err := firstErr(p.net.Veth("srv", "s0", "ld", "eth0"), p.net.Addr("srv", "s0", "192.168.250.1/24"), p.net.Addr("ld", "eth0", "192.168.250.2/24"))
	if err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (p *pair) close() { p.net.Close() }

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// ipBatch runs many `ip` commands in one process (thousands of addresses).
func ipBatch(ns string, lines []string) error {
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip -batch: %v: %s", err, out)
	}
	return nil
}

// procStats samples a process's resident memory and CPU time.
type procStats struct {
	mu      sync.Mutex
	peakKB  int64
	cpuTick int64
}

func (s *procStats) sample(pid int) {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				f := strings.Fields(l)
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				s.mu.Lock()
				s.peakKB = max(s.peakKB, kb)
				s.mu.Unlock()
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		f := strings.Fields(string(b[bytes.LastIndexByte(b, 0x29)+2:]))
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			sy, _ := strconv.ParseInt(f[12], 10, 64)
			s.mu.Lock()
			s.cpuTick = u + sy
			s.mu.Unlock()
		}
	}
}

func watch(ctx context.Context, pid int) *procStats {
	s := &procStats{}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			s.sample(pid)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// startDrover applies a design and serves it in the server namespace.
func startDrover(e *env, p *pair, design string, extra ...string) (*netns.Proc, string, error) {
	db := filepath.Join(e.work, fmt.Sprintf("drover-%d.db", time.Now().UnixNano()))
	if out, err := exec.Command(e.drover, "--db", db, "apply", "--yes", design).CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("apply: %v: %s", err, out)
	}
	args := append([]string{e.drover, "--db", db, "serve", "--server-ip", p.srvIP.String(), "--artifacts", e.work,
		"--http-listen", "0.0.0.0:8080", "--log-level", "warn", "--admin-token-file", db + ".token"}, extra...)
	proc, err := p.net.Start("srv", filepath.Join(e.work, "drover-serve.log"), nil, p.server(args...)...)
	if err != nil {
		return nil, "", err
	}
	for i := 0; i < 200; i++ {
		if out, err := p.net.Run(context.Background(), "srv", "curl", "-sf", "http://127.0.0.1:8080/healthz"); err == nil && strings.TrimSpace(string(out)) == "ok" {
			return proc, db, nil
		}
		if proc.Exited() {
			b, _ := os.ReadFile(filepath.Join(e.work, "drover-serve.log"))
			return nil, "", fmt.Errorf("drover exited: %s", tail(string(b), 10))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, "", fmt.Errorf("drover did not start")
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

const stormTemplate = "#!/bin/sh\n# {{.Name}} {{.Address}}\necho installing {{.PermanentName}} as {{.Role}}\n"

// stormZone is the storm's design and its simulated machines.
type stormZone struct {
	dir     string
	clients []storm.Client
	spread  time.Duration // how far apart the machines power on
}

// The storms' sizes: the boot storm (issue: 100,000 machines powering on
// within 30 s), the discovery storm, and the HA storm (10,000 on PostgreSQL).
func stormSlots(e *env) int {
	if e.quick {
		return 1_000
	}
	return 100_000
}

func discoverySlots(e *env) int {
	if e.quick {
		return 500
	}
	return 10_000
}

// newStormZone writes a design of at least slots slots and lists a machine
// for each of the first slots ones (known) or, with unknown, a machine for
// each of unknown ports without a slot instead.
func newStormZone(e *env, name string, slots, unknown int, spread time.Duration) (*stormZone, error) {
	z := &stormZone{dir: filepath.Join(e.work, name+"-design"), spread: spread}
	os.MkdirAll(z.dir, 0o755)
	src := strings.Replace(string(bench.GenerateDesign(max(slots, unknown*96/10))), "debian: {kernel: debian/linux, initrd: [debian/initrd.gz]}",
		"debian: {kernel: debian/linux, initrd: [debian/initrd.gz], templates: {install: install.sh}}", 1)
	os.WriteFile(filepath.Join(z.dir, "zone.yaml"), []byte(src), 0o644)
	os.WriteFile(filepath.Join(z.dir, "install.sh"), []byte(stormTemplate), 0o644)
	d, err := zone.Load(z.dir)
	if err != nil {
		return nil, err
	}
	ix := zone.NewIndex(d)
	want := slots
	if unknown > 0 {
		want = unknown
	}
	for _, zz := range d.Zones {
		for _, pod := range zz.Pods {
			for _, sw := range pod.Switches {
				for _, port := range sw.PortNames() {
					if known := ix.Slot(sw.Name+"/"+port) != nil; known != (unknown == 0) || len(z.clients) == want {
						continue
					}
					n := len(z.clients) + 1
					c := storm.Client{MAC: net.HardwareAddr{0x02, 0xd0, byte(n >> 16), byte(n >> 8), byte(n), 0x01}, Circuit: port, Unknown: unknown > 0}
					if sw.BootNetwork == zone.ShapePerPort {
						_, gw, _ := sw.PortSubnet(port)
						c.Relay = gw
					} else {
						c.Relay, c.RemoteID = sw.RelayAddr(), sw.RemoteID
					}
					z.clients = append(z.clients, c)
				}
			}
		}
	}
	return z, nil
}

// pair makes the server and load namespaces. The load namespace takes every
// address of the design's networks as its own (a local route: Linux's
// "AnyIP"), so that each machine relays from its switch's address and talks
// HTTP from its leased one without an address added per machine.
func (z *stormZone) pair(ctx context.Context, prefix string) (*pair, error) {
	p, err := newPair(prefix + strconv.Itoa(os.Getpid()%10000) + "-")
	if err != nil {
		return nil, err
	}
	err = firstErr(p.net.Route("srv", "10.64.0.0/10", p.ldIP.String()), p.net.Route("srv", "100.64.0.0/10", p.ldIP.String()),
		ipBatch(p.net.NS("ld"), []string{"route add local 10.64.0.0/10 dev lo", "route add local 100.64.0.0/10 dev lo"}))
	if err != nil {
		p.close()
		return nil, err
	}
	p.net.Run(ctx, "ld", "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000")
	return p, nil
}

// run powers every machine on against the servers (DHCP addresses) from the load namespace.
func (z *stormZone) run(ctx context.Context, e *env, p *pair, servers ...netip.Addr) (*storm.Summary, error) {
	in := filepath.Join(e.work, "storm-clients.json")
	b, _ := json.Marshal(z.clients)
	os.WriteFile(in, b, 0o644)
	out := filepath.Join(e.work, "storm-result.json")
	os.Remove(out)
	list := make([]string, len(servers))
	for i, s := range servers {
		list[i] = s.String()
	}
	e.log.Info("boot storm", "machines", len(z.clients), "spread", z.spread, "servers", list)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", p.net.NS("ld"), e.self, "storm-client", "-in", in, "-out", out,
		"-server", strings.Join(list, ","), "-spread", z.spread.String(), "-timeout", "180s")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("storm client: %w", err)
	}
	var sum storm.Summary
	rb, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(rb, &sum); err != nil {
		return nil, err
	}
	// ip netns exec runs the simulator in its own process.
	sum.SimulatorCPUSec = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	return &sum, nil
}

// benchStorm runs the storm and then lists every machine through the API.
func benchStorm(ctx context.Context, e *env) (*StormReport, int, float64, error) {
	z, err := newStormZone(e, "storm", stormSlots(e), 0, 30*time.Second)
	if err != nil {
		return nil, 0, 0, err
	}
	p, err := z.pair(ctx, "dvb")
	if err != nil {
		return nil, 0, 0, err
	}
	defer p.close()
	var reps []*StormReport
	var runs []StormRun
	var listed int
	var listSec float64
	// Flags given with -storm-serve-args come later and win.
	serveArgs := append([]string{"--memory-limit", stormMemoryLimit}, e.stormArgs...)
	for run := 0; run < stormRuns(e); run++ {
		rep, db, stop, err := z.oneServer(ctx, e, p, serveArgs...)
		if err != nil {
			return nil, 0, 0, err
		}
		e.log.Info("storm run", "run", run+1, "all_deployed_s", rep.AllDoneSec, "deployed", rep.Deployed, "failed", rep.Failed, "rss_mb", rep.PeakRSSMB, "cpu_s", rep.CPUSeconds, "simulator_cpu_s", rep.SimulatorCPUSec,
			"retransmits", rep.Retransmits, "restarts", rep.Restarts, "dropped_overload", rep.Counters[`drover_dhcp_dropped_total{reason="overload"}`], "dora_p99_ms", rep.Steps["dhcp_dora"].P99)
		if run == 0 { // the operator API's list of every machine, once
			if listed, listSec, err = listAll(ctx, p, db+".token"); err != nil {
				stop()
				return nil, 0, 0, err
			}
		}
		stop()
		reps, runs = append(reps, rep), append(runs, runOf(rep.Summary, rep.PeakRSSMB, rep.CPUSeconds))
	}
	rep := reps[medianRun(runs)]
	rep.Runs = runs
	rep.ServeArgs = serveArgs
	return rep, listed, listSec, nil
}

// oneServer runs the storm against one drover serve on SQLite, watching its
// memory and CPU, and reads its counters afterwards. The server runs until stop.
func (z *stormZone) oneServer(ctx context.Context, e *env, p *pair, extra ...string) (rep *StormReport, db string, stop func(), err error) {
	proc, db, err := startDrover(e, p, z.dir, extra...)
	if err != nil {
		return nil, "", nil, err
	}
	stop = func() { proc.Stop(10 * time.Second) }
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stats := watch(sctx, proc.Cmd.Process.Pid)
	stats.sample(proc.Cmd.Process.Pid)
	cpu0 := stats.cpuTick
	sum, err := z.run(ctx, e, p, p.srvIP)
	if err != nil {
		stop()
		return nil, "", nil, err
	}
	stats.sample(proc.Cmd.Process.Pid)
	out, _ := p.net.Run(ctx, "srv", "curl", "-sf", "http://127.0.0.1:9090/metrics")
	return &StormReport{Summary: *sum, PeakRSSMB: float64(stats.peakKB) / 1024, CPUSeconds: float64(stats.cpuTick-cpu0) / 100, SpreadSec: z.spread.Seconds(),
		Counters: counters(string(out), "drover_dhcp_dropped", "drover_dhcp_received", "drover_dhcp_replies", "drover_boot_")}, db, stop, nil
}

// listAll lists every machine through the operator API, a page of 1,000 at a time.
func listAll(ctx context.Context, p *pair, tokenFile string) (int, float64, error) {
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	n := 0
	for page := 1; ; page++ {
		out, err := p.net.Run(ctx, "srv", "curl", "-sf", "-H", "Authorization: Bearer "+strings.TrimSpace(string(tok)),
			fmt.Sprintf("http://127.0.0.1:9090/api/v1/machines?per_page=1000&page=%d", page))
		if err != nil {
			return 0, 0, err
		}
		var pg struct {
			Items []json.RawMessage `json:"items"`
			Total int               `json:"total"`
		}
		if err := json.Unmarshal(out, &pg); err != nil {
			return 0, 0, err
		}
		n += len(pg.Items)
		if n >= pg.Total || len(pg.Items) == 0 {
			return n, time.Since(t0).Seconds(), nil
		}
	}
}

// stormClient runs inside the load namespace.
func stormClient(args []string) int {
	fs := flag.NewFlagSet("storm-client", flag.ExitOnError)
	in := fs.String("in", "", "clients JSON")
	out := fs.String("out", "", "result JSON")
	server := fs.String("server", "", "drover's addresses, comma-separated: every request goes to each")
	spread := fs.Duration("spread", 5*time.Second, "power-on spread")
	timeout := fs.Duration("timeout", 3*time.Minute, "per machine")
	fs.Parse(args)
	b, err := os.ReadFile(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var clients []storm.Client
	if err := json.Unmarshal(b, &clients); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var servers []netip.Addr
	for _, a := range strings.Split(*server, ",") {
		servers = append(servers, netip.MustParseAddr(a))
	}
	// The simulated machines share the CPUs with the server under test, and
	// a fifth of their CPU went to garbage collection: collect less often
	// (they have memory to spare) and leave the CPU to the server.
	debug.SetGCPercent(400)
	sum, err := storm.Run(context.Background(), storm.Config{Servers: servers, Clients: clients, Spread: *spread, Timeout: *timeout})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var buf bytes.Buffer
	json.NewEncoder(&buf).Encode(sum)
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// DiscoveryReport is a storm of machines on ports without slots: they must
// all be recorded as discovered, none installed, no pool address given twice.
type DiscoveryReport struct {
	storm.Summary
	PeakRSSMB  float64 `json:"drover_peak_rss_mb"`
	CPUSeconds float64 `json:"drover_cpu_seconds"`
	SpreadSec  float64 `json:"spread_seconds"`
	// What the database holds afterwards.
	DBDiscovered int `json:"db_discovered"`
	DBInstalled  int `json:"db_installing_or_deployed"`
	DBLeases     int `json:"db_leases"`
	DBAddrsTwice int `json:"db_addresses_leased_twice"`
	// Counters are the server's DHCP and boot counters after the storm.
	Counters map[string]float64 `json:"counters,omitempty"`
	Runs     []StormRun         `json:"runs,omitempty"`
}

// benchDiscovery storms one server with unknown machines on its ToRs' ports
// without slots, each pod's discovery pool giving them addresses.
func benchDiscovery(ctx context.Context, e *env) (*DiscoveryReport, error) {
	z, err := newStormZone(e, "discovery", 0, discoverySlots(e), 10*time.Second)
	if err != nil {
		return nil, err
	}
	p, err := z.pair(ctx, "dvu")
	if err != nil {
		return nil, err
	}
	defer p.close()
	var reps []*DiscoveryReport
	var runs []StormRun
	for run := 0; run < stormRuns(e); run++ {
		rep, err := discoveryRun(ctx, e, z, p)
		if err != nil {
			return nil, err
		}
		r := runOf(rep.Summary, rep.PeakRSSMB, rep.CPUSeconds)
		r.DBDiscovered, r.DBInstalled, r.DBAddrsTwice = rep.DBDiscovered, rep.DBInstalled, rep.DBAddrsTwice
		e.log.Info("discovery run", "run", run+1, "done_s", r.AllDoneSec, "discovered", r.DBDiscovered, "installed", r.DBInstalled, "addresses_twice", r.DBAddrsTwice)
		reps, runs = append(reps, rep), append(runs, r)
	}
	rep := reps[medianRun(runs)]
	rep.Runs = runs
	return rep, nil
}

// discoveryRun is one discovery storm against a fresh server, and what its database holds afterwards.
func discoveryRun(ctx context.Context, e *env, z *stormZone, p *pair) (*DiscoveryReport, error) {
	sr, db, stop, err := z.oneServer(ctx, e, p)
	if err != nil {
		return nil, err
	}
	defer stop()
	rep := &DiscoveryReport{Summary: sr.Summary, PeakRSSMB: sr.PeakRSSMB, CPUSeconds: sr.CPUSeconds, SpreadSec: sr.SpreadSec, Counters: sr.Counters}
	st, err := store.OpenSQLite(ctx, db)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ms, err := st.Machines(ctx, store.MachineFilter{})
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		switch m.State {
		case machine.Discovered:
			rep.DBDiscovered++
		case machine.Deploying, machine.Deployed:
			rep.DBInstalled++
		}
	}
	leases, err := st.Leases(ctx)
	if err != nil {
		return nil, err
	}
	holders := map[netip.Addr]map[string]bool{}
	for _, l := range leases {
		if holders[l.Addr] == nil {
			holders[l.Addr] = map[string]bool{}
		}
		holders[l.Addr][l.MAC] = true
	}
	rep.DBLeases = len(leases)
	for _, h := range holders {
		if len(h) > 1 {
			rep.DBAddrsTwice++
		}
	}
	return rep, nil
}

func (r *DiscoveryReport) markdown(md *strings.Builder) {
	fmt.Fprintf(md, "## Discovery storm\n\n%d machines on ToR ports without slots power on within %.0f s of each other (the 100,000-slot design; each pod's pool gives addresses). Each relays its DHCP like the boot storm's machines and fetches its iPXE script, which must not install it.\n\n", r.Machines, r.SpreadSec)
	if len(r.Runs) > 1 {
		lo, hi := spread(r.Runs, func(x StormRun) float64 { return x.AllDoneSec })
		fmt.Fprintf(md, "%d runs, each against a fresh server: the median run's figures (by time), and every run's:\n\n", len(r.Runs))
		md.WriteString("| run | done | failed | time | discovered | installing or deployed | pool addresses twice (ACKs / database) |\n|---|---|---|---|---|---|---|\n")
		for i, x := range r.Runs {
			fmt.Fprintf(md, "| %d | %d | %d | %.1f s | %d | %d | %d / %d |\n", i+1, x.Deployed, x.Failed, x.AllDoneSec, x.DBDiscovered, x.DBInstalled, x.AddressesTwice, x.DBAddrsTwice)
		}
		fmt.Fprintf(md, "\nTime until the last one was done: %.1f s median, %.1f-%.1f s.\n\n", r.AllDoneSec, lo, hi)
	}
	fmt.Fprintf(md, "| figure (median run) | value | target |\n|---|---|---|\n")
	fmt.Fprintf(md, "| machines answered and told not to install | %d of %d (%d failed) | all |\n", r.Deployed, r.Machines, r.Failed)
	fmt.Fprintf(md, "| time until the last one was done | %.1f s | |\n", r.AllDoneSec)
	fmt.Fprintf(md, "| recorded as discovered (database) | %d | %d |\n", r.DBDiscovered, r.Machines)
	fmt.Fprintf(md, "| installing or deployed (database) | %d | 0 |\n", r.DBInstalled)
	fmt.Fprintf(md, "| pool addresses given twice (ACKs / database leases) | %d / %d of %d leases | 0 |\n", r.AddressesTwice, r.DBAddrsTwice, r.DBLeases)
	fmt.Fprintf(md, "| DHCP retransmits | %d | |\n", r.Retransmits)
	fmt.Fprintf(md, "| drover peak RSS, CPU | %.0f MB, %.1f s | |\n\n", r.PeakRSSMB, r.CPUSeconds)
	if len(r.Errors) > 0 {
		fmt.Fprintf(md, "Failures by step: %v (examples: %v)\n\n", r.Errors, r.Example)
	}
}
