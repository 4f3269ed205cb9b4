package machine

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func maint() *MaintenanceInfo {
	return &MaintenanceInfo{Reason: "disk swap", Owner: "alice", Expires: t0.Add(4 * time.Hour)}
}

// legal is the lifecycle written out independently of the implementation's table:
// every (event, from) pair that must succeed, and where it must lead.
var legal = map[Event]map[State]State{
	Commission:   {Discovered: Commissioning, Ready: Commissioning, CommissioningFailed: Commissioning},
	Commissioned: {Commissioning: Ready},
	Deploy:       {Discovered: Deploying, Ready: Deploying, DeployFailed: Deploying},
	Reinstall:    {Deployed: Deploying, DeployFailed: Deploying, Ready: Deploying},
	Installed:    {Deploying: Deployed},
	Release:      {Deployed: Ready, DeployFailed: Ready},
	Fail:         {Commissioning: CommissioningFailed, Deploying: DeployFailed},
	Timeout:      {Commissioning: CommissioningFailed, Deploying: DeployFailed},
	EnterMaintenance: {Discovered: Maintenance, Ready: Maintenance, Deployed: Maintenance,
		CommissioningFailed: Maintenance, DeployFailed: Maintenance},
	LeaveMaintenance: {Maintenance: Ready}, // from a machine that entered from ready; see TestMaintenanceReturns
	Retire: {Discovered: Retired, Ready: Retired, Deployed: Retired, Maintenance: Retired,
		CommissioningFailed: Retired, DeployFailed: Retired},
	Replaced: {Discovered: Retired, Ready: Retired, Deployed: Retired, Maintenance: Retired, Retired: Retired,
		Commissioning: Retired, CommissioningFailed: Retired, Deploying: Retired, DeployFailed: Retired},
}

