package zone

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the design parser: it must return a design
// or problems, never panic, and every problem must carry a position.
func FuzzParse(f *testing.F) {
	for _, path := range []string{"testdata/base.yaml", "../../examples/lab/lab.yaml", "../../examples/university/test01.yaml"} {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("zone: x\npods: {p: {switches: {s: {ports: [a1-a9], slots: [{ports: a1-a3, ids: 1-3, role: r}]}}}}"))
	f.Add([]byte("a: &a [*a]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(map[string][]byte{"fuzz.yaml": b})
		if err != nil {
			var ps Problems
			if ok := asProblems(err, &ps); !ok {
				t.Fatalf("error is not Problems: %v", err)
			}
			for _, p := range ps {
				if p.Pos.File != "fuzz.yaml" || p.Pos.Line < 1 {
					t.Fatalf("problem without a position: %v", p)
				}
			}
			return
		}
		ix := NewIndex(d)
		for _, s := range d.Slots {
			if s.Name == "" || !strings.HasPrefix(s.Key, s.Switch) {
				t.Fatalf("bad slot %+v", s)
			}
			if ix.Slot(s.Key) != s {
				t.Fatalf("slot %s not indexed", s.Key)
			}
		}
	})
}

func asProblems(err error, ps *Problems) bool {
	p, ok := err.(Problems)
	*ps = p
	return ok
}
