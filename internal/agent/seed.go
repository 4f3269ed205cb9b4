package agent

import (
	"errors"
	"fmt"
	"os"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/drover/drover/internal/install"
)

// seedBytes is the size of the seed partition: a FAT file system labelled
// cidata at the end of the disk, where cloud-init's NoCloud datasource finds
// it (the place Ironic puts its config drive).
const seedBytes = 64 << 20

// WriteSeed adds a cidata partition at the end of the disk at path, after
// the image's partitions, and writes the seed's three files into it.
func WriteSeed(path string, seed install.Seed) error {
	d, err := diskfs.Open(path, diskfs.WithOpenMode(diskfs.ReadWriteExclusive))
	if err != nil && errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("open %s for the seed: %w", path, err)
	}
	if err != nil {
		// A plain file (tests, images) cannot be opened exclusively.
		d, err = diskfs.Open(path, diskfs.WithOpenMode(diskfs.ReadWrite))
	}
	if err != nil {
		return fmt.Errorf("open %s for the seed: %w", path, err)
	}
	defer d.Close()
	old, err := d.GetPartitionTable()
	if err != nil {
		return fmt.Errorf("%s: the image has no partition table drover can read (it needs GPT): %w", path, err)
	}
	table, ok := old.(*gpt.Table)
	if !ok {
		return fmt.Errorf("%s: the image's partition table is %s; drover adds its seed to GPT images only", path, old.Type())
	}
	sector := uint64(d.LogicalBlocksize)
	last := uint64(d.Size)/sector - 34 // the backup GPT's entries and header
	end := uint64(0)
	parts := make([]*gpt.Partition, 0, len(table.Partitions)+1)
	for _, p := range table.Partitions {
		if p.Type == gpt.Unused {
			continue
		}
		parts = append(parts, &gpt.Partition{Index: len(parts) + 1, Start: p.Start, End: p.End, Type: p.Type, Name: p.Name, GUID: p.GUID, Attributes: p.Attributes})
		end = max(end, p.End)
	}
	start := (last - seedBytes/sector) / 2048 * 2048
	if start <= end {
		return fmt.Errorf("%s: no room after the image for the %d MiB seed partition: the disk needs to be larger than the image", path, seedBytes>>20)
	}
	parts = append(parts, &gpt.Partition{Index: len(parts) + 1, Start: start, End: last, Type: gpt.MicrosoftBasicData, Name: "cidata"})
	nt := &gpt.Table{Partitions: parts, GUID: table.GUID, ProtectiveMBR: true, LogicalSectorSize: int(sector), PhysicalSectorSize: int(sector)}
	if err := d.Partition(nt); err != nil {
		return fmt.Errorf("%s: write the partition table with the seed partition: %w", path, err)
	}
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: len(parts), FSType: filesystem.TypeFat32, VolumeLabel: "cidata"})
	if err != nil {
		return fmt.Errorf("%s: make the seed file system: %w", path, err)
	}
	for name, body := range map[string]string{"meta-data": seed.MetaData, "user-data": seed.UserData, "network-config": seed.NetworkConfig} {
		if body == "" && name == "network-config" {
			continue
		}
		f, err := fs.OpenFile("/"+name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("seed %s: %w", name, err)
		}
		_, err = f.Write([]byte(body))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("seed %s: %w", name, err)
		}
	}
	return nil
}
