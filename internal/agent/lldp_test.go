package agent

import (
	"context"
	"net"
	"testing"
	"time"
)

// lldpFrame builds an LLDP frame by its TLVs (IEEE 802.1AB): chassis ID
// (MAC subtype), port ID (interface-name subtype), TTL, port description,
// system name, end.
func lldpFrame(system, port, descr string) []byte {
	f := []byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e, 0x02, 0, 0, 0, 0, 1, 0x88, 0xcc}
	tlv := func(typ int, v []byte) {
		f = append(f, byte(typ<<1|len(v)>>8), byte(len(v)))
		f = append(f, v...)
	}
	tlv(1, append([]byte{4}, 0x52, 0x54, 0, 0xaa, 0xbb, 0xcc))
	tlv(2, append([]byte{5}, port...))
	tlv(3, []byte{0, 120})
	tlv(4, []byte(descr))
	tlv(5, []byte(system))
	tlv(0, nil)
	return f
}

func TestParseLLDP(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		ok    bool
		sys   string
		port  string
	}{
		{"switch and port", lldpFrame("p1-tor1", "swp3", "to lab-compute-03"), true, "p1-tor1", "swp3"},
		{"not LLDP", []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0x45}, false, "", ""},
		{"truncated", lldpFrame("p1-tor1", "swp3", "x")[:20], false, "", ""},
		{"empty", nil, false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nb, ok := ParseLLDP(tt.frame)
			if ok != tt.ok || nb.SystemName != tt.sys || nb.PortID != tt.port {
				t.Fatalf("ParseLLDP = %+v, %v; want %s/%s, %v", nb, ok, tt.sys, tt.port, tt.ok)
			}
			if ok && nb.ChassisID != "52:54:00:aa:bb:cc" {
				t.Errorf("chassis %q", nb.ChassisID)
			}
		})
	}
}

func FuzzParseLLDP(f *testing.F) {
	f.Add(lldpFrame("p1-tor1", "swp3", "descr"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) { ParseLLDP(b) })
}

// No LLDP on a network is normal: the agent reports no neighbours, no error.
func TestNoLLDP(t *testing.T) {
	start := time.Now()
	got := ListenLLDP(context.Background(), []net.Interface{{Name: "drover-none0", Index: 1 << 20}}, 200*time.Millisecond)
	if len(got) != 0 {
		t.Fatalf("neighbours %+v from an interface that does not exist", got)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("ListenLLDP did not stop at its wait")
	}
	if f := Facts(nil, nil); f["lldp"] == nil {
		t.Fatal("facts without neighbours have no lldp list")
	}
}
