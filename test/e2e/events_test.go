package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/internal/events"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
)

// TestEvents puts a deployed machine in maintenance and takes it out through
// drover serve: a real Alertmanager gets a silence for it (reason, owner,
// expiry) that is expired when it leaves, and a webhook receives both
// transitions, signed.
func TestEvents(t *testing.T) {
	require(t, map[string]string{"prometheus-alertmanager": "prometheus-alertmanager"})
	dir := t.TempDir()
	db := filepath.Join(dir, "drover.db")
	if out, err := exec.Command(droverBin, "--db", db, "apply", "--yes", "../../examples/lab").CombinedOutput(); err != nil {
		t.Fatalf("apply: %v %s", err, out)
	}
	// A deployed machine in lab-compute-01's slot, as the fleet would have written it.
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, db)
	must(t, err)
	now := time.Now()
	must(t, st.Update(ctx, func(tx store.Tx) error {
		return tx.PutMachine(ctx, &machine.Machine{MAC: "52:54:00:77:01:01", SlotKey: "p1-tor1/swp1", Name: "lab-compute-01", State: machine.Deployed, StateSince: now, Created: now})
	}))
	must(t, st.Close())

	// A real Alertmanager on loopback.
	amDir := filepath.Join(dir, "alertmanager")
	must(t, os.MkdirAll(amDir, 0o755))
	must(t, os.WriteFile(filepath.Join(amDir, "alertmanager.yml"), []byte("route: {receiver: none}\nreceivers: [{name: none}]\n"), 0o644))
	am := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	amCmd := exec.Command("prometheus-alertmanager", "--config.file="+filepath.Join(amDir, "alertmanager.yml"), "--storage.path="+amDir,
		"--web.listen-address="+am, "--cluster.listen-address=")
	amLog, err := os.Create(filepath.Join(amDir, "log"))
	must(t, err)
	amCmd.Stdout, amCmd.Stderr = amLog, amLog
	must(t, amCmd.Start())
	t.Cleanup(func() { amCmd.Process.Kill(); amCmd.Wait(); amLog.Close() })
	type silence struct {
		ID        string `json:"id"`
		CreatedBy string `json:"createdBy"`
		Comment   string `json:"comment"`
		EndsAt    time.Time
		Matchers  []struct{ Name, Value string }
		Status    struct{ State string }
	}
	silences := func() []silence {
		resp, err := http.Get("http://" + am + "/api/v2/silences")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var ss []silence
		json.NewDecoder(resp.Body).Decode(&ss)
		return ss
	}
	waitFor(t, "Alertmanager to answer", 20*time.Second, func() bool {
		resp, err := http.Get("http://" + am + "/-/ready")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})

	// A webhook receiver that checks the signature.
	secret := "e2e-webhook-secret-0123456789"
	secretFile := filepath.Join(dir, "webhook.secret")
	must(t, os.WriteFile(secretFile, []byte(secret+"\n"), 0o600))
	var mu sync.Mutex
	var got []events.Event
	badSig := 0
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("X-Drover-Signature-256") != events.Signature([]byte(secret), body) {
			badSig++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var e events.Event
		must(t, json.Unmarshal(body, &e))
		got = append(got, e)
	}))
	defer rcv.Close()
	received := func() []events.Event {
		mu.Lock()
		defer mu.Unlock()
		return append([]events.Event(nil), got...)
	}

	srv := serveLoopback(t, db, "--alertmanager", "http://"+am, "--webhook", rcv.URL, "--webhook-secret-file", secretFile)
	drover := func(args ...string) {
		t.Helper()
		cmd := exec.Command(droverBin, append([]string{"--server", srv.api, "--token-file", filepath.Join(dir, "drover-admin.token")}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("drover %v: %v %s", args, err, out)
		}
	}

	drover("maintenance", "enter", "lab-compute-01", "--reason", "disk swap", "--owner", "alice", "--expires", "4h")
	var active silence
	waitFor(t, "a silence for lab-compute-01", 20*time.Second, func() bool {
		for _, s := range silences() {
			if s.Status.State == "active" {
				active = s
				return true
			}
		}
		return false
	})
	if len(active.Matchers) != 1 || active.Matchers[0].Name != "name" || active.Matchers[0].Value != "lab-compute-01" ||
		active.CreatedBy != "alice" || !strings.Contains(active.Comment, "disk swap") {
		t.Errorf("silence %+v", active)
	}
	if d := time.Until(active.EndsAt); d < 3*time.Hour+50*time.Minute || d > 4*time.Hour+time.Minute {
		t.Errorf("silence ends in %s, want the maintenance's 4h", d)
	}

	drover("maintenance", "leave", "lab-compute-01")
	waitFor(t, "the silence to be expired", 20*time.Second, func() bool {
		for _, s := range silences() {
			if s.ID == active.ID {
				return s.Status.State == "expired"
			}
		}
		return false
	})
	waitFor(t, "both transitions at the webhook", 20*time.Second, func() bool { return len(received()) >= 2 })
	evs := received()
	if evs[0].To != machine.Maintenance || evs[0].Machine.Name != "lab-compute-01" || evs[0].Machine.MAC != "52:54:00:77:01:01" ||
		evs[1].From != machine.Maintenance || evs[1].To != machine.Deployed || evs[1].ID <= evs[0].ID {
		t.Errorf("webhook events: %+v", evs)
	}
	if badSig != 0 {
		t.Errorf("%d deliveries with a bad signature", badSig)
	}
}
