package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drover/drover/bench"
)

// DNSReport is the dns part: queries per second of drover's authoritative
// DNS and of BIND 9 serving the same zones, measured with dnsperf.
type DNSReport struct {
	Machines int         `json:"machines"`
	Records  int         `json:"records"`
	Zones    int         `json:"zones"`
	Queries  int         `json:"queries"` // distinct queries in the dnsperf input
	Seconds  int         `json:"seconds"`
	Runs     []DNSRun    `json:"runs"`
	Servers  []DNSFigure `json:"servers"`
}

// DNSRun is one dnsperf run against one server.
type DNSRun struct {
	Server     string  `json:"server"`
	QPS        float64 `json:"qps"`
	LostPct    float64 `json:"lost_pct"`
	AvgLatency float64 `json:"avg_latency_ms"`
}

// DNSFigure is a server's median of its runs, with min and max.
type DNSFigure struct {
	Server   string  `json:"server"`
	QPS      float64 `json:"qps_median"`
	Min, Max float64
	LostPct  float64 `json:"lost_pct_median"`
	Latency  float64 `json:"avg_latency_ms_median"`
}

var (
	dnsperfQPS     = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	dnsperfLost    = regexp.MustCompile(`Queries lost:\s+\d+ \(([0-9.]+)%\)`)
	dnsperfLatency = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`)
)

// benchDNS serves the zones of a 10,000-machine design from drover and from
// BIND 9 (the zone files drover exports, so both hold the same records) on
// loopback, each server alone on CPU 1 and dnsperf on CPU 0, and sends the
// same query mix to each in turn: A for hosts in every network, variant
// names (CNAME), PTR, and 5% names that do not exist.
func benchDNS(ctx context.Context, e *env) (*DNSReport, error) {
	for bin, pkg := range map[string]string{"named": "bind9", "dnsperf": "dnsperf", "taskset": "util-linux"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%s (apt-get install %s): %w", bin, pkg, err)
		}
	}
	rep := &DNSReport{Machines: 10_000, Seconds: 10}
	runs := 3
	if e.quick {
		rep.Seconds, runs = 3, 1
	}
	dir := filepath.Join(e.work, "dns")
	design := filepath.Join(dir, "design")
	zones := filepath.Join(dir, "zones")
	if err := os.MkdirAll(design, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(design, "big.yaml"), bench.GenerateDesign(rep.Machines), 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, e.drover, "dns", "export", "--design", design, zones).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("drover dns export: %v: %s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(zones, "*.zone"))
	rep.Zones = len(files)
	queries, records, err := dnsQueries(files)
	if err != nil {
		return nil, err
	}
	rep.Records = records
	rep.Queries = len(queries)
	qfile := filepath.Join(dir, "queries.txt")
	if err := os.WriteFile(qfile, []byte(strings.Join(queries, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}

	port := func() (int, error) {
		l, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return l.LocalAddr().(*net.UDPAddr).Port, nil
	}
	dnsPort, err := port()
	if err != nil {
		return nil, err
	}
	apiPort, _ := port()
	httpPort, _ := port()
	tftpPort, _ := port()
	drover := exec.CommandContext(ctx, "taskset", "-c", "1", e.drover, "--db", filepath.Join(dir, "drover.db"), "serve", "--design", design,
		"--dhcp-listen", "127.0.0.1:0", "--tftp-listen", fmt.Sprintf("127.0.0.1:%d", tftpPort), "--http-listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--api-listen", fmt.Sprintf("127.0.0.1:%d", apiPort), "--dns", fmt.Sprintf("127.0.0.1:%d", dnsPort), "--log-level", "warn")
	namedPort, _ := port()
	var conf strings.Builder
	fmt.Fprintf(&conf, "options { directory %q; pid-file %q; listen-on port %d { 127.0.0.1; }; listen-on-v6 { none; }; recursion no; dnssec-validation no; notify no; minimal-responses yes; };\ncontrols { };\n",
		dir, filepath.Join(dir, "named.pid"), namedPort)
	for _, f := range files {
		z := strings.TrimSuffix(filepath.Base(f), ".zone")
		fmt.Fprintf(&conf, "zone %q { type primary; file %q; };\n", z, f)
	}
	if err := os.WriteFile(filepath.Join(dir, "named.conf"), []byte(conf.String()), 0o644); err != nil {
		return nil, err
	}
	// One worker thread, as drover has one CPU; UDP listeners follow workers.
	named := exec.CommandContext(ctx, "taskset", "-c", "1", "named", "-g", "-4", "-n", "1", "-c", filepath.Join(dir, "named.conf"))
	servers := []struct {
		name string
		cmd  *exec.Cmd
		port int
	}{{"drover", drover, dnsPort}, {"BIND 9 (named -n 1)", named, namedPort}}
	probe := strings.Fields(queries[0])
	for _, s := range servers {
		logf, err := os.Create(filepath.Join(dir, strings.Fields(s.name)[0]+".log"))
		if err != nil {
			return nil, err
		}
		s.cmd.Stdout, s.cmd.Stderr = logf, logf
		if err := s.cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", s.name, err)
		}
		defer func() { s.cmd.Process.Kill(); s.cmd.Wait(); logf.Close() }()
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, err := exec.CommandContext(ctx, "dig", "@127.0.0.1", "-p", fmt.Sprint(s.port), "+short", "+time=1", "+tries=1", probe[1], probe[0]).Output()
			if err == nil && len(strings.TrimSpace(string(out))) > 0 {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%s does not answer %s (log %s)", s.name, queries[0], logf.Name())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for i := range runs {
		for _, s := range servers {
			out, err := exec.CommandContext(ctx, "taskset", "-c", "0", "dnsperf", "-s", "127.0.0.1", "-p", fmt.Sprint(s.port),
				"-d", qfile, "-l", fmt.Sprint(rep.Seconds), "-c", "4", "-q", "200", "-t", "2").CombinedOutput()
			if err != nil {
				return nil, fmt.Errorf("dnsperf against %s: %v: %s", s.name, err, out)
			}
			r := DNSRun{Server: s.name}
			if m := dnsperfQPS.FindSubmatch(out); m != nil {
				r.QPS, _ = strconv.ParseFloat(string(m[1]), 64)
			}
			if m := dnsperfLost.FindSubmatch(out); m != nil {
				r.LostPct, _ = strconv.ParseFloat(string(m[1]), 64)
			}
			if m := dnsperfLatency.FindSubmatch(out); m != nil {
				v, _ := strconv.ParseFloat(string(m[1]), 64)
				r.AvgLatency = v * 1000
			}
			e.log.Info("dnsperf", "run", i+1, "server", s.name, "qps", r.QPS, "lost%", r.LostPct, "latency_ms", r.AvgLatency)
			rep.Runs = append(rep.Runs, r)
		}
	}
	for _, s := range servers {
		var qps, lost, lat []float64
		for _, r := range rep.Runs {
			if r.Server == s.name {
				qps, lost, lat = append(qps, r.QPS), append(lost, r.LostPct), append(lat, r.AvgLatency)
			}
		}
		rep.Servers = append(rep.Servers, DNSFigure{Server: s.name, QPS: median(qps), Min: slices.Min(qps), Max: slices.Max(qps), LostPct: median(lost), Latency: median(lat)})
	}
	return rep, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// dnsQueries makes dnsperf's input from zone files: a query for every A,
// CNAME and PTR owner, and 5% names that do not exist, shuffled.
func dnsQueries(files []string) ([]string, int, error) {
	var qs []string
	records := 0
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, 0, err
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 5 || strings.HasPrefix(fs[0], ";") || fs[2] != "IN" {
				continue
			}
			records++
			switch fs[3] {
			case "A", "CNAME":
				qs = append(qs, fs[0]+" A")
			case "PTR":
				qs = append(qs, fs[0]+" PTR")
			}
		}
		fh.Close()
	}
	if len(qs) == 0 {
		return nil, 0, fmt.Errorf("no records in %v", files)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range len(qs) / 20 {
		name := strings.Fields(qs[r.IntN(len(qs))])[0]
		qs = append(qs, fmt.Sprintf("nosuch-%d.%s A", i, name[strings.Index(name, ".")+1:]))
	}
	r.Shuffle(len(qs), func(i, j int) { qs[i], qs[j] = qs[j], qs[i] })
	return qs, records, nil
}

func (d *DNSReport) markdown(md *strings.Builder) {
	fmt.Fprintf(md, "## DNS: authoritative queries per second\n\n")
	fmt.Fprintf(md, "The zones of a %d-machine design (%d zones, %d records: A in every network, CNAME for variant names, PTR), served by drover (`serve --dns`) and by BIND 9 from the zone files `drover dns export` writes, so both hold the same records. "+
		"Each server runs alone on CPU 1 (`taskset -c 1`; drover gets one CPU, named `-n 1` one worker), dnsperf on CPU 0 (`dnsperf -c 4 -q 200 -l %d`) sends %d distinct queries (A for hosts and variant names, PTR, 5%% names that do not exist) in random order, over UDP on loopback. "+
		"Median of %d runs, min and max.\n\n", d.Machines, d.Zones, d.Records, d.Seconds, d.Queries, len(d.Runs)/max(1, len(d.Servers)))
	fmt.Fprintf(md, "| server | queries/s (median) | min | max | lost | average latency |\n|---|---|---|---|---|---|\n")
	for _, s := range d.Servers {
		fmt.Fprintf(md, "| %s | %.0f | %.0f | %.0f | %.2f %% | %.2f ms |\n", s.Server, s.QPS, s.Min, s.Max, s.LostPct, s.Latency)
	}
	if len(d.Servers) == 2 && d.Servers[1].QPS > 0 {
		fmt.Fprintf(md, "\ndrover answers %.2fx BIND's rate.\n", d.Servers[0].QPS/d.Servers[1].QPS)
	}
	md.WriteString("\n")
}
