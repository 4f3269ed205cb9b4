package agent

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/drover/drover/internal/install"
)

// gptImage makes a disk file holding an image with one partition of imgMiB.
func gptImage(t *testing.T, diskMiB, imgMiB int64) string {
	p := filepath.Join(t.TempDir(), "disk")
	d, err := diskfs.Create(p, diskMiB<<20, diskfs.SectorSizeDefault)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tbl := &gpt.Table{ProtectiveMBR: true, Partitions: []*gpt.Partition{{Index: 1, Start: 2048, End: uint64(imgMiB<<11) - 1, Type: gpt.LinuxFilesystem, Name: "root"}}}
	if err := d.Partition(tbl); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWriteSeed(t *testing.T) {
	seed := install.Seed{MetaData: "instance-id: x\n", UserData: "#cloud-config\nhostname: lab-compute-01\n", NetworkConfig: "version: 2\n"}
	tests := []struct {
		name            string
		diskMiB, imgMiB int64
		wantErr         string
	}{
		{"room after the image", 256, 100, ""},
		{"no room", 128, 100, "no room after the image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := gptImage(t, tt.diskMiB, tt.imgMiB)
			err := WriteSeed(p, seed)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d, err := diskfs.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			tbl, err := d.GetPartitionTable()
			if err != nil {
				t.Fatal(err)
			}
			parts := tbl.(*gpt.Table).Partitions
			if parts[0].Name != "root" || parts[0].Start != 2048 {
				t.Fatalf("the image's partition moved: %+v", parts[0])
			}
			fs, err := d.GetFilesystem(2)
			if err != nil {
				t.Fatal(err)
			}
			if l := strings.ToLower(strings.TrimSpace(fs.Label())); l != "cidata" {
				t.Errorf("label %q, want cidata", l)
			}
			f, err := fs.OpenFile("/user-data", os.O_RDONLY)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(f)
			if string(b) != seed.UserData {
				t.Errorf("user-data %q", b)
			}
		})
	}
}
