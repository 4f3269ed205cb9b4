package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/internal/ipmisim"
	"github.com/drover/drover/internal/power"
	"github.com/drover/drover/internal/zone"
)

// secretsFile writes a power secrets file for zone "t", mode 0600.
func secretsFile(t *testing.T, user, pass string) *power.Secrets {
	t.Helper()
	p := filepath.Join(t.TempDir(), "power-secrets.yaml")
	if err := os.WriteFile(p, []byte(fmt.Sprintf("zones:\n  t:\n    username: %s\n    password: %q\n", user, pass)), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := power.LoadSecrets(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startSims starts n ipmi_sim BMCs on 127.<net>.0.1.. behind one Hook directory.
func startSims(t *testing.T, netByte, n int, user, pass string, delay time.Duration) (dir string, addrs []netip.Addr) {
	t.Helper()
	dir = t.TempDir()
	hook, err := ipmisim.Hook(dir, delay)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 1; i <= n; i++ {
		addr := netip.AddrFrom4([4]byte{127, byte(netByte), 0, byte(i)})
		addrs = append(addrs, addr)
		wg.Add(1)
		go func(i int, addr netip.Addr) {
			defer wg.Done()
			name := fmt.Sprintf("bmc%02d", i)
			sim, err := ipmisim.Start(ipmisim.Config{Name: name, Addr: addr, Username: user, Password: pass,
				Dir: filepath.Join(dir, name), Chassis: hook + " " + name})
			if err != nil {
				errs <- err
				return
			}
			t.Cleanup(sim.Stop) // safe from several goroutines
		}(i, addr)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return dir, addrs
}

func target(addr netip.Addr, key string, sessions int) power.Target {
	return power.Target{
		Slot:    &zone.Slot{Name: "t-compute-" + addr.String(), Zone: "t", Role: "compute", BMCAddress: addr, Power: zone.PowerIPMI},
		Network: zone.BMCNetwork{Key: key, Sessions: sessions},
	}
}

// TestIPMIDriver drives a real BMC, OpenIPMI's ipmi_sim, through the power
// controller: every action, bad credentials and BMCs that do not answer.
func TestIPMIDriver(t *testing.T) {
	require(t, map[string]string{ipmisim.Binary: "openipmi"})
	dir, addrs := startSims(t, 51, 1, "admin", "s3cret-pass", 0)
	bmc := addrs[0]
	ctl := power.NewController(power.Config{Secrets: secretsFile(t, "admin", "s3cret-pass"), Attempts: 3, Backoff: 50 * time.Millisecond, Timeout: 3 * time.Second})
	ctx := context.Background()
	tg := target(bmc, "t/p1", 8)

	steps := []struct {
		action power.Action
		state  power.State
		check  func() bool
	}{
		{power.Status, power.StateOff, func() bool { return !ipmisim.Power(dir, "bmc01") }},
		{power.On, power.StateOn, func() bool { return ipmisim.Power(dir, "bmc01") }},
		{power.Status, power.StateOn, nil},
		{power.PXEOnce, power.StateUnknown, func() bool { return ipmisim.BootDevice(dir, "bmc01") == "pxe" }},
		{power.Off, power.StateOff, func() bool { return !ipmisim.Power(dir, "bmc01") }},
		// Cycle of a machine that is off switches it on.
		{power.Cycle, power.StateOn, func() bool { return ipmisim.Power(dir, "bmc01") }},
	}
	for _, st := range steps {
		res, err := ctl.Do(ctx, tg, st.action)
		if err != nil {
			t.Fatalf("%s: %v", st.action, err)
		}
		if res.State != st.state || res.Attempts != 1 {
			t.Fatalf("%s: state %s after %d attempts, want %s after 1", st.action, res.State, res.Attempts, st.state)
		}
		if st.check != nil && !st.check() {
			t.Fatalf("%s: the BMC's chassis did not do it", st.action)
		}
	}
	// Cycle of a machine that is on: ipmi_sim switches it off, then on a second later.
	calls0, _, _ := ipmisim.Calls(dir)
	if _, err := ctl.Do(ctx, tg, power.Cycle); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the BMC to power the machine back on", 10*time.Second, func() bool {
		calls, _, _ := ipmisim.Calls(dir)
		return calls >= calls0+3 && ipmisim.Power(dir, "bmc01") // status, off, on
	})

	t.Run("wrong password", func(t *testing.T) {
		bad := power.NewController(power.Config{Secrets: secretsFile(t, "admin", "wrong"), Attempts: 3, Backoff: 50 * time.Millisecond})
		before, _, _ := ipmisim.Calls(dir)
		res, err := bad.Do(ctx, tg, power.Off)
		if !errors.Is(err, power.ErrAuth) || res.Attempts != 1 {
			t.Fatalf("want ErrAuth after 1 attempt (no retry of bad credentials), got %v after %d", err, res.Attempts)
		}
		if after, _, _ := ipmisim.Calls(dir); after != before || !ipmisim.Power(dir, "bmc01") {
			t.Fatal("a refused login reached the chassis")
		}
		if msg := err.Error(); strings.Contains(msg, "wrong") {
			t.Fatalf("the error carries the password: %s", msg)
		}
	})
	t.Run("nothing listens", func(t *testing.T) {
		res, err := ctl.Do(ctx, target(netip.MustParseAddr("127.51.0.99"), "t/p1", 8), power.Status)
		if !errors.Is(err, power.ErrUnreachable) || res.Attempts != 3 {
			t.Fatalf("want ErrUnreachable after 3 attempts, got %v after %d", err, res.Attempts)
		}
	})
	t.Run("BMC never answers", func(t *testing.T) {
		// A hung BMC: the port is open but nothing ever comes back.
		silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 51, 0, 98), Port: 623})
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		res, err := ctl.Do(ctx, target(netip.MustParseAddr("127.51.0.98"), "t/p1", 8), power.Status)
		if !errors.Is(err, power.ErrUnreachable) || res.Attempts != 3 {
			t.Fatalf("want ErrUnreachable after 3 attempts, got %v after %d", err, res.Attempts)
		}
	})
}

