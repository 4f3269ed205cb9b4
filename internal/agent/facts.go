package agent

import (
	"net"
	"os"
	"sort"
	"strings"

	"github.com/jaypipes/ghw/pkg/block"
	"github.com/jaypipes/ghw/pkg/cpu"
	"github.com/jaypipes/ghw/pkg/memory"
	"github.com/jaypipes/ghw/pkg/product"

	"github.com/drover/drover/internal/install"
)

// TargetDisk is a disk an image can go to.
type TargetDisk struct {
	Name  string
	Path  string
	Bytes int64
}

// Disks lists the machine's fixed disks, largest last, skipping removable,
// optical, floppy and loop devices.
func Disks() []TargetDisk {
	info, err := block.New()
	if err != nil {
		return nil
	}
	var out []TargetDisk
	for _, d := range info.Disks {
		if d.IsRemovable || d.DriveType == block.DriveTypeODD || d.DriveType == block.DriveTypeFDD || d.DriveType == block.DriveTypeVirtual ||
			strings.HasPrefix(d.Name, "loop") || strings.HasPrefix(d.Name, "ram") || d.SizeBytes == 0 {
			continue
		}
		out = append(out, TargetDisk{Name: d.Name, Path: "/dev/" + d.Name, Bytes: int64(d.SizeBytes)})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Facts is the hardware inventory the agent reports, in the keys drover's
// timeline and API show: NICs and MACs, CPUs, memory, disks, the product
// and its serial, the running kernel, and the LLDP neighbours of every NIC.
func Facts(nics []net.Interface, lldp []install.Neighbour) map[string]any {
	f := map[string]any{}
	macs := []string{}
	nicList := []map[string]any{}
	for _, n := range nics {
		macs = append(macs, n.HardwareAddr.String())
		nicList = append(nicList, map[string]any{"name": n.Name, "mac": n.HardwareAddr.String()})
	}
	f["macs"], f["nics"] = macs, nicList
	if c, err := cpu.New(); err == nil {
		f["cpus"] = c.TotalHardwareThreads
		if len(c.Processors) > 0 {
			f["cpu_model"] = c.Processors[0].Model
		}
	}
	if m, err := memory.New(); err == nil {
		f["memory_bytes"] = max(m.TotalPhysicalBytes, m.TotalUsableBytes)
	}
	disks := []map[string]any{}
	for _, d := range Disks() {
		disks = append(disks, map[string]any{"name": d.Name, "bytes": d.Bytes})
	}
	f["disks"] = disks
	if p, err := product.New(); err == nil {
		f["product"], f["serial"], f["vendor"] = p.Name, p.SerialNumber, p.Vendor
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		f["kernel"] = strings.TrimSpace(string(b))
	}
	if lldp == nil {
		lldp = []install.Neighbour{}
	}
	f["lldp"] = lldp
	return f
}
