package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/drover/drover/internal/catalogue"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

// newDisk makes a blank virtio disk for a lab machine (new hardware has an empty disk).
func newDisk(path string) error {
	os.Remove(path)
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", path, fmt.Sprint(diskBytes)).CombinedOutput(); err != nil {
		return fmt.Errorf("disk %s: %v: %s", path, err, out)
	}
	return nil
}

// catalogueImages puts the lab's Debian 12 disk image in the catalogue under
// every image name the design's profiles use, on every channel they read.
func catalogueImages(ctx context.Context, cfg *Config, d *zone.Design, artifacts, db string) error {
	type ref struct{ name, channel string }
	var refs []ref
	for _, z := range d.Zones {
		for _, p := range z.Profiles {
			if name, channel, ok := p.ImageRef(z); ok {
				refs = append(refs, ref{name, channel})
			}
		}
	}
	if len(refs) == 0 {
		return nil
	}
	img, err := BuildDiskImage(ctx, cfg.CacheDir, cfg.Log)
	if err != nil {
		return err
	}
	st, err := store.OpenSQLite(ctx, db)
	if err != nil {
		return err
	}
	defer st.Close()
	version := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(img), "debian-12-"), ".raw.gz")
	for _, r := range refs {
		f, err := os.Open(img)
		if err != nil {
			return err
		}
		_, err = catalogue.Add(ctx, st, artifacts, r.name, version, r.channel, "lab", f)
		f.Close()
		if err != nil {
			return fmt.Errorf("catalogue %s: %w", r.name, err)
		}
	}
	return nil
}

// copySSHKeys gives the operator the private key of every zone's ssh_keys
// found in the zone's keys/ directory (KEY next to KEY.pub), readable by root
// only, as ssh wants it.
func copySSHKeys(cfg *Config, d *zone.Design) {
	for _, z := range d.Zones {
		pubs, _ := filepath.Glob(filepath.Join(filepath.Dir(z.Meta.At.File), "keys", "*.pub"))
		for _, pub := range pubs {
			b, err := os.ReadFile(pub)
			if err != nil || !slices.Contains(z.AuthorizedKeys(), strings.TrimSpace(string(b))) {
				continue
			}
			if key, err := os.ReadFile(strings.TrimSuffix(pub, ".pub")); err == nil {
				os.WriteFile(filepath.Join(cfg.StateDir, "ssh-"+z.Name), key, 0o600)
			}
		}
	}
}

// lldpDir holds the lab's lldpd sockets and configurations, by lab prefix.
const lldpDir = "/run/drover-lab-lldpd"

// startLLDP runs lldpd on a switch's ports, advertising the switch's name and
// each port's name as its port ID, the way a real switch does (every second:
// the lab does not wait 30 s for a neighbour).
func startLLDP(st *State, ns, name string, ports []bootPort) error {
	if _, err := exec.LookPath("lldpd"); err != nil {
		return fmt.Errorf("lldpd is not installed: apt-get install lldpd")
	}
	// lldpd runs lldpcli on the configuration as its own unprivileged user:
	// the socket and file must be where that user can reach them.
	dir := lldpDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	os.Chmod(dir, 0o755)
	base := filepath.Join(dir, st.Prefix+name+"-lldpd")
	var ifs []string
	for _, p := range ports {
		ifs = append(ifs, p.port)
	}
	conf := base + ".conf"
	body := fmt.Sprintf("configure system hostname %s\nconfigure lldp portidsubtype ifname\nconfigure lldp tx-interval 1\n", name)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		return err
	}
	return startHelper(st, ns, filepath.Join(filepath.Dir(st.DB), name+"-lldpd.log"), []string{"lldpd", "-d", "-u", base + ".socket",
		"-O", conf, "-I", strings.Join(ifs, ",")})
}
