package bench

import (
	"testing"

	"github.com/drover/drover/internal/zone"
)

func TestGeneratedDesignIsValid(t *testing.T) {
	d, err := zone.Parse(map[string][]byte{"big.yaml": GenerateDesign(10_000)})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Slots) < 10_000 {
		t.Fatalf("%d slots", len(d.Slots))
	}
}

// BenchmarkValidatePlan10k measures what `drover plan` does with a 10,000-slot
// design: parse and validate it, derive every slot, and diff it against the
// applied slots (here: the same design with one pod's addressing changed).
func BenchmarkValidatePlan10k(b *testing.B) {
	src := GenerateDesign(10_000)
	applied, err := zone.Parse(map[string][]byte{"big.yaml": src})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d, err := zone.Parse(map[string][]byte{"big.yaml": src})
		if err != nil {
			b.Fatal(err)
		}
		if p := zone.Diff(applied.Slots, d.Slots); !p.Empty() {
			b.Fatal("plan of an unchanged design is not empty")
		}
		_ = zone.NewIndex(d)
	}
	b.ReportMetric(float64(len(applied.Slots)), "slots")
}
