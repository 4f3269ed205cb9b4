// Package files opens files for TFTP and HTTP without ever leaving a directory.
package files

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Dir is a directory files are served from. Paths are resolved with os.Root,
// so "..", absolute paths and symlinks cannot reach outside it. The one
// exception is opt-in: top-level symlinks that exist when the directory is
// opened, which is how Debian's ipxe package ships ipxe.efi (a link to
// /boot/ipxe.efi). Those are fixed names chosen by the machine's owner, not
// paths a client can construct.
type Dir struct {
	Path  string
	root  *os.Root
	links map[string]string
}

// Open opens dir. With followLinks, top-level symlinks to regular files are served too.
func Open(dir string, followLinks bool) (*Dir, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	d := &Dir{Path: dir, root: r, links: map[string]string{}}
	if !followLinks {
		return d, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		target, err := filepath.EvalSymlinks(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if st, err := os.Stat(target); err == nil && st.Mode().IsRegular() {
			d.links[e.Name()] = target
		}
	}
	return d, nil
}

// Open opens a regular file by its slash-separated path inside the directory.
func (d *Dir) Open(name string) (*os.File, fs.FileInfo, error) {
	var f *os.File
	var err error
	if target, ok := d.links[name]; ok {
		f, err = os.Open(target)
	} else {
		f, err = d.root.Open(name)
	}
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", name, errors.Join(fs.ErrNotExist, errors.New("not a regular file")))
	}
	return f, st, nil
}

// Close releases the directory.
func (d *Dir) Close() error { return d.root.Close() }
