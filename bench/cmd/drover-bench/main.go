// Command drover-bench measures drover next to its peers on this machine, in
// network namespaces it creates, and writes bench/results/latest.json,
// BENCHMARKS.md and plots. Run it as root through `make bench`.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Report is everything one run measured.
type Report struct {
	Date      time.Time         `json:"date"`
	Machine   string            `json:"machine"`
	Versions  map[string]string `json:"versions"`
	DHCP      *DHCPReport       `json:"dhcp,omitempty"`
	Storm     *StormReport      `json:"storm,omitempty"`
	Discovery *DiscoveryReport  `json:"discovery_storm,omitempty"`
	HA        *HAReport         `json:"ha,omitempty"`
	TFTP      *TFTPReport       `json:"tftp,omitempty"`
	HTTP      *HTTPReport       `json:"http,omitempty"`
	Control   *ControlReport    `json:"control,omitempty"`
	Power     *PowerReport      `json:"power,omitempty"`
	UI        *UIReport         `json:"ui,omitempty"`
	DNS       *DNSReport        `json:"dns,omitempty"`
	Lab       *LabReport        `json:"lab,omitempty"`
	// Parts says when each part was last measured, and on which drover: a
	// run of some parts keeps the others' figures from earlier runs.
	Parts map[string]PartRun `json:"parts,omitempty"`
}

// PartRun is when a part's figures were measured and on which drover commit.
type PartRun struct {
	At     time.Time `json:"at"`
	Drover string    `json:"drover,omitempty"`
	// Seconds is how long the part took (0 in results from before it was kept).
	Seconds float64 `json:"seconds,omitempty"`
}