func TestEveryTransition(t *testing.T) {
	if len(Events()) != len(legal) {
		t.Fatalf("the table has %d events, the test knows %d", len(Events()), len(legal))
	}
	for _, ev := range Events() {
		for _, from := range States() {
			t.Run(fmt.Sprintf("%s from %s", ev, from), func(t *testing.T) {
				m := &Machine{ID: 7, MAC: "52:54:00:00:00:07", Name: "bgo-compute-07", State: from, StateSince: t0.Add(-time.Hour)}
				if from == Maintenance {
					m.Maintenance = &MaintenanceInfo{Reason: "r", Owner: "o", Expires: t0.Add(time.Hour), Return: Ready}
				}
				before := *m
				ch := Change{Event: ev, Actor: "alice", At: t0, Reason: "because", Timeout: 30 * time.Minute}
				if ev == EnterMaintenance {
					ch.Maintenance = maint()
				}
				e, err := m.Apply(ch)
				want, ok := legal[ev][from]
				if !ok {
					if !errors.Is(err, ErrIllegal) {
						t.Fatalf("got %v (state %s), want an illegal transition", err, m.State)
					}
					if m.State != before.State || !m.StateSince.Equal(before.StateSince) {
						t.Fatalf("illegal transition changed the machine: %s", m.State)
					}
					if !strings.Contains(err.Error(), string(from)) {
						t.Errorf("error %q does not say the current state", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("legal transition refused: %v", err)
				}
				if m.State != want {
					t.Fatalf("state %s, want %s", m.State, want)
				}
				if e.From != from || e.To != want || e.Actor != "alice" || e.Reason != "because" || !e.At.Equal(t0) || e.MachineID != 7 || e.Kind != "transition" {
					t.Errorf("timeline entry %+v", e)
				}
				if !m.StateSince.Equal(t0) {
					t.Errorf("state since %v", m.StateSince)
				}
				if want.IsWork() != !m.Deadline.IsZero() {
					t.Errorf("deadline %v in state %s", m.Deadline, want)
				}
			})
		}
	}
}

func TestMaintenanceNeedsReasonOwnerExpiry(t *testing.T) {
	tests := []struct {
		name string
		mi   *MaintenanceInfo
	}{
		{"nothing", nil},
		{"no reason", &MaintenanceInfo{Owner: "alice", Expires: t0.Add(time.Hour)}},
		{"no owner", &MaintenanceInfo{Reason: "x", Expires: t0.Add(time.Hour)}},
		{"no expiry", &MaintenanceInfo{Reason: "x", Owner: "alice"}},
		{"expiry in the past", &MaintenanceInfo{Reason: "x", Owner: "alice", Expires: t0.Add(-time.Hour)}},
	}
	for _, tt := range tests {
		m := &Machine{State: Deployed}
		if _, err := m.Apply(Change{Event: EnterMaintenance, At: t0, Maintenance: tt.mi}); !errors.Is(err, ErrIllegal) {
			t.Errorf("%s: got %v, want refusal", tt.name, err)
		}
		if m.State != Deployed || m.Maintenance != nil {
			t.Errorf("%s: machine changed: %+v", tt.name, m)
		}
	}
}

func TestMaintenanceReturns(t *testing.T) {
	tests := []struct{ from, back State }{
		{Deployed, Deployed}, {Ready, Ready}, {Discovered, Discovered},
		{DeployFailed, Ready}, {CommissioningFailed, Ready},
	}
	for _, tt := range tests {
		m := &Machine{State: tt.from}
		if _, err := m.Apply(Change{Event: EnterMaintenance, At: t0, Maintenance: maint()}); err != nil {
			t.Fatal(err)
		}
		if m.Maintenance.Owner != "alice" || m.Maintenance.Return != tt.back {
			t.Errorf("from %s: maintenance %+v", tt.from, m.Maintenance)
		}
		if _, err := m.Apply(Change{Event: LeaveMaintenance, At: t0.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if m.State != tt.back || m.Maintenance != nil {
			t.Errorf("from %s: back in %s (maintenance %v), want %s", tt.from, m.State, m.Maintenance, tt.back)
		}
	}
}

func TestWatchdog(t *testing.T) {
	m := &Machine{State: Ready}
	if _, err := m.Apply(Change{Event: Deploy, At: t0, Timeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, due := m.Overdue(t0.Add(59 * time.Minute)); due {
		t.Fatal("watchdog fired early")
	}
	ch, due := m.Overdue(t0.Add(61 * time.Minute))
	if !due || ch.Event != Timeout || ch.Actor != "watchdog" {
		t.Fatalf("watchdog: %+v %v", ch, due)
	}
	e, err := m.Apply(ch)
	if err != nil || m.State != DeployFailed || e.To != DeployFailed || !strings.Contains(e.Reason, "no progress in deploying") {
		t.Fatalf("after watchdog: %s %+v %v", m.State, e, err)
	}
	if _, due := m.Overdue(t0.Add(10 * time.Hour)); due {
		t.Error("watchdog fires on a failed machine")
	}

	m = &Machine{State: Deployed}
	if _, err := m.Apply(Change{Event: EnterMaintenance, At: t0, Maintenance: maint()}); err != nil {
		t.Fatal(err)
	}
	ch, due = m.Overdue(t0.Add(5 * time.Hour))
	if !due || ch.Event != LeaveMaintenance {
		t.Fatalf("maintenance expiry: %+v %v", ch, due)
	}
	if _, err := m.Apply(ch); err != nil || m.State != Deployed {
		t.Fatalf("after expiry: %s %v", m.State, err)
	}
}

func TestReplace(t *testing.T) {
	for _, policy := range []string{"reinstall", "hold"} {
		t.Run(policy, func(t *testing.T) {
			old := &Machine{ID: 1, MAC: "52:54:00:00:00:01", SlotKey: "p1-tor1/swp3", Name: "bgo-compute-03", State: Deployed}
			nw := &Machine{ID: 2, MAC: "52:54:00:00:00:99", State: Discovered}
			r, err := Replace(old, nw, policy == "hold", "dhcp", t0, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if old.State != Retired || old.SlotKey != "" {
				t.Errorf("old machine %s in %q", old.State, old.SlotKey)
			}
			if nw.SlotKey != "p1-tor1/swp3" || nw.Name != "bgo-compute-03" {
				t.Errorf("new machine took %q as %q", nw.SlotKey, nw.Name)
			}
			wantState := Deploying
			if policy == "hold" {
				wantState = Discovered
			}
			if nw.State != wantState {
				t.Errorf("new machine %s, want %s", nw.State, wantState)
			}
			for _, es := range [][]Entry{r.OldEntries, r.NewEntries} {
				if len(es) < 2 || es[0].Kind != "hardware-replaced" || !strings.Contains(es[0].Reason, "52:54:00:00:00:01 replaced by 52:54:00:00:00:99") {
					t.Errorf("timeline %+v", es)
				}
			}
		})
	}
}

func TestParseMaintenance(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		reason, owner, expires string
		want                   time.Time
		err                    string
	}{
		{"disk", "ops", "4h", now.Add(4 * time.Hour), ""},
		{"disk", "ops", "2026-11-22T08:00:00Z", time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC), ""},
		{" ", "ops", "4h", time.Time{}, "needs a reason, an owner and an expiry"},
		{"disk", "ops", "-1h", time.Time{}, `expiry "-1h"`},
		{"disk", "ops", "soon", time.Time{}, `expiry "soon"`},
	} {
		mi, err := ParseMaintenance(tc.reason, tc.owner, tc.expires, now)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.expires, err, tc.err)
			}
			continue
		}
		if err != nil || !mi.Expires.Equal(tc.want) || mi.Owner != "ops" {
			t.Errorf("%q: %+v %v", tc.expires, mi, err)
		}
	}
}
