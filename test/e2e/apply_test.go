package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
)

// TestApplyWhileServing applies a design with the CLI to the database a real
// `drover serve` runs on, while an operator keeps making the server write the
// machine the design changes (maintenance enter and leave through the API).
// The machine must end renamed and needing a reinstall, as the design says,
// and stay so after the server is killed and restarted.
func TestApplyWhileServing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "drover.db")
	design := filepath.Join(dir, "lab")
	copyDir(t, "../../examples/lab", design)

	drover := func(args ...string) (string, error) {
		cmd := exec.Command(droverBin, append([]string{"--db", db}, args...)...)
		cmd.Env = append(os.Environ(), "DROVER_TOKEN_FILE="+filepath.Join(dir, "drover-admin.token"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := drover("apply", "--yes", design); err != nil {
		t.Fatalf("first apply: %v\n%s", err, out)
	}
	// The machine deployed in swp1 (a fixture written before any server runs).
	st, err := store.OpenSQLite(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	err = st.Update(ctx, func(tx store.Tx) error {
		return tx.PutMachine(ctx, &machine.Machine{MAC: "52:54:00:00:e0:01", SlotKey: "p1-tor1/swp1", Name: "lab-compute-01", State: machine.Deployed, StateSince: now, Created: now})
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}

	var srv *loopbackServer
	start := func() { srv = serveLoopback(t, db, "--artifacts", dir, "--ipxe-dir", dir) }
	start()
	server := srv.api

	// A second server on the same database refuses at once and names the first.
	second := exec.Command(droverBin, "--db", db, "serve", "--dhcp-listen", "127.0.0.1:0", "--tftp-listen", "127.0.0.1:0",
		"--http-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp")), "--api-listen", "127.0.0.1:0", "--artifacts", dir, "--ipxe-dir", dir)
	began := time.Now()
	if out, err := second.CombinedOutput(); err == nil || !strings.Contains(string(out), "drover serve (pid ") || time.Since(began) > 10*time.Second {
		t.Fatalf("second server on the same database: %v after %s\n%s", err, time.Since(began).Round(time.Millisecond), out)
	}

	// swp1 gets a variant: lab-compute-01 becomes lab-compute-lvm-01 and needs a reinstall.
	yaml := filepath.Join(design, "lab.yaml")
	b, err := os.ReadFile(yaml)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(b), "- {ports: swp1-swp2, role: compute, ids: 1-2}",
		"- {ports: swp1, role: compute, variant: lvm, ids: 1}\n          - {ports: swp2, role: compute, ids: 2}", 1)
	if changed == string(b) {
		t.Fatal("the lab design no longer has the line this test changes")
	}
	if err := os.WriteFile(yaml, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}

	// The operator's writes run until the apply has returned, and through the
	// window before the server loads the new revision.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ref := "52:54:00:00:e0:01"
			if _, err := drover("--server", server, "maintenance", "enter", ref, "--reason", "disk", "--owner", "ops", "--expires", "1h"); err == nil {
				writes++
			}
			if _, err := drover("--server", server, "maintenance", "leave", ref); err == nil {
				writes++
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	out, err := drover("apply", "--yes", "--actor", "alice", design)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("apply while serving: %v\n%s", err, out)
	}
	if !strings.Contains(out, "The running drover server has updated the machines") {
		t.Errorf("apply did not report the server carrying out its changes:\n%s", out)
	}
	if writes < 4 {
		t.Fatalf("only %d operator writes ran during the apply", writes)
	}
	check := func(when string) {
		t.Helper()
		out, err := drover("show", "-o", "json", "52:54:00:00:e0:01")
		if err != nil {
			t.Fatalf("show %s: %v\n%s", when, err, out)
		}
		var s struct {
			Machine machine.Machine `json:"machine"`
		}
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatal(err)
		}
		if s.Machine.Name != "lab-compute-lvm-01" || !s.Machine.NeedsReinstall {
			t.Fatalf("%s (%d operator writes): name %q, needs reinstall %v; want lab-compute-lvm-01, true", when, writes, s.Machine.Name, s.Machine.NeedsReinstall)
		}
	}
	check("after the apply")
	// More writes after the server has the revision.
	for _, action := range [][]string{{"enter", "--reason", "disk", "--owner", "ops", "--expires", "1h"}, {"leave"}} {
		if out, err := drover(append([]string{"--server", server, "maintenance", action[0], "lab-compute-lvm-01"}, action[1:]...)...); err != nil {
			t.Fatalf("maintenance %s: %v\n%s", action[0], err, out)
		}
	}
	check("after more writes")
	srv.cmd.Process.Signal(syscall.SIGKILL)
	srv.cmd.Wait()
	start()
	check("after kill -9 and restart")
}

// loopbackServer is a `drover serve` on loopback ports, for tests that need
// no namespaces.
type loopbackServer struct {
	cmd             *exec.Cmd
	api, http, tftp string
}

// serveLoopback starts drover serve on db with free loopback ports and waits
// until its API answers; the process is killed when the test ends.
func serveLoopback(t *testing.T, db string, args ...string) *loopbackServer {
	t.Helper()
	s := &loopbackServer{
		api:  fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp")),
		http: fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp")),
		tftp: fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp")),
	}
	s.cmd = exec.Command(droverBin, append([]string{"--db", db, "serve", "--dhcp-listen", "127.0.0.1:0", "--tftp-listen", s.tftp,
		"--http-listen", s.http, "--api-listen", s.api}, args...)...)
	logf, err := os.OpenFile(db+".serve.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill(); s.cmd.Wait() })
	s.api = "http://" + s.api
	waitFor(t, "drover serve's API", 20*time.Second, func() bool {
		if s.cmd.ProcessState != nil {
			b, _ := os.ReadFile(db + ".serve.log")
			t.Fatalf("drover serve exited:\n%s", b)
		}
		resp, err := http.Get("http://" + s.http + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, info.Mode())
	})
	if err != nil {
		t.Fatal(err)
	}
}