// TestPowerSessionBound powers on 50 real BMCs at once with a bound of 8
// sessions on their network, and counts at the BMCs (their chassis control
// logs every call) how many were being driven at the same moment.
func TestPowerSessionBound(t *testing.T) {
	require(t, map[string]string{ipmisim.Binary: "openipmi"})
	const n = 50
	for _, tc := range []struct {
		bound   int
		atMost  int
		atLeast int
	}{
		{bound: 8, atMost: 8, atLeast: 2},
		// Without a tight bound the same run overlaps more than 8: the count can see it.
		{bound: n, atMost: n, atLeast: 9},
	} {
		t.Run(fmt.Sprintf("bound %d", tc.bound), func(t *testing.T) {
			dir, addrs := startSims(t, 52+tc.bound%50, n, "admin", "pw", 300*time.Millisecond)
			ctl := power.NewController(power.Config{Secrets: secretsFile(t, "admin", "pw"), Timeout: 30 * time.Second})
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for _, a := range addrs {
				wg.Add(1)
				go func(a netip.Addr) {
					defer wg.Done()
					if _, err := ctl.Do(context.Background(), target(a, "t/p1", tc.bound), power.On); err != nil {
						errs <- err
					}
				}(a)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			calls, most, err := ipmisim.Calls(dir, "set power 1")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("bound %d: %d chassis calls at the BMCs, at most %d at once", tc.bound, calls, most)
			if calls != n || most > tc.atMost || most < tc.atLeast {
				t.Fatalf("bound %d: %d calls (want %d), %d at once (want %d..%d)", tc.bound, calls, n, most, tc.atLeast, tc.atMost)
			}
		})
	}
}
