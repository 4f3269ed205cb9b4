package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

func writeReport(e *env, rep *Report, docPath string) error {
	if err := os.MkdirAll(e.out, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(e.out, "latest.json"), b, 0o644); err != nil {
		return err
	}
	plots := plot(e, rep)
	var md strings.Builder
	fmt.Fprintf(&md, "# drover benchmarks\n\nMeasured by `make bench` (`go run ./bench/cmd/drover-bench`) on %s, %s.\n", rep.Date.Format("2006-01-02 15:04 UTC"), rep.Machine)
	fmt.Fprintf(&md, "Every peer runs on the same machine in the same run, in network namespaces the harness creates. Raw figures: [bench/results/latest.json](bench/results/latest.json).\n\n")
	fmt.Fprintf(&md, "Versions: ")
	keys := make([]string, 0, len(rep.Versions))
	for k := range rep.Versions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i > 0 {
			md.WriteString(", ")
		}
		fmt.Fprintf(&md, "%s %s", k, rep.Versions[k])
	}
	md.WriteString(".\n\n")
	// Parts measured in the same minute on the same drover count as one run.
	type run struct{ at, drover string }
	byRun := map[run][]string{}
	for name, pr := range rep.Parts {
		r := run{pr.At.UTC().Format("2006-01-02 15:04 UTC"), pr.Drover}
		byRun[r] = append(byRun[r], name)
	}
	if len(byRun) > 1 {
		runs := make([]run, 0, len(byRun))
		for r := range byRun {
			runs = append(runs, r)
		}
		sort.Slice(runs, func(i, j int) bool { return runs[i].at > runs[j].at })
		md.WriteString("Not every part comes from the same run:")
		for i, r := range runs {
			sort.Strings(byRun[r])
			sep := ";"
			if i == len(runs)-1 {
				sep = "."
			}
			fmt.Fprintf(&md, " %s measured %s on drover %s%s", strings.Join(byRun[r], ", "), r.at, r.drover, sep)
		}
		md.WriteString(" The versions above are the latest run's.\n\n")
	}
	md.WriteString("Reproduce: `make bench` (all parts" + rep.duration() + "), or one part: `make bench PARTS=storm`.\n\n")
	if rep.DHCP != nil {
		rep.DHCP.markdown(&md)
	}
	if rep.Storm != nil {
		s := rep.Storm
		fmt.Fprintf(&md, "## Boot storm\n\n%d simulated machines power on within %.0f s of each other. Each relays its own DHCP through its switch (its own MAC, circuit-id and remote-id; RFC 2131 retransmit backoff, each retransmission saying in `secs` how long the machine has been waiting), fetches its iPXE script, its rendered install template with the token from the script, and phones home `installed`, from its leased address, over one kept-alive HTTP connection (a small client of the bench's own: with net/http's connection pool the simulator used 53 s of CPU per storm, with this one 35-43 s, on CPUs it shares with drover). The simulated machines run on the same CPUs as drover.\n\n", s.Machines, s.SpreadSec)
		if len(s.ServeArgs) > 0 {
			fmt.Fprintf(&md, "drover serve runs with `%s` added to its usual flags (a soft memory limit: docs/boot.md, Memory).\n\n", strings.Join(s.ServeArgs, " "))
		}
		if len(s.Runs) > 1 {
			fmt.Fprintf(&md, "%d runs, each against a fresh server; the figures below are the median run's (by time until all deployed):\n\n", len(s.Runs))
			md.WriteString("| run | deployed | failed | all deployed after | DHCP retransmits | drover peak RSS | drover CPU | simulated machines' CPU |\n|---|---|---|---|---|---|---|---|\n")
			for i, r := range s.Runs {
				fmt.Fprintf(&md, "| %d | %d | %d | %.1f s | %d | %.0f MB | %.1f s | %s |\n", i+1, r.Deployed, r.Failed, r.AllDoneSec, r.Retransmits, r.PeakRSSMB, r.CPUSeconds, secondsOrDash(r.SimCPUSeconds))
			}
			lo, hi := spread(s.Runs, func(r StormRun) float64 { return r.AllDoneSec })
			rlo, rhi := spread(s.Runs, func(r StormRun) float64 { return r.PeakRSSMB })
			fmt.Fprintf(&md, "\nAll deployed after: %.1f s median, %.1f-%.1f s. Peak RSS: %.0f MB in the median run, %.0f-%.0f MB over the runs.\n\n", s.AllDoneSec, lo, hi, s.PeakRSSMB, rlo, rhi)
		}
		fmt.Fprintf(&md, "| figure (median run) | value | target |\n|---|---|---|\n")
		fmt.Fprintf(&md, "| machines deployed | %d of %d (%d failed) | all |\n", s.Deployed, s.Machines, s.Failed)
		fmt.Fprintf(&md, "| time from the first power-on until all deployed | %.1f s | 60 s |\n", s.AllDoneSec)
		fmt.Fprintf(&md, "| DHCP retransmits | %d | |\n", s.Retransmits)
		fmt.Fprintf(&md, "| drover peak RSS | %.0f MB | 512 MB |\n", s.PeakRSSMB)
		fmt.Fprintf(&md, "| drover CPU | %.1f s | |\n", s.CPUSeconds)
		fmt.Fprintf(&md, "| simulated machines' CPU (same CPUs) | %s | |\n\n", secondsOrDash(s.SimulatorCPUSec))
		fmt.Fprintf(&md, "| step | p50 | p99 | max |\n|---|---|---|---|\n")
		for _, k := range []string{"dhcp_dora", "ipxe_script", "template", "phone_home"} {
			p := s.Steps[k]
			fmt.Fprintf(&md, "| %s | %.1f ms | %.1f ms | %.1f ms |\n", k, p.P50, p.P99, p.Max)
		}
		if len(s.Errors) > 0 {
			fmt.Fprintf(&md, "\nFailures by step: %v\n", s.Errors)
		}
		if f, ok := plots["storm"]; ok {
			fmt.Fprintf(&md, "\n![deployed machines over time](%s)\n", f)
		}
		md.WriteString("\n")
	}
	if rep.Lab != nil {
		rep.Lab.markdown(&md)
	}
	if rep.Discovery != nil {
		rep.Discovery.markdown(&md)
	}
	if rep.HA != nil {
		rep.HA.markdown(&md)
	}
	if rep.TFTP != nil {
		rep.TFTP.markdown(&md)
	}
	if rep.HTTP != nil {
		rep.HTTP.markdown(&md)
	}
	if rep.UI != nil {
		rep.UI.markdown(&md)
	}
	if rep.Control != nil {
		rep.Control.markdown(&md)
	}
	if rep.Power != nil {
		rep.Power.markdown(&md)
	}
	if rep.DNS != nil {
		rep.DNS.markdown(&md)
	}
	return os.WriteFile(docPath, []byte(md.String()), 0o644)
}

