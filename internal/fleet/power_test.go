package fleet

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/power"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

// atLoM is a DHCP request relayed by the lab design's lom switch.
func atLoM(port, mac string) Request {
	m, _ := net.ParseMAC(mac)
	return Request{MAC: mac, Query: zone.Query{Relay: netip.MustParseAddr("10.77.8.1"), HasOption82: true, CircuitID: port, RemoteID: "p1-lom1", MAC: m}}
}

// TestBMCLeaseByLoMPort: a BMC gets its host's BMC address by the lom port it
// is on and is not a machine; a BMC on an undefined lom port is recorded as
// discovered and gets nothing.
func TestBMCLeaseByLoMPort(t *testing.T) {
	e := newEnv(t)
	f, stop := e.start()
	defer stop()
	host := e.dora(f, at("swp1", "52:54:00:00:20:01"))
	bmc := e.dora(f, atLoM("swp1", "52:54:00:00:30:01"))
	if bmc.Addr.String() != "10.77.8.11" || bmc.Prefix.String() != "10.77.8.0/24" || bmc.Gateway.String() != "10.77.8.1" ||
		bmc.Hostname != "lab-compute-01-bmc" || !bmc.Identity.BMC || bmc.Identity.Known() {
		t.Fatalf("BMC assignment %+v", bmc)
	}
	if host.Addr == bmc.Addr {
		t.Fatal("the BMC took its host's address")
	}
	if _, ok := f.Machine("52:54:00:00:30:01"); ok {
		t.Fatal("a BMC was recorded as a machine")
	}
	hm, _ := f.Machine("52:54:00:00:20:01")
	stop()
	tl, _ := e.st.Timeline(context.Background(), hm.ID, 0, 0)
	if !hasKind(tl, machine.KindBMC, "BMC 52:54:00:00:30:01 on p1-lom1/swp1 gets 10.77.8.11") {
		t.Errorf("host timeline lacks its BMC: %+v", tl)
	}

	f, stop = e.start()
	defer stop()
	_, err := f.Offer(context.Background(), atLoM("swp4", "52:54:00:00:30:08"))
	var ref *Refusal
	if !errors.As(err, &ref) || !ref.Silent || !strings.Contains(ref.Reason, "serves no host") {
		t.Fatalf("BMC on an undefined lom port: %v", err)
	}
	m, ok := f.Machine("52:54:00:00:30:08")
	if !ok || m.State != machine.Discovered || m.Location != "p1-lom1/swp4" || m.SlotKey != "" {
		t.Fatalf("BMC on an undefined port recorded as %+v", m)
	}
}

func hasKind(tl []machine.Entry, k machine.Kind, text string) bool {
	for _, e := range tl {
		if e.Kind == k && strings.Contains(e.Reason, text) {
			return true
		}
	}
	return false
}

type fakePower struct {
	err   error
	calls []power.Target
}

func (p *fakePower) Do(_ context.Context, t power.Target, actions ...power.Action) (power.Result, error) {
	p.calls = append(p.calls, t)
	return power.Result{State: power.StateOn, Attempts: 1, BMC: netip.AddrPortFrom(t.Slot.BMCAddress, 623)}, p.err
}

// TestPowerActionIsRecorded: a power action, ok or failed, lands on the
// machine's timeline and in the audit log; one that cannot be attempted does not.
func TestPowerActionIsRecorded(t *testing.T) {
	e := newEnv(t)
	p := &fakePower{}
	f, err := New(context.Background(), Config{Store: e.st, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return e.now }, Power: p})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	e.dora(f, at("swp1", "52:54:00:00:20:01"))
	e.dora(f, at("swp7", "52:54:00:00:20:07")) // no slot

	for _, tc := range []struct {
		name    string
		ref     string
		bmcErr  error
		wantErr error
		entry   string
		outcome string
	}{
		{"ok", "lab-compute-01", nil, nil, "power cycle via ipmi BMC 10.77.8.11:623: ok, power on", "ok"},
		{"BMC refuses", "lab-compute-01", power.ErrAuth, power.ErrAuth, "power cycle via ipmi BMC 10.77.8.11:623: failed: the BMC refused the credentials", "failed"},
		{"no such machine", "nobody", nil, ErrNotFound, "", ""},
		{"no slot", "52:54:00:00:20:07", nil, ErrNoPower, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.err = tc.bmcErr
			res, err := f.PowerAction(context.Background(), PowerOp{Ref: tc.ref, Actions: []power.Action{power.Cycle}, Actor: "alice",
				Audit: store.AuditEntry{Actor: "alice", RequestID: tc.name}})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			audits, _ := e.st.Audit(context.Background(), store.AuditFilter{})
			var found *store.AuditEntry
			for i := range audits {
				if audits[i].RequestID == tc.name {
					found = &audits[i]
				}
			}
			if tc.entry == "" {
				if found != nil || res.Entry != nil {
					t.Fatalf("a refused action was recorded: %+v %+v", found, res.Entry)
				}
				return
			}
			if res.Entry == nil || res.Entry.Kind != machine.KindPower || !strings.Contains(res.Entry.Reason, tc.entry) || res.Entry.Actor != "alice" {
				t.Fatalf("timeline entry %+v, want %q", res.Entry, tc.entry)
			}
			if found == nil || found.Outcome != tc.outcome || found.Action != "power cycle" || found.Target != "lab-compute-01" {
				t.Fatalf("audit %+v, want outcome %s", found, tc.outcome)
			}
		})
	}
	if len(p.calls) != 2 || p.calls[0].Network.Key != "lab/p1" || p.calls[0].Network.Sessions != 8 {
		t.Fatalf("BMC calls %+v", p.calls)
	}
}
