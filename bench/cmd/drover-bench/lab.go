package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/drover/drover/internal/zone"
)

// LabReport is the QEMU lab booted with every machine powered on at once:
// real firmware, iPXE, installs and switches, next to the simulated storm.
type LabReport struct {
	Design   string       `json:"design"`
	Command  string       `json:"command"`
	Runs     int          `json:"runs"`
	Machines []LabMachine `json:"machines"`
	// WallSec is each run's `lab up` from start (switches, namespaces, ZTP)
	// until the last machine was deployed.
	WallSec []float64 `json:"wall_seconds"`
}

// LabMachine is one lab machine's power-on to deployed over the runs.
type LabMachine struct {
	Name     string    `json:"name"`
	Firmware string    `json:"firmware"`
	Profile  string    `json:"profile"` // what it installs
	Seconds  []float64 `json:"seconds"` // power-on to deployed, per run
	Median   float64   `json:"median_seconds"`
	Min      float64   `json:"min_seconds"`
	Max      float64   `json:"max_seconds"`
}

const labDesign = "examples/lab"

// benchLab runs `drover lab up --until-deployed` with no limit on machines
// booting at once, three times, and collects the summary it prints.
func benchLab(ctx context.Context, e *env) (*LabReport, error) {
	d, err := zone.Load(labDesign)
	if err != nil {
		return nil, err
	}
	// The lab puts the install agent next to drover into the machines' image, built as `make build` builds it.
	build := exec.CommandContext(ctx, "go", "build", "-ldflags=-s -w", "-o", filepath.Join(filepath.Dir(e.drover), "drover-agent"), "./cmd/drover-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build drover-agent: %v: %s", err, out)
	}
	profiles := map[string]string{}
	for _, s := range d.Slots {
		profiles[s.Name] = s.Profile
	}
	runs := 3
	args := []string{"lab", "up", labDesign, "--until-deployed", "--parallel", "1000", "-q"}
	if e.quick {
		// The busybox installs alone: a try of the harness, not a figure.
		runs = 1
		for _, s := range d.Slots {
			if s.Profile == "lab-installer" && s.Switch != "" && !s.IsSwitch() {
				args = append(args, "--only", s.Name)
			}
		}
	}
	rep := &LabReport{Design: labDesign, Command: "drover " + strings.Join(args, " "), Runs: runs}
	byName := map[string]*LabMachine{}
	for run := 0; run < runs; run++ {
		state := filepath.Join(e.work, fmt.Sprintf("lab-%d", run))
		full := append([]string{"lab", "--state-dir", state, "--prefix", "dbl-"}, args[1:]...)
		rctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
		start := time.Now()
		cmd := exec.CommandContext(rctx, e.drover, full...)
		out, err := cmd.CombinedOutput()
		wall := time.Since(start).Seconds()
		cancel()
		exec.Command(e.drover, "lab", "--state-dir", state, "down").Run()
		if err != nil {
			return nil, fmt.Errorf("lab run %d: %v: %s", run+1, err, tail(string(out), 20))
		}
		got := parseLabSummary(string(out))
		if len(got) == 0 {
			return nil, fmt.Errorf("lab run %d printed no summary: %s", run+1, tail(string(out), 20))
		}
		rep.WallSec = append(rep.WallSec, wall)
		for _, m := range got {
			lm := byName[m.Name]
			if lm == nil {
				lm = &LabMachine{Name: m.Name, Firmware: m.Firmware, Profile: profiles[m.Name]}
				byName[m.Name] = lm
			}
			lm.Seconds = append(lm.Seconds, m.Seconds[0])
		}
		e.log.Info("lab", "run", run+1, "machines", len(got), "wall_s", wall)
	}
	for _, lm := range byName {
		s := append([]float64(nil), lm.Seconds...)
		sort.Float64s(s)
		lm.Median, lm.Min, lm.Max = s[len(s)/2], s[0], s[len(s)-1]
		rep.Machines = append(rep.Machines, *lm)
	}
	sort.Slice(rep.Machines, func(i, j int) bool { return rep.Machines[i].Name < rep.Machines[j].Name })
	return rep, nil
}

// parseLabSummary reads the table `lab up --until-deployed` ends with:
// MACHINE FIRMWARE POWER-ON TO DEPLOYED, then "name firmware 12.3s" lines.
func parseLabSummary(out string) []LabMachine {
	var ms []LabMachine
	in := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MACHINE" && f[1] == "FIRMWARE" {
			in, ms = true, nil
			continue
		}
		if !in || len(f) != 3 || !strings.HasSuffix(f[2], "s") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSuffix(f[2], "s"), 64)
		if err != nil {
			continue
		}
		ms = append(ms, LabMachine{Name: f[0], Firmware: f[1], Seconds: []float64{v}})
	}
	return ms
}

func (l *LabReport) markdown(md *strings.Builder) {
	fmt.Fprintf(md, "## The lab: real machines, all powered on at once\n\n")
	fmt.Fprintf(md, "The QEMU lab of `%s` (docs/lab.md): its ToRs provisioned by ZTP, then every machine powered on at once (`%s`); runs: %d. Power-on to `deployed` per machine, as the lab prints it: real firmware (SeaBIOS or OVMF), iPXE, the install (`lab-installer`: a busybox installer; `debian-12`: Debian written to disk and booted from it) and the phone-home. QEMU emulates every CPU instruction (TCG) on this machine's 2 cores, so the Debian installs share them.\n\n", l.Design, l.Command, l.Runs)
	fmt.Fprintf(md, "| machine | firmware | installs | power-on to deployed (median) | min-max |\n|---|---|---|---|---|\n")
	for _, m := range l.Machines {
		fmt.Fprintf(md, "| %s | %s | %s | %.1f s | %.1f-%.1f s |\n", m.Name, m.Firmware, m.Profile, m.Median, m.Min, m.Max)
	}
	if len(l.WallSec) > 0 {
		s := append([]float64(nil), l.WallSec...)
		sort.Float64s(s)
		fmt.Fprintf(md, "\nThe whole `lab up`, from start (namespaces, switches, ZTP) until the last machine was deployed: %.0f s (median; %.0f-%.0f s).\n", s[len(s)/2], s[0], s[len(s)-1])
	}
	md.WriteString("\n")
}
