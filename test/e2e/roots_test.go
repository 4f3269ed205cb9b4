package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFilesStayInTheirRoots serves an artifacts directory holding symlinks
// that lead out of it (directly in it and in a subdirectory) and an iPXE
// directory holding a top-level link, as Debian's ipxe package ships them.
// TFTP (atftp) and HTTP (curl) refuse every link out of --artifacts and serve
// only the iPXE directory's top-level link.
func TestFilesStayInTheirRoots(t *testing.T) {
	require(t, map[string]string{"atftp": "atftp", "curl": "curl"})
	dir := t.TempDir()
	artifacts, ipxe, outside := filepath.Join(dir, "artifacts"), filepath.Join(dir, "ipxe"), filepath.Join(dir, "outside")
	for _, d := range []string{artifacts, filepath.Join(artifacts, "nested"), ipxe, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, text string) {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(outside, "secret"), "SECRET\n")
	write(filepath.Join(outside, "loader.efi"), "LOADER\n")
	write(filepath.Join(artifacts, "kernel"), "KERNEL\n")
	for _, link := range []string{filepath.Join(artifacts, "top-link"), filepath.Join(artifacts, "nested", "link")} {
		if err := os.Symlink(filepath.Join(outside, "secret"), link); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(outside, "loader.efi"), filepath.Join(ipxe, "ipxe.efi")); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "drover.db")
	if out, err := exec.Command(droverBin, "--db", db, "apply", "--yes", "../../examples/lab").CombinedOutput(); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	srv := serveLoopback(t, db, "--artifacts", artifacts, "--ipxe-dir", ipxe)
	host, port, _ := strings.Cut(srv.tftp, ":")

	tftp := func(name string) (string, bool) {
		out := filepath.Join(dir, "got")
		os.Remove(out)
		err := exec.Command("atftp", "-g", "-r", name, "-l", out, host, port).Run()
		b, _ := os.ReadFile(out)
		return string(b), err == nil
	}
	http := func(path string) (string, bool) {
		out, err := exec.Command("curl", "-sf", "http://"+srv.http+path).Output()
		return string(out), err == nil
	}
	cases := []struct {
		name, tftp, http, want string // want "" = refused
	}{
		{"a file in --artifacts", "kernel", "/artifacts/kernel", "KERNEL\n"},
		{"a top-level link out of --artifacts", "top-link", "/artifacts/top-link", ""},
		{"a nested link out of --artifacts", "nested/link", "/artifacts/nested/link", ""},
		{"a top-level link in --ipxe-dir", "ipxe.efi", "/ipxe/ipxe.efi", "LOADER\n"},
		{"a path out of the root", "../outside/secret", "/artifacts/../outside/secret", ""},
	}
	for _, tc := range cases {
		for proto, get := range map[string]func() (string, bool){
			"tftp": func() (string, bool) { return tftp(tc.tftp) },
			"http": func() (string, bool) { return http(tc.http) },
		} {
			got, ok := get()
			if tc.want == "" && (ok || strings.Contains(got, "SECRET")) {
				t.Errorf("%s over %s: served %q, want refused", tc.name, proto, got)
			}
			if tc.want != "" && (!ok || got != tc.want) {
				t.Errorf("%s over %s: got %q (ok %v), want %q", tc.name, proto, got, ok, tc.want)
			}
		}
	}
}
