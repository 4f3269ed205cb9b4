package cabling

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover/drover/internal/install"
	"github.com/drover/drover/internal/zone"
)

func labIndex(t *testing.T) *zone.Index {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile("../../examples/lab/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "templates"), 0o755)
	os.WriteFile(filepath.Join(dir, "templates", "install.sh"), []byte("#!/bin/sh\n"), 0o644)
	os.CopyFS(filepath.Join(dir, "templates", "switch"), os.DirFS("../../examples/lab/templates/switch")) // the lab's switches' ZTP templates
	os.WriteFile(filepath.Join(dir, "lab.yaml"), b, 0o644)
	d, err := zone.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return zone.NewIndex(d)
}

func TestCheck(t *testing.T) {
	ix := labIndex(t)
	const boot, second = "52:54:00:00:00:01", "52:54:00:00:00:02"
	nb := func(mac, sw, port string) install.Neighbour {
		return install.Neighbour{Interface: "eth-" + mac[len(mac)-2:], MAC: mac, SystemName: sw, PortID: port}
	}
	tests := []struct {
		name   string
		heard  []install.Neighbour
		status string
		want   []string // in the findings, in order
	}{
		{"no LLDP", nil, NoLLDP, nil},
		{"where the design says", []install.Neighbour{nb(boot, "p1-tor1", "swp1")}, OK, nil},
		{"a domain on the switch name", []install.Neighbour{nb(boot, "p1-tor1.lab.example", "swp1")}, OK, nil},
		{"a second NIC on an unused port", []install.Neighbour{nb(boot, "p1-tor1", "swp1"), nb(second, "p1-tor2", "swp7")}, OK, nil},
		{"host on the wrong port", []install.Neighbour{nb(boot, "p1-tor1", "swp4")}, Mismatch, []string{"cabled to p1-tor1/swp4", "on p1-tor1/swp1"}},
		{"cables swapped between the two NICs", []install.Neighbour{nb(boot, "p1-tor1", "swp5"), nb(second, "p1-tor1", "swp1")}, Mismatch,
			[]string{"boot NIC eth-01 (52:54:00:00:00:01) is cabled to p1-tor1/swp5", "eth-02 (52:54:00:00:00:02) is on p1-tor1/swp1, lab-compute-01's boot port"}},
		{"second NIC on another machine's port", []install.Neighbour{nb(boot, "p1-tor1", "swp1"), nb(second, "p1-tor1", "swp2")}, Mismatch, []string{"the port of lab-compute-02"}},
		{"second NIC on a switch the design does not know", []install.Neighbour{nb(boot, "p1-tor1", "swp1"), nb(second, "p9-tor1", "swp1")}, OK, nil},
	}
	s := ix.Slot("p1-tor1/swp1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check(ix, s, boot, tt.heard)
			if r.Status != tt.status || (len(r.Findings) == 0) != (len(tt.want) == 0) {
				t.Fatalf("status %s %+v, want %s", r.Status, r.Findings, tt.status)
			}
			var all []string
			for _, f := range r.Findings {
				all = append(all, f.Problem)
			}
			joined := strings.Join(all, "\n")
			for _, w := range tt.want {
				if !strings.Contains(joined, w) {
					t.Errorf("findings lack %q:\n%s", w, joined)
				}
			}
		})
	}
}

func TestNeighboursFromFacts(t *testing.T) {
	facts := map[string]any{"lldp": []any{map[string]any{"interface": "eth0", "system_name": "p1-tor1", "port_id": "aa:bb:cc:dd:ee:ff", "port_description": "swp3"}}}
	n := Neighbours(facts)
	if len(n) != 1 || Where(n[0]) != "p1-tor1/swp3" {
		t.Fatalf("%+v", n)
	}
	if Neighbours(map[string]any{}) != nil {
		t.Fatal("neighbours without lldp facts")
	}
}