// plot draws PNGs with gnuplot and returns their paths by name.
func plot(e *env, rep *Report) map[string]string {
	out := map[string]string{}
	gp, err := exec.LookPath("gnuplot")
	if err != nil {
		e.log.Warn("gnuplot not installed: no plots (apt-get install gnuplot-nox)")
		return out
	}
	draw := func(name, script string, data map[string]string) {
		for f, content := range data {
			os.WriteFile(filepath.Join(e.work, f), []byte(content), 0o644)
		}
		png, _ := filepath.Abs(filepath.Join(e.out, name+".png"))
		cmd := exec.Command(gp)
		cmd.Dir = e.work
		cmd.Stdin = strings.NewReader(fmt.Sprintf("set terminal pngcairo size 900,500\nset output '%s'\n%s", png, script))
		if b, err := cmd.CombinedOutput(); err != nil {
			cmd.Stdin = strings.NewReader(fmt.Sprintf("set terminal png size 900,500\nset output '%s'\n%s", png, script))
			if b2, err := exec.Command(gp).CombinedOutput(); err != nil {
				e.log.Warn("gnuplot", "plot", name, "err", string(b)+string(b2))
				return
			}
		}
		out[name] = filepath.ToSlash(filepath.Join(e.out, name+".png"))
	}
	if s := rep.Storm; s != nil && len(s.Progress) > 0 {
		var data strings.Builder
		for _, p := range s.Progress {
			fmt.Fprintf(&data, "%.3f %.0f\n", p[0], p[1])
		}
		draw("storm", "set title 'Boot storm: machines deployed over time'\nset xlabel 'seconds since the first power-on'\nset ylabel 'deployed'\nset grid\nplot 'storm.dat' with lines lw 2 title 'drover'\n",
			map[string]string{"storm.dat": data.String()})
	}
	if d := rep.DHCP; d != nil {
		script, data := d.plot()
		draw("dhcp", script, data)
	}
	return out
}

// duration is how long all parts took on this machine, when every part's time is known.
func (r *Report) duration() string {
	var sec float64
	for _, name := range r.measured() {
		p := r.Parts[name]
		if p.Seconds == 0 {
			return ""
		}
		sec += p.Seconds
	}
	if sec == 0 {
		return ""
	}
	unit := "minutes"
	if sec <= 60 {
		unit = "minute"
	}
	return fmt.Sprintf("; about %.0f %s on this machine, plus installing the peers", math.Ceil(sec/60), unit)
}

// secondsOrDash is a CPU time, or "-" where an older run did not record it.
func secondsOrDash(s float64) string {
	if s == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f s", s)
}
