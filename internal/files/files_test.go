package files

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDirStaysInside(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	os.WriteFile(secret, []byte("secret"), 0o644)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ipxe.pxe"), []byte("pxe"), 0o644)
	os.Symlink(secret, filepath.Join(dir, "ipxe.efi")) // as Debian's ipxe package does
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.Symlink(secret, filepath.Join(dir, "sub", "link"))
	os.Symlink(outside, filepath.Join(dir, "outdir"))

	tests := []struct {
		follow bool
		name   string
		ok     bool
	}{
		{false, "ipxe.pxe", true},
		{false, "ipxe.efi", false},
		{true, "ipxe.efi", true},
		{true, "sub/link", false},
		{true, "outdir/secret", false},
		{true, "../" + filepath.Base(outside) + "/secret", false},
		{true, secret, false},
		{true, "sub", false},
		{true, "missing", false},
	}
	for _, tt := range tests {
		d, err := Open(dir, tt.follow)
		if err != nil {
			t.Fatal(err)
		}
		f, _, err := d.Open(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("follow=%v Open(%q): err %v, want ok=%v", tt.follow, tt.name, err, tt.ok)
		}
		if f != nil {
			f.Close()
		}
		d.Close()
	}
}