// measured lists the parts the report has figures for.
func (r *Report) measured() []string {
	var out []string
	for name, has := range map[string]bool{
		"dhcp": r.DHCP != nil, "storm": r.Storm != nil, "discovery": r.Discovery != nil, "ha": r.HA != nil,
		"tftp": r.TFTP != nil, "http": r.HTTP != nil, "control": r.Control != nil, "power": r.Power != nil,
		"ui": r.UI != nil, "dns": r.DNS != nil, "lab": r.Lab != nil,
	} {
		if has {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

type env struct {
	log    *slog.Logger
	drover string // the drover binary under test
	self   string // this binary, re-run inside namespaces
	work   string // scratch directory
	out    string // results directory
	quick  bool
	// dhcpPeers limits the DHCP part to these servers (default: all).
	dhcpPeers map[string]bool
	// stormArgs are extra `drover serve` flags for the boot storm (experiments).
	stormArgs []string
	// stormRuns, when set, is how many boot storms to run (experiments).
	stormRuns int
}

func main() {
	// Helpers the harness runs inside its namespaces.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "storm-client":
			os.Exit(stormClient(os.Args[2:]))
		case "dhcp-load":
			os.Exit(dhcpLoad(os.Args[2:]))
		case "udp-delay-proxy":
			os.Exit(udpDelayProxy(os.Args[2:]))
		case "http-client":
			os.Exit(httpClient(os.Args[2:]))
		}
	}
	parts := flag.String("parts", "dhcp,storm,lab,discovery,ha,tftp,http,control,power,ui,dns", "comma-separated parts to run")
	out := flag.String("out", "bench/results", "results directory")
	doc := flag.String("doc", "BENCHMARKS.md", "markdown report to write")
	quick := flag.Bool("quick", false, "fewer and shorter runs (for trying the harness, not for figures)")
	dhcpPeers := flag.String("dhcp-servers", strings.Join(dhcpServers(), ","), "the servers the DHCP part measures")
	stormArgs := flag.String("storm-serve-args", "", "extra drover serve flags for the boot storm (experiments, not for figures)")
	stormRuns := flag.Int("storm-runs", 0, "boot storms to run, when not the usual 3 (experiments, not for figures)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if os.Geteuid() != 0 {
		log.Error("drover-bench needs root: it creates network namespaces")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	work, err := os.MkdirTemp("", "drover-bench-")
	if err != nil {
		log.Error("scratch dir", "err", err)
		os.Exit(1)
	}
	defer os.RemoveAll(work)
	os.Chmod(work, 0o755) // peers that drop privileges (nginx, tftpd-hpa) must read it
	self, _ := os.Executable()
	e := &env{log: log, self: self, work: work, out: *out, quick: *quick, drover: filepath.Join(work, "drover"),
		dhcpPeers: map[string]bool{}, stormArgs: strings.Fields(*stormArgs), stormRuns: *stormRuns}
	for _, name := range strings.Split(*dhcpPeers, ",") {
		e.dhcpPeers[strings.TrimSpace(name)] = true
	}
	if b, err := exec.Command("go", "build", "-o", e.drover, "github.com/drover/drover/cmd/drover").CombinedOutput(); err != nil {
		log.Error("build drover", "err", err, "out", string(b))
		os.Exit(1)
	}
	rep := &Report{Date: time.Now().UTC(), Machine: machineInfo(), Versions: versions()}
	if prev, err := os.ReadFile(filepath.Join(*out, "latest.json")); err == nil {
		json.Unmarshal(prev, rep) // parts not run this time keep their last figures
		if rep.Parts == nil {
			rep.Parts = map[string]PartRun{}
		}
		for _, name := range rep.measured() {
			if _, ok := rep.Parts[name]; !ok {
				rep.Parts[name] = PartRun{At: rep.Date, Drover: rep.Versions["drover"]}
			}
		}
		if strings.Trim(*parts, ", ") != "" {
			rep.Date, rep.Machine, rep.Versions = time.Now().UTC(), machineInfo(), versions()
		}
	}
	start := time.Now()
	for _, p := range strings.Split(*parts, ",") {
		if p == "" {
			continue // -parts "" rewrites the report and plots from latest.json
		}
		t0 := time.Now()
		var err error
		switch strings.TrimSpace(p) {
		case "dhcp":
			rep.DHCP, err = benchDHCP(ctx, e)
		case "storm":
			var listed int
			var listSec float64
			if rep.Storm, listed, listSec, err = benchStorm(ctx, e); err == nil {
				if rep.Control == nil {
					rep.Control = &ControlReport{}
				}
				rep.Control.ListedMachines, rep.Control.ListMachinesSec = listed, listSec
			}
		case "lab":
			rep.Lab, err = benchLab(ctx, e)
		case "discovery":
			rep.Discovery, err = benchDiscovery(ctx, e)
		case "ha":
			rep.HA, err = benchHA(ctx, e)
		case "tftp":
			rep.TFTP, err = benchTFTP(ctx, e)
		case "http":
			rep.HTTP, err = benchHTTP(ctx, e)
		case "control":
			var c *ControlReport
			if c, err = benchControl(ctx, e); err == nil {
				if rep.Control != nil && c.ListedMachines == 0 {
					c.ListedMachines, c.ListMachinesSec = rep.Control.ListedMachines, rep.Control.ListMachinesSec
				}
				rep.Control = c
			}
		case "power":
			rep.Power, err = benchPower(ctx, e)
		case "ui":
			rep.UI, err = benchUI(ctx, e)
		case "dns":
			rep.DNS, err = benchDNS(ctx, e)
		default:
			err = fmt.Errorf("unknown part %q", p)
		}
		if err != nil {
			log.Error("benchmark part failed", "part", p, "err", err)
			os.Exit(1)
		}
		if rep.Parts == nil {
			rep.Parts = map[string]PartRun{}
		}
		// At is the run's start, so that the parts of one run read as one.
		rep.Parts[strings.TrimSpace(p)] = PartRun{At: rep.Date, Drover: rep.Versions["drover"], Seconds: time.Since(t0).Seconds()}
		log.Info("part done", "part", p, "took", time.Since(t0).Round(time.Second))
	}
	if err := writeReport(e, rep, *doc); err != nil {
		log.Error("report", "err", err)
		os.Exit(1)
	}
	log.Info("benchmarks done", "took", time.Since(start).Round(time.Second), "doc", *doc)
}

func machineInfo() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		if len(f) > 1 {
			mem = f[1] + " kB"
		}
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	return fmt.Sprintf("%d CPUs (%s), %s memory, Linux %s", runtime.NumCPU(), model, mem, strings.TrimSpace(string(kernel)))
}

func versions() map[string]string {
	v := map[string]string{"go": runtime.Version()}
	for _, pkg := range []string{"kea-dhcp4-server", "kea-admin", "dnsmasq-base", "tftpd-hpa", "atftp", "nginx-light", "nginx", "openipmi", "ipmitool", "bind9", "dnsperf"} {
		if out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", pkg).Output(); err == nil && len(out) > 0 {
			v[pkg] = string(out)
		}
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		v["drover"] = strings.TrimSpace(string(out))
	}
	return v
}
