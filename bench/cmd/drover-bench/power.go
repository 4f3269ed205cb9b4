package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/drover/drover/internal/ipmisim"
	"github.com/drover/drover/internal/power"
	"github.com/drover/drover/internal/zone"
)

// PowerReport is the power part: power-cycling many real BMCs (ipmi_sim).
type PowerReport struct {
	BMCs        int     `json:"bmcs"`
	Bound       int     `json:"bound"`
	ChassisMs   int     `json:"chassis_ms"` // each chassis call's simulated latency
	DroverSec   float64 `json:"drover_sec"`
	DroverMax   int     `json:"drover_max_in_flight"`
	DroverFail  int     `json:"drover_failed"`
	IpmitoolSec float64 `json:"ipmitool_sec"`
	IpmitoolMax int     `json:"ipmitool_max_in_flight"`
	IpmitoolErr int     `json:"ipmitool_failed"`
}

// benchPower starts n ipmi_sim BMCs on loopback addresses and power-cycles
// all of them, first through drover's power controller with the default
// bound per BMC network, then with ipmitool, the same number at a time. The
// largest number in flight is counted at the BMCs: their chassis control logs
// every call.
func benchPower(ctx context.Context, e *env) (*PowerReport, error) {
	n := 200
	if e.quick {
		n = 40
	}
	const user, pass = "admin", "benchpw"
	rep := &PowerReport{BMCs: n, Bound: zone.DefaultBMCSessions, ChassisMs: 100}
	run := func(name string, cycle func(addrs []netip.Addr) int) (sec float64, most, failed int, err error) {
		dir := filepath.Join(e.work, "power-"+name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return 0, 0, 0, err
		}
		hook, err := ipmisim.Hook(dir, time.Duration(rep.ChassisMs)*time.Millisecond)
		if err != nil {
			return 0, 0, 0, err
		}
		var sims []*ipmisim.Sim
		defer func() {
			for _, s := range sims {
				s.Stop()
			}
		}()
		var addrs []netip.Addr
		for i := 0; i < n; i++ {
			a := netip.AddrFrom4([4]byte{127, 78, byte(i / 250), byte(1 + i%250)})
			bmc := fmt.Sprintf("bmc%03d", i)
			s, err := ipmisim.Start(ipmisim.Config{Name: bmc, Addr: a, Username: user, Password: pass, Dir: filepath.Join(dir, bmc), Chassis: hook + " " + bmc})
			if err != nil {
				return 0, 0, 0, err
			}
			sims = append(sims, s)
			addrs = append(addrs, a)
			os.WriteFile(filepath.Join(dir, bmc+".on"), nil, 0o644) // every machine runs: a cycle is off, then on
		}
		os.Remove(filepath.Join(dir, "calls.log"))
		t0 := time.Now()
		failed = cycle(addrs)
		sec = time.Since(t0).Seconds()
		// Every session sends one power-off; ipmi_sim's own calls (polls, the
		// power-on a second later) happen outside sessions and are not counted.
		_, most, err = ipmisim.Calls(dir, "set power 0")
		return sec, most, failed, err
	}

	secrets := filepath.Join(e.work, "power-secrets.yaml")
	if err := os.WriteFile(secrets, []byte(fmt.Sprintf("zones:\n  bench: {username: %s, password: %s}\n", user, pass)), 0o600); err != nil {
		return nil, err
	}
	s, err := power.LoadSecrets(secrets)
	if err != nil {
		return nil, err
	}
	ctl := power.NewController(power.Config{Secrets: s, Log: slog.New(slog.DiscardHandler)})
	net := zone.BMCNetwork{Key: "bench/p1", Sessions: rep.Bound}
	rep.DroverSec, rep.DroverMax, rep.DroverFail, err = run("drover", func(addrs []netip.Addr) int {
		var wg sync.WaitGroup
		var mu sync.Mutex
		failed := 0
		for _, a := range addrs {
			wg.Add(1)
			go func(a netip.Addr) {
				defer wg.Done()
				slot := &zone.Slot{Name: "bench-" + a.String(), Zone: "bench", Role: "compute", BMCAddress: a, Power: zone.PowerIPMI}
				if _, err := ctl.Do(ctx, power.Target{Slot: slot, Network: net}, power.Cycle); err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
					e.log.Warn("drover power cycle", "bmc", a, "err", err)
				}
			}(a)
		}
		wg.Wait()
		return failed
	})
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("ipmitool"); err != nil {
		return nil, fmt.Errorf("ipmitool (apt-get install ipmitool): %w", err)
	}
	rep.IpmitoolSec, rep.IpmitoolMax, rep.IpmitoolErr, err = run("ipmitool", func(addrs []netip.Addr) int {
		var list strings.Builder
		for _, a := range addrs {
			fmt.Fprintln(&list, a)
		}
		cmd := exec.CommandContext(ctx, "xargs", "-P", fmt.Sprint(rep.Bound), "-I{}", "ipmitool", "-I", "lanplus", "-C", "3", "-H", "{}", "-U", user, "-P", pass, "power", "cycle")
		cmd.Stdin = strings.NewReader(list.String())
		out, err := cmd.CombinedOutput()
		if err != nil {
			e.log.Warn("ipmitool", "err", err, "out", string(out))
			return strings.Count(string(out), "Error")
		}
		return 0
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

func (p *PowerReport) markdown(md *strings.Builder) {
	fmt.Fprintf(md, "## Power: %d BMCs power-cycled\n\n", p.BMCs)
	fmt.Fprintf(md, "Each BMC is a real IPMI 2.0 BMC, OpenIPMI's `ipmi_sim`, on its own loopback address; each chassis call (what the BMC does to the machine) takes %d ms. "+
		"drover power-cycles all of them at once through its power controller, at most %d sessions on their BMC network (the default); "+
		"the peer is ipmitool, %d at a time (`xargs -P %d ipmitool -I lanplus -C 3 ... power cycle`, one process per BMC). In flight is counted at the BMCs: the power-offs in progress at once, from their chassis calls.\n\n", p.ChassisMs, p.Bound, p.Bound, p.Bound)
	fmt.Fprintf(md, "| tool | total time | largest number in flight (at the BMCs) | failed |\n|---|---|---|---|\n")
	fmt.Fprintf(md, "| drover | %.1f s | %d (bound %d) | %d |\n", p.DroverSec, p.DroverMax, p.Bound, p.DroverFail)
	fmt.Fprintf(md, "| ipmitool, xargs -P %d | %.1f s | %d | %d |\n\n", p.Bound, p.IpmitoolSec, p.IpmitoolMax, p.IpmitoolErr)
}
