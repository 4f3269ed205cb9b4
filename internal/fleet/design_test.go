package fleet

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

const (
	macA    = "52:54:00:00:a0:01" // the deployed machine in swp1
	macB    = "52:54:00:00:b0:01" // its replacement
	oldName = "lab-compute-01"
	newName = "lab-compute-lvm-01" // swp1 gets the lvm variant: renamed, needs a reinstall
)

// variantDesign is the lab design with swp1 given the lvm variant.
func variantDesign(t *testing.T) *zone.Design {
	t.Helper()
	b, err := os.ReadFile("../../examples/lab/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	from := "- {ports: swp1-swp2, role: compute, ids: 1-2}"
	to := "- {ports: swp1, role: compute, variant: lvm, ids: 1}\n          - {ports: swp2, role: compute, ids: 2}"
	if !strings.Contains(string(b), from) {
		t.Fatalf("lab design lacks %q", from)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "lab.yaml"), []byte(strings.Replace(string(b), from, to, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("../../examples/lab/templates")
	if err := os.Symlink(abs, filepath.Join(dir, "templates")); err != nil {
		t.Fatal(err)
	}
	d, err := zone.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// deploy takes a new machine on port through DHCP, script and phone-home to deployed.
func (e *env) deploy(f *Fleet, port, mac string) Assignment {
	e.t.Helper()
	ctx := context.Background()
	a := e.dora(f, at(port, mac))
	tg, err := f.Script(ctx, a.Ticket, a.Addr)
	if err != nil || tg.Action != ActionInstall {
		e.t.Fatalf("script: %+v %v", tg, err)
	}
	if _, err := f.PhoneHome(ctx, tg.Token, StatusInstalled, "", nil); err != nil {
		e.t.Fatal(err)
	}
	return a
}

// TestNoWriteUndoesAnApply runs every write path of the fleet on a machine
// whose slot an apply renamed and marked for reinstall, both before the fleet
// has carried the apply out (the window in which a blind writer would write
// the old row back) and after. The stored row must keep what the apply did,
// and match the fleet's own copy, before and after a restart.
func TestNoWriteUndoesAnApply(t *testing.T) {
	type step func(t *testing.T, e *env, f *Fleet, a Assignment)
	op := func(action string) step {
		return func(t *testing.T, e *env, f *Fleet, _ Assignment) {
			t.Helper()
			o := Op{Ref: macA, Action: action, Actor: "test"}
			if action == ActMaintenanceEnter {
				o.Maintenance = &machine.MaintenanceInfo{Reason: "disk", Owner: "ops", Expires: e.now.Add(time.Hour)}
			}
			if _, err := f.Operate(context.Background(), o); err != nil {
				t.Fatalf("%s: %v", action, err)
			}
		}
	}
	reboot := func(t *testing.T, e *env, f *Fleet, _ Assignment) {
		a := e.dora(f, at("swp1", macA))
		if _, err := f.Script(context.Background(), a.Ticket, a.Addr); err != nil {
			t.Fatal(err)
		}
	}
	var token string
	startReinstall := func(t *testing.T, e *env, f *Fleet, a Assignment) {
		op(ActReinstall)(t, e, f, a)
		a = e.dora(f, at("swp1", macA))
		tg, err := f.Script(context.Background(), a.Ticket, a.Addr)
		if err != nil || tg.Token == "" {
			t.Fatalf("script: %+v %v", tg, err)
		}
		token = tg.Token
	}
	type want struct {
		name  string
		state machine.State
		nr    bool // needs reinstall
		slot  bool
	}
	kept := want{newName, machine.Deployed, true, true}
	cases := []struct {
		name    string
		prepare step // before the apply
		write   step
		before  want // the write ran before the fleet carried out the apply
		after   want // the write ran after
	}{
		{name: "reboot: DHCP and script", write: reboot, before: kept, after: kept},
		{name: "DHCP release", write: func(t *testing.T, e *env, f *Fleet, a Assignment) { f.Release(macA, a.Addr) }, before: kept, after: kept},
		{name: "DHCP decline", write: func(t *testing.T, e *env, f *Fleet, a Assignment) { f.Decline(macA, a.Addr) }, before: kept, after: kept},
		{name: "timeline note", write: func(t *testing.T, e *env, f *Fleet, a Assignment) { f.Note(a.Addr, machine.KindTFTP, "x") }, before: kept, after: kept},
		{name: "maintenance enter", write: op(ActMaintenanceEnter),
			before: want{newName, machine.Maintenance, true, true}, after: want{newName, machine.Maintenance, true, true}},
		{name: "maintenance enter and leave", write: func(t *testing.T, e *env, f *Fleet, a Assignment) {
			op(ActMaintenanceEnter)(t, e, f, a)
			op(ActMaintenanceLeave)(t, e, f, a)
		}, before: kept, after: kept},
		{name: "maintenance expiry (watchdog)", prepare: op(ActMaintenanceEnter), write: func(t *testing.T, e *env, f *Fleet, a Assignment) {
			e.now = e.now.Add(2 * time.Hour)
			f.Tick()
		}, before: kept, after: kept},
		{name: "deploy timeout (watchdog)", prepare: op(ActReinstall), write: func(t *testing.T, e *env, f *Fleet, a Assignment) {
			e.now = e.now.Add(21 * time.Minute)
			f.Tick()
		}, before: want{newName, machine.DeployFailed, true, true}, after: want{newName, machine.DeployFailed, true, true}},
		{name: "phone-home of an install begun before the apply", prepare: startReinstall, write: func(t *testing.T, e *env, f *Fleet, a Assignment) {
			// The lvm variant installs an image: the installed system's first boot deploys it.
			boot, err := f.IssueBootToken(context.Background(), token)
			if err != nil {
				t.Fatal(err)
			}
			m, err := f.PhoneHome(context.Background(), token, StatusInstalled, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if m.AwaitingBoot() {
				if _, err := f.PhoneHome(context.Background(), boot, StatusBooted, "", nil); err != nil {
					t.Fatal(err)
				}
			}
		}, before: kept, after: kept},
		// A reinstall started before the fleet carried the apply out still
		// installs the old design: the row needs a reinstall until a script of
		// the new design is served.
		{name: "operator reinstall", write: op(ActReinstall),
			before: want{newName, machine.Deploying, true, true}, after: want{newName, machine.Deploying, false, true}},
		{name: "operator reinstall and script", write: func(t *testing.T, e *env, f *Fleet, a Assignment) {
			op(ActReinstall)(t, e, f, a)
			if e.phase == "after" {
				reboot(t, e, f, a)
			}
		}, before: want{newName, machine.Deploying, true, true}, after: want{newName, machine.Deploying, false, true}},
		// Leaving the slot before the apply is carried out leaves the old name:
		// the slot's new name belongs to whatever stands in it.
		{name: "retire", write: op(ActRetire),
			before: want{oldName, machine.Retired, false, false}, after: want{newName, machine.Retired, false, false}},
		{name: "release from slot", write: op(ActRelease),
			before: want{oldName, machine.Ready, false, false}, after: want{newName, machine.Ready, false, false}},
		{name: "hardware replaced (old machine)", write: func(t *testing.T, e *env, f *Fleet, a Assignment) { e.dora(f, at("swp1", macB)) },
			before: want{oldName, machine.Retired, false, false}, after: want{newName, machine.Retired, false, false}},
	}
	for _, tc := range cases {
		for _, phase := range []string{"before", "after"} {
			t.Run(tc.name+"/"+phase, func(t *testing.T) {
				ctx := context.Background()
				e := newEnv(t)
				e.t, e.phase = t, phase
				f, stop := e.start()
				defer stop()
				a := e.deploy(f, "swp1", macA)
				if tc.prepare != nil {
					tc.prepare(t, e, f, a)
				}
				if _, _, err := store.Apply(ctx, e.st, store.ApplyRequest{Design: variantDesign(t), Actor: "test"}); err != nil {
					t.Fatal(err)
				}
				w := tc.after
				if phase == "before" {
					w = tc.before
					tc.write(t, e, f, a)
				}
				if err := f.Sync(ctx, nil); err != nil {
					t.Fatal(err)
				}
				if phase == "after" {
					tc.write(t, e, f, a)
				}
				mem, _ := f.Machine(macA)
				stop()
				row, err := e.st.Machine(ctx, macA)
				if err != nil {
					t.Fatal(err)
				}
				got := want{row.Name, row.State, row.NeedsReinstall, row.SlotKey != ""}
				if got != w {
					t.Errorf("stored row %+v, want %+v", got, w)
				}
				if mem.Name != row.Name || mem.State != row.State || mem.NeedsReinstall != row.NeedsReinstall || mem.SlotKey != row.SlotKey {
					t.Errorf("fleet holds %+v, the store %+v", mem, *row)
				}
				if n, _ := e.st.MachinesRevision(ctx); n != 2 {
					t.Errorf("machines revision %d, want 2", n)
				}
				// A restart finds nothing pending and the same machine.
				f2, stop2 := e.start()
				defer stop2()
				again, _ := f2.Machine(macA)
				if again.Name != row.Name || again.NeedsReinstall != row.NeedsReinstall {
					t.Errorf("after a restart %+v, stored %+v", again, *row)
				}
				if slot, ok := f2.InSlot("p1-tor1/swp1"); ok && slot.Name != newName {
					t.Errorf("the machine in swp1 is named %s, want %s", slot.Name, newName)
				}
			})
		}
	}
}

// TestApplyWithoutServerIsCarriedOutAtStart: revisions applied while no fleet
// ran are carried out, in order, when one starts, and only once.
func TestApplyWithoutServerIsCarriedOutAtStart(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	f, stop := e.start()
	e.deploy(f, "swp1", macA)
	e.deploy(f, "swp2", macB)
	stop()
	// Revision 2 gives swp1 a variant; revision 3 also removes swp2.
	d2 := variantDesign(t)
	if _, _, err := store.Apply(ctx, e.st, store.ApplyRequest{Design: d2, Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	src := d2.Source
	for name, b := range src {
		// swp2's host goes, and with it the lom port of its BMC.
		b = []byte(strings.Replace(string(b), "          - {ports: swp2, role: compute, ids: 2}\n", "", 1))
		src[name] = []byte(strings.Replace(string(b), "{ports: swp1-swp3, bmc_of: compute, ids: 1-3}", "{ports: swp1, bmc_of: compute, ids: 1}\n          - {ports: swp3, bmc_of: compute, ids: 3}", 1))
	}
	d3, err := zone.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Apply(ctx, e.st, store.ApplyRequest{Design: d3, Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	if row, _ := e.st.Machine(ctx, macA); row.Name != oldName {
		t.Fatalf("the apply wrote the machine: %+v", row)
	}
	f, stop = e.start()
	a, _ := f.Machine(macA)
	b, _ := f.Machine(macB)
	stop()
	if a.Name != newName || !a.NeedsReinstall || b.SlotKey != "" || b.Location != "p1-tor1/swp2" || b.NeedsReinstall {
		t.Fatalf("after start: A %+v, B %+v", a, b)
	}
	designEntries := func(id int64) string {
		tl, _ := e.st.Timeline(ctx, id, 0, 0)
		var kinds []string
		for _, en := range tl {
			if en.Kind == machine.KindSlotChanged || en.Kind == machine.KindSlotRemoved {
				kinds = append(kinds, string(en.Kind)+" by "+en.Actor)
			}
		}
		return strings.Join(kinds, "; ")
	}
	if got := designEntries(a.ID); got != "slot-changed by alice" {
		t.Errorf("A's design entries: %s", got)
	}
	if got := designEntries(b.ID); got != "slot-removed by bob" {
		t.Errorf("B's design entries: %s", got)
	}
	tl, _ := e.st.Timeline(ctx, b.ID, 0, 0)
	// A second start carries out nothing again.
	f, stop = e.start()
	stop()
	if tl2, _ := e.st.Timeline(ctx, b.ID, 0, 0); len(tl2) != len(tl) {
		t.Fatalf("second start added %d entries", len(tl2)-len(tl))
	}
}
