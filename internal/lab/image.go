package lab

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

//go:embed init.sh
var initScript []byte

// Image is a built install image.
type Image struct {
	Kernel string
	Initrd string
}

// BuildImage builds (or reuses from cacheDir) the lab's install image: the
// Debian cloud kernel and a busybox initrd whose /init is the installer. Only
// Debian's package archive is used.
func BuildImage(ctx context.Context, cacheDir, agentPath string, log *slog.Logger) (Image, error) {
	pkg, err := kernelPackage(ctx)
	if err != nil {
		return Image{}, err
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return Image{}, errors.New("busybox is not installed: apt-get install busybox-static")
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return Image{}, err
	}
	agent, err := os.ReadFile(agentPath)
	if err != nil {
		return Image{}, fmt.Errorf("the install agent (make build puts it next to drover as drover-agent): %w", err)
	}
	h := sha256.New()
	h.Write([]byte(pkg))
	h.Write(initScript)
	h.Write(bb)
	h.Write(agent)
	key := hex.EncodeToString(h.Sum(nil))[:16]
	dir := filepath.Join(cacheDir, "image-"+key)
	img := Image{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.gz")}
	if _, err := os.Stat(img.Initrd); err == nil {
		return img, nil
	}
	unlock, err := lockBuild(ctx, cacheDir, "image-"+key, log)
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	if _, err := os.Stat(img.Initrd); err == nil {
		return img, nil // built by another drover while this one waited
	}
	log.Info("building the lab install image", "kernel", pkg, "dir", dir)
	work := dir + ".tmp"
	os.RemoveAll(work)
	if err := os.MkdirAll(filepath.Join(work, "deb"), 0o755); err != nil {
		return Image{}, err
	}
	defer os.RemoveAll(work)
	if out, err := cmd(ctx, work, "apt-get", "download", pkg); err != nil {
		return Image{}, fmt.Errorf("download %s (is the Debian archive reachable?): %w: %s", pkg, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(work, "*.deb"))
	if len(debs) != 1 {
		return Image{}, fmt.Errorf("apt-get download %s left %d packages", pkg, len(debs))
	}
	if out, err := cmd(ctx, work, "dpkg-deb", "-x", debs[0], "deb"); err != nil {
		return Image{}, fmt.Errorf("unpack %s: %w: %s", pkg, err, out)
	}
	kernels, _ := filepath.Glob(filepath.Join(work, "deb", "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		return Image{}, fmt.Errorf("%s has %d kernels", pkg, len(kernels))
	}
	root := filepath.Join(work, "root")
	for _, d := range []string{"bin", "modules"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755); err != nil {
		return Image{}, err
	}
	if err := os.WriteFile(filepath.Join(root, "init"), initScript, 0o755); err != nil {
		return Image{}, err
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "drover-agent"), agent, 0o755); err != nil {
		return Image{}, err
	}
	// The modules /init loads (virtio networking, disks and the entropy source
	// without which the agent's first random numbers wait); the list there is the load order.
	for _, m := range []string{"virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci", "failover", "net_failover", "virtio_net", "virtio_blk", "rng-core", "virtio-rng"} {
		found, _ := filepath.Glob(filepath.Join(work, "deb", "lib", "modules", "*", "kernel", "*", "*", m+".ko"))
		more, _ := filepath.Glob(filepath.Join(work, "deb", "lib", "modules", "*", "kernel", "*", "*", "*", m+".ko"))
		found = append(found, more...)
		if len(found) == 0 {
			continue // built into this kernel
		}
		b, err := os.ReadFile(found[0])
		if err != nil {
			return Image{}, err
		}
		os.WriteFile(filepath.Join(root, "modules", m+".ko"), b, 0o644)
	}
	if out, err := cmd(ctx, root, "sh", "-c", "find . | cpio -o -H newc --quiet | gzip -1 > ../initrd.gz"); err != nil {
		return Image{}, fmt.Errorf("pack initrd: %w: %s", err, out)
	}
	if err := os.Rename(kernels[0], filepath.Join(work, "vmlinuz")); err != nil {
		return Image{}, err
	}
	for _, d := range []string{"deb", "root"} {
		os.RemoveAll(filepath.Join(work, d))
	}
	for _, d := range debs {
		os.Remove(d)
	}
	os.RemoveAll(dir)
	if err := os.Rename(work, dir); err != nil {
		return Image{}, err
	}
	return img, nil
}

//go:embed disk-image.sh
var diskImageScript []byte

// BuildDiskImage builds (or reuses from cacheDir) the lab's Debian 12 disk
// image, gzip-compressed: from Debian's packages only, keyed by the build
// script, so a changed script builds anew and an unchanged one never does.
func BuildDiskImage(ctx context.Context, cacheDir string, log *slog.Logger) (string, error) {
	for _, tool := range []string{"mmdebstrap", "grub-mkimage", "mkfs.vfat", "mcopy", "sfdisk", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("%s is not installed: apt-get install mmdebstrap grub-pc-bin grub-efi-amd64-bin dosfstools mtools fdisk e2fsprogs", tool)
		}
	}
	sum := sha256.Sum256(diskImageScript)
	key := hex.EncodeToString(sum[:])[:16]
	out := filepath.Join(cacheDir, "debian-12-"+key+".raw.gz")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	unlock, err := lockBuild(ctx, cacheDir, "debian-12-"+key, log)
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(out); err == nil {
		return out, nil // built by another drover while this one waited
	}
	log.Info("building the lab's Debian 12 disk image (once; cached)", "file", out)
	work := filepath.Join(cacheDir, "debian-12-"+key+".work")
	script := filepath.Join(cacheDir, "disk-image-"+key+".sh")
	if err := os.WriteFile(script, diskImageScript, 0o755); err != nil {
		return "", err
	}
	defer os.Remove(script)
	raw := filepath.Join(cacheDir, "debian-12-"+key+".raw")
	if b, err := cmd(ctx, cacheDir, "sh", script, raw, work); err != nil {
		return "", fmt.Errorf("build the Debian disk image: %w: %s", err, b)
	}
	defer os.Remove(raw)
	if err := gzipFile(ctx, raw, out); err != nil {
		return "", fmt.Errorf("compress the Debian disk image: %w", err)
	}
	return out, nil
}

// lockBuild takes the lock for building name in cacheDir, waiting while
// another drover (another lab, a test) builds it: both would write the same
// work files. It gives up when ctx ends.
func lockBuild(ctx context.Context, cacheDir, name string, log *slog.Logger) (unlock func(), err error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(cacheDir, name+".lock")
	for waited := false; ; waited = true {
		f, err := lockFile(path, false)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !waited {
			log.Info("waiting for another drover to finish building", "what", name, "lock", path)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the build of %s: %w", name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// gzipFile compresses src into dst (whole or not at all), fast rather than small.
func gzipFile(ctx context.Context, src, dst string) error {
	out, err := os.Create(dst + ".tmp")
	if err != nil {
		return err
	}
	defer os.Remove(dst + ".tmp")
	c := exec.CommandContext(ctx, "gzip", "-c", "-1", src)
	c.Stdout = out
	err = c.Run()
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(dst+".tmp", dst)
}

func kernelPackage(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-cloud-amd64").Output()
	if err != nil {
		return "", fmt.Errorf("find the Debian cloud kernel (apt-cache depends linux-image-cloud-amd64): %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if dep, ok := strings.CutPrefix(strings.TrimSpace(line), "Depends: "); ok && strings.HasPrefix(dep, "linux-image-") {
			return dep, nil
		}
	}
	return "", errors.New("linux-image-cloud-amd64 names no kernel package (run apt-get update)")
}

func cmd(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	c := exec.CommandContext(ctx, name, args...)
	c.Dir = dir
	return c.CombinedOutput()
}
