package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/drover/drover/bench/storm"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/netns"
	"github.com/drover/drover/internal/pgtest"
	"github.com/drover/drover/internal/store"
)

// HAReport is the boot storm against servers sharing one PostgreSQL
// database (serve --shared), with and without one of them killed mid-storm.
type HAReport struct {
	// Single is the same storm against one server on SQLite, in the same run.
	Single *StormReport `json:"single_sqlite"`
	Runs   []HARun      `json:"runs"`
}

// haSpread is how far apart the HA storm's machines power on.
const haSpread = 5 * time.Second

// haSlots is the HA storm's size.
func haSlots(e *env) int {
	if e.quick {
		return 1_000
	}
	return 10_000
}

// HARun is one storm against two shared servers.
type HARun struct {
	Setup string `json:"setup"`
	storm.Summary
	KilledAtSec float64   `json:"killed_at_seconds,omitempty"` // since the first power-on
	TakeoverSec float64   `json:"takeover_seconds,omitempty"`  // from the kill until the survivor owned every pod
	PeakRSSMB   []float64 `json:"peak_rss_mb"`                 // per server
	CPUSeconds  float64   `json:"cpu_seconds"`                 // both servers
	// What the database holds afterwards.
	DBMachines    int   `json:"db_machines"`
	DBDeployed    int   `json:"db_deployed"`
	DBMACsTwice   int   `json:"db_macs_with_two_addresses"`
	DBSlotsTwice  int   `json:"db_slots_with_two_machines"`
	PodsPerServer []int `json:"pods_per_server"`
	// ServerLog counts the servers' warnings and errors during the run, by message.
	ServerLog map[string]int `json:"server_log,omitempty"`
	// Counters are the servers' DHCP and boot counters after the storm, per server.
	Counters []map[string]float64 `json:"counters,omitempty"`
	// ErrorTimelines is, per kind of failure, the timeline of its example machine.
	ErrorTimelines map[string][]string `json:"error_timelines,omitempty"`
}

// haServer is one drover serve --shared in the server namespace.
type haServer struct {
	name string
	addr netip.Addr
	proc *netns.Proc
}

func benchHA(ctx context.Context, e *env) (*HAReport, error) {
	z, err := newStormZone(e, "ha", haSlots(e), 0, haSpread)
	if err != nil {
		return nil, err
	}
	p, err := z.pair(ctx, "dvh")
	if err != nil {
		return nil, err
	}
	defer p.close()
	second := netip.MustParseAddr("192.168.250.3")
	if err := p.net.Addr("srv", "s0", second.String()+"/24"); err != nil {
		return nil, err
	}
	pg, err := pgtest.New()
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL for the HA storm (apt-get install postgresql-15): %w", err)
	}
	defer pg.Stop()
	admin, err := store.OpenPostgres(ctx, pg.URL("postgres"))
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	rep := &HAReport{}
	single, _, stop, err := z.oneServer(ctx, e, p)
	if err != nil {
		return nil, err
	}
	stop()
	rep.Single = single
	for i, kill := range []bool{false, true} {
		name := fmt.Sprintf("storm%d", i)
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
			return nil, err
		}
		run, err := haRun(ctx, e, z, p, pg, name, []netip.Addr{p.srvIP, second}, kill)
		if err != nil {
			return nil, err
		}
		rep.Runs = append(rep.Runs, *run)
	}
	return rep, nil
}

