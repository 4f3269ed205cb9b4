package lab

import (
	"strings"
	"testing"

	"github.com/drover/drover/internal/zone"
)

func TestSecondNICs(t *testing.T) {
	d, err := zone.Load("../../examples/lab")
	if err != nil {
		t.Fatal(err)
	}
	ix := zone.NewIndex(d)
	tests := []struct {
		pair    string
		wantSw  string
		wantErr string
	}{
		{"lab-compute-02=p1-tor1/swp6", "p1-tor1", ""},
		{"lab-compute-03=p1-tor1/swp7", "p1-tor1", ""}, // by permanent name too: the VM is lab-compute-lvm-03
		{"lab-compute-02", "", "write NAME=SWITCH/PORT"},
		{"lab-compute-02=swp6", "", "write NAME=SWITCH/PORT"},
		{"lab-compute-09=p1-tor1/swp6", "", "no slot named lab-compute-09"},
		{"lab-compute-02=p1-tor2/swp6", "", "only to a port of that switch"},
		{"lab-compute-02=p1-tor1/swp1", "", "the port of lab-compute-01"},
	}
	for _, tt := range tests {
		t.Run(tt.pair, func(t *testing.T) {
			got, err := secondNICs(ix, []string{tt.pair})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got[tt.wantSw]) != 1 || !strings.HasPrefix(got[tt.wantSw][0].secondOf, "lab-compute-") || strings.HasSuffix(tt.pair, "swp7") && got[tt.wantSw][0].secondOf != "lab-compute-lvm-03" {
				t.Fatalf("%v %+v", err, got)
			}
		})
	}
}

func TestQEMUArgsBootOrder(t *testing.T) {
	vm := &VM{Name: "m", Tap: "swp2", MAC: "52:54:00:00:00:01", Tap2: "swp6", MAC2: "52:54:00:00:00:02", Firmware: "bios", Disk: "d.qcow2"}
	tests := []struct {
		name              string
		swapped, netFirst bool
		want              []string // -netdev and -device values of the NICs and disk, in order
	}{
		{"disk first", false, false, []string{"tap,id=n0,ifname=swp2,script=no,downscript=no", "virtio-net-pci,netdev=n0,id=nic0,mac=52:54:00:00:00:01,bootindex=2",
			"tap,id=n1,ifname=swp6,script=no,downscript=no", "virtio-net-pci,netdev=n1,id=nic1,mac=52:54:00:00:00:02", "virtio-blk-pci,drive=disk0,id=disk0dev,bootindex=1"}},
		{"PXE once", false, true, []string{"tap,id=n0,ifname=swp2,script=no,downscript=no", "virtio-net-pci,netdev=n0,id=nic0,mac=52:54:00:00:00:01,bootindex=1",
			"tap,id=n1,ifname=swp6,script=no,downscript=no", "virtio-net-pci,netdev=n1,id=nic1,mac=52:54:00:00:00:02", "virtio-blk-pci,drive=disk0,id=disk0dev,bootindex=2"}},
		{"cables swapped: the boot NIC on the second port", true, false, []string{"tap,id=n0,ifname=swp6,script=no,downscript=no", "virtio-net-pci,netdev=n0,id=nic0,mac=52:54:00:00:00:01,bootindex=2",
			"tap,id=n1,ifname=swp2,script=no,downscript=no", "virtio-net-pci,netdev=n1,id=nic1,mac=52:54:00:00:00:02", "virtio-blk-pci,drive=disk0,id=disk0dev,bootindex=1"}},
	}
	for _, tt := range tests {
		vm.Swapped = tt.swapped
		var got []string
		args := qemuArgs(vm, "sercon", tt.netFirst)
		for i, a := range args[:len(args)-1] {
			if a == "-netdev" || a == "-device" && strings.Contains(args[i+1], "bootindex") || a == "-device" && strings.HasPrefix(args[i+1], "virtio-net") {
				got = append(got, args[i+1])
			}
		}
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
