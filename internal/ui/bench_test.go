package ui

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/drover/drover/bench"
	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/zone"
)

// deployedFleet has a deployed machine in every slot of a design.
type deployedFleet struct{ ix *zone.Index }

func (f deployedFleet) Index() *zone.Index { return f.ix }
func (f deployedFleet) InSlot(key string) (machine.Machine, bool) {
	s := f.ix.Slot(key)
	return machine.Machine{ID: 1, SlotKey: key, Name: s.Name, State: machine.Deployed, StateSince: time.Now()}, true
}
func (deployedFleet) Operate(context.Context, fleet.Op) (machine.Machine, error) {
	return machine.Machine{}, nil
}
func (deployedFleet) PowerAction(context.Context, fleet.PowerOp) (fleet.PowerResult, error) {
	return fleet.PowerResult{}, nil
}

// BenchmarkPodPage renders the rack elevation of a 500-slot pod of a
// 10,000-slot design, server side.
func BenchmarkPodPage(b *testing.B) {
	d, err := zone.Parse(map[string][]byte{"wide.yaml": bench.GeneratePods(20, 500)})
	if err != nil {
		b.Fatal(err)
	}
	u, err := New(Config{Fleet: deployedFleet{zone.NewIndex(d)}, RoleRank: rank})
	if err != nil {
		b.Fatal(err)
	}
	s := &session{name: "bench", role: "viewer", csrf: "x"}
	b.ReportMetric(float64(len(d.Slots)), "slots")
	for b.Loop() {
		r := httptest.NewRequest("GET", "/zones/wide/pods/p7", nil)
		r.SetPathValue("zone", "wide")
		r.SetPathValue("pod", "p7")
		w := httptest.NewRecorder()
		u.pod(w, r, s, &view{User: "bench", Role: "viewer", CSRF: "x"})
		if w.Code != 200 || w.Body.Len() < 100_000 {
			b.Fatalf("pod page %d, %d bytes", w.Code, w.Body.Len())
		}
	}
}