// haRun storms two shared servers on a new database; with kill, the second
// server is killed (SIGKILL) halfway through the power-on spread.
func haRun(ctx context.Context, e *env, z *stormZone, p *pair, pg *pgtest.Server, name string, addrs []netip.Addr, kill bool) (*HARun, error) {
	url := pg.SocketURL(name)
	if out, err := exec.Command(e.drover, "--db", url, "apply", "--yes", z.dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("apply: %v: %s", err, out)
	}
	st, err := store.OpenPostgres(ctx, pg.URL(name))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var servers []*haServer
	defer func() {
		for _, s := range servers {
			s.proc.Stop(10 * time.Second)
		}
	}()
	for i, a := range addrs {
		s := &haServer{name: fmt.Sprintf("ctl%d", i+1), addr: a}
		log := filepath.Join(e.work, name+"-"+s.name+".log")
		s.proc, err = p.net.Start("srv", log, nil, e.drover, "--db", url, "serve", "--shared", "--name", s.name,
			"--server-ip", a.String(), "--dhcp-listen", a.String()+":67", "--tftp-listen", a.String()+":69", "--http-listen", a.String()+":8080",
			"--api-listen", fmt.Sprintf("127.0.0.1:%d", 9190+i), "--artifacts", e.work, "--log-level", "warn",
			"--admin-token-file", filepath.Join(e.work, name+".token"), "--pprof-listen", fmt.Sprintf("127.0.0.1:%d", 6070+i))
		if err != nil {
			return nil, err
		}
		servers = append(servers, s)
	}
	// Both serve, and between them own every pod.
	pods := map[string]int{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		owners, err := st.PodOwners(ctx)
		if err == nil {
			pods = map[string]int{}
			for _, o := range owners {
				if o.Live {
					pods[o.Owner]++
				}
			}
			// Balanced (as servers that have run for a while are) and
			// every pod owned: the storm starts from a steady state.
			a, b := pods[servers[0].name], pods[servers[1].name]
			if a > 0 && b > 0 && a+b == len(owners) && a-b <= 1 && b-a <= 1 {
				break
			}
		}
		for _, s := range servers {
			if s.proc.Exited() {
				b, _ := os.ReadFile(filepath.Join(e.work, name+"-"+s.name+".log"))
				return nil, fmt.Errorf("%s exited: %s", s.name, tail(string(b), 10))
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the two servers did not divide the pods: %v", pods)
		}
		time.Sleep(100 * time.Millisecond)
	}
	run := &HARun{Setup: "two servers (serve --shared), PostgreSQL", PodsPerServer: []int{pods[servers[0].name], pods[servers[1].name]}}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stats []*procStats
	var cpu0 int64
	for _, s := range servers {
		ps := watch(sctx, s.proc.Cmd.Process.Pid)
		ps.sample(s.proc.Cmd.Process.Pid)
		cpu0 += ps.cpuTick
		stats = append(stats, ps)
	}
	takeover := make(chan float64, 1)
	if kill {
		run.Setup = "two servers (serve --shared), PostgreSQL, one killed (SIGKILL) mid-storm"
		run.KilledAtSec = haSpread.Seconds() / 2
		victim, survivor := servers[1], servers[0]
		go func() {
			time.Sleep(haSpread / 2)
			victim.proc.Kill()
			killed := time.Now()
			for ctx.Err() == nil {
				if owners, err := st.PodOwners(ctx); err == nil {
					all := true
					for _, o := range owners {
						all = all && o.Live && o.Owner == survivor.name
					}
					if all {
						takeover <- time.Since(killed).Seconds()
						return
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	// Where a server's time goes during the storm (no kill: the whole storm).
	profiled := make(chan struct{})
	go func() {
		defer close(profiled)
		if !kill {
			p.net.Run(ctx, "srv", "curl", "-sf", "-o", filepath.Join(e.out, "ha-cpu.pprof"), "http://127.0.0.1:6070/debug/pprof/profile?seconds=10")
		}
	}()
	sum, err := z.run(ctx, e, p, addrs...)
	<-profiled
	for i, s := range servers {
		if s.proc.Exited() {
			run.Counters = append(run.Counters, nil)
			continue
		}
		out, _ := p.net.Run(ctx, "srv", "curl", "-sf", fmt.Sprintf("http://127.0.0.1:%d/metrics", 9190+i))
		run.Counters = append(run.Counters, counters(string(out), "drover_dhcp_dropped", "drover_dhcp_received", "drover_dhcp_replies", "drover_boot_"))
	}
	if err != nil {
		return nil, err
	}
	run.Summary = *sum
	var cpu int64
	for i, s := range servers {
		if !s.proc.Exited() {
			stats[i].sample(s.proc.Cmd.Process.Pid)
		}
		run.PeakRSSMB = append(run.PeakRSSMB, float64(stats[i].peakKB)/1024)
		cpu += stats[i].cpuTick
	}
	run.CPUSeconds = float64(cpu-cpu0) / 100
	if kill {
		select {
		case run.TakeoverSec = <-takeover:
		case <-time.After(30 * time.Second):
			return nil, fmt.Errorf("the survivor did not take every pod over within 30 s of the storm's end")
		}
	}
	run.ServerLog = map[string]int{}
	for _, s := range servers {
		b, _ := os.ReadFile(filepath.Join(e.work, name+"-"+s.name+".log"))
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, "level=WARN") && !strings.Contains(line, "level=ERROR") {
				continue
			}
			msg := line
			if i := strings.Index(line, "msg="); i >= 0 {
				msg = line[i+4:]
				if strings.HasPrefix(msg, `"`) {
					if j := strings.Index(msg[1:], `"`); j >= 0 {
						msg = msg[1 : j+1]
					}
				} else if j := strings.IndexByte(msg, ' '); j >= 0 {
					msg = msg[:j]
				}
			}
			run.ServerLog[msg]++
		}
	}
	run.ErrorTimelines = map[string][]string{}
	for kind, ex := range run.Example {
		mac, _, _ := strings.Cut(ex, ": ")
		if m, err := st.Machine(ctx, mac); err == nil {
			tl, _ := st.Timeline(ctx, m.ID, 0, 100)
			for _, en := range tl {
				run.ErrorTimelines[kind] = append(run.ErrorTimelines[kind], fmt.Sprintf("%s %s %s>%s %s", en.At.Format("15:04:05.000"), en.Kind, en.From, en.To, en.Reason))
			}
		}
	}
	return run, checkDB(ctx, st, run)
}

// checkDB counts what the database holds: machines, deployed ones, MACs
// holding two addresses and slots holding two machines.
func checkDB(ctx context.Context, st *store.DB, run *HARun) error {
	ms, err := st.AllMachines(ctx)
	if err != nil {
		return err
	}
	slots := map[string]int{}
	for _, m := range ms {
		run.DBMachines++
		if m.State == machine.Deployed {
			run.DBDeployed++
		}
		if m.SlotKey != "" {
			if slots[m.SlotKey]++; slots[m.SlotKey] == 2 {
				run.DBSlotsTwice++
			}
		}
	}
	ls, err := st.Leases(ctx)
	if err != nil {
		return err
	}
	held := map[string]int{}
	for _, l := range ls {
		if l.State == "declined" {
			continue
		}
		if held[l.MAC]++; held[l.MAC] == 2 {
			run.DBMACsTwice++
		}
	}
	return nil
}

// haMarkdown is the HA storm's section of BENCHMARKS.md, next to the
// single server's storm of the same run.
func (r *HAReport) markdown(md *strings.Builder) {
	single := r.Single
	fmt.Fprintf(md, "## Boot storm on several servers (PostgreSQL)\n\n")
	fmt.Fprintf(md, "The same storm (every simulated machine relays each request to both servers, as `dhcrelay` does with two) against two `drover serve --shared` on one PostgreSQL 15 (started by the harness, `fsync=off`), next to a single server on SQLite, in the same run; then again with the second server killed (SIGKILL) %.1f s after the first power-on. A machine whose install server dies boots again (counted as a restart), as a real one does when its HTTP fetch fails. Afterwards the database is checked: machines, deployed, MACs holding two addresses, slots holding two machines.\n\n", haSpread.Seconds()/2)
	fmt.Fprintf(md, "| setup | deployed | failed | all deployed after | DHCP retransmits | restarts | addresses ACKed twice | peak RSS per server | CPU | database: machines / deployed / MACs with 2 addresses / slots with 2 machines |\n|---|---|---|---|---|---|---|---|---|---|\n")
	if s := single; s != nil {
		fmt.Fprintf(md, "| one server, SQLite | %d of %d | %d | %.1f s | %d | %d | %d | %.0f MB | %.1f s | |\n", s.Deployed, s.Machines, s.Failed, s.AllDoneSec, s.Retransmits, s.Restarts, s.AddressesTwice, s.PeakRSSMB, s.CPUSeconds)
	}
	for _, run := range r.Runs {
		rss := make([]string, len(run.PeakRSSMB))
		for i, v := range run.PeakRSSMB {
			rss[i] = fmt.Sprintf("%.0f", v)
		}
		fmt.Fprintf(md, "| %s | %d of %d | %d | %.1f s | %d | %d | %d | %s MB | %.1f s | %d / %d / %d / %d |\n", run.Setup, run.Deployed, run.Machines, run.Failed, run.AllDoneSec,
			run.Retransmits, run.Restarts, run.AddressesTwice, strings.Join(rss, " + "), run.CPUSeconds, run.DBMachines, run.DBDeployed, run.DBMACsTwice, run.DBSlotsTwice)
	}
	fmt.Fprintf(md, "\n| setup | DORA p50 / p99 | script p50 / p99 | template p50 / p99 | phone-home p50 / p99 | DHCP dropped as overload (per server) |\n|---|---|---|---|---|---|\n")
	steps := func(name string, s storm.Summary, overload string) {
		fmt.Fprintf(md, "| %s |", name)
		for _, k := range []string{"dhcp_dora", "ipxe_script", "template", "phone_home"} {
			fmt.Fprintf(md, " %.0f / %.0f ms |", s.Steps[k].P50, s.Steps[k].P99)
		}
		fmt.Fprintf(md, " %s |\n", overload)
	}
	if s := single; s != nil {
		steps("one server, SQLite", s.Summary, "")
	}
	for _, run := range r.Runs {
		var drops []string
		for _, c := range run.Counters {
			if c == nil {
				drops = append(drops, "(killed)")
				continue
			}
			drops = append(drops, fmt.Sprintf("%.0f", c[`drover_dhcp_dropped_total{reason="overload"}`]))
		}
		steps(run.Setup, run.Summary, strings.Join(drops, " + "))
	}
	for _, run := range r.Runs {
		if run.TakeoverSec > 0 {
			fmt.Fprintf(md, "\nWith the kill: the survivor owned every pod %.1f s after the SIGKILL (leases expire 6 s after their last renewal; claims every 2 s). Pods per server before: %v.\n", run.TakeoverSec, run.PodsPerServer)
		}
		if len(run.Errors) > 0 {
			fmt.Fprintf(md, "\n%s: failures by step %v\n", run.Setup, run.Errors)
		}
	}
	md.WriteString("\n")
}

// counters reads the Prometheus text lines of metrics whose names start with one of prefixes.
func counters(text string, prefixes ...string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				if i := strings.LastIndexByte(line, ' '); i > 0 {
					var v float64
					fmt.Sscan(line[i+1:], &v)
					if v != 0 {
						out[line[:i]] = v
					}
				}
			}
		}
	}
	return out
}
