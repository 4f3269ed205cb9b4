package events

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
)

// transitions writes a machine and n transitions of it, as the fleet does.
func transitions(t *testing.T, st *store.DB, m *machine.Machine, states ...machine.State) {
	t.Helper()
	ctx := context.Background()
	err := st.Update(ctx, func(tx store.Tx) error {
		from := m.State
		m.State = states[len(states)-1]
		if err := tx.PutMachine(ctx, m); err != nil {
			return err
		}
		for _, to := range states {
			if err := tx.AddEntries(ctx, &machine.Entry{MachineID: m.ID, At: time.Now(), Actor: "test", Kind: machine.KindTransition, From: from, To: to}); err != nil {
				return err
			}
			from = to
		}
		// Not a transition: never delivered.
		return tx.AddEntries(ctx, &machine.Entry{MachineID: m.ID, At: time.Now(), Actor: "test", Kind: machine.KindDHCPAck})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// receiver is a webhook endpoint that fails its first few calls.
type receiver struct {
	mu       sync.Mutex
	failures int
	secret   []byte
	got      []Event
	badSigs  int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.Header.Get("X-Drover-Signature-256") != Signature(r.secret, body) {
		r.badSigs++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if r.failures > 0 {
		r.failures--
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var e Event
	json.Unmarshal(body, &e)
	if len(r.got) > 0 && r.got[len(r.got)-1].ID == e.ID {
		return // a receiver dedupes by id
	}
	r.got = append(r.got, e)
}

func (r *receiver) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.got...)
}

func TestWebhookDeliversEveryTransitionInOrderThroughFailuresAndRestarts(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "drover.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := &machine.Machine{MAC: "52:54:00:00:00:01", Name: "lab-compute-01", State: machine.Ready, StateSince: time.Now(), Created: time.Now()}
	transitions(t, st, m, machine.Ready) // before the webhook existed: not delivered

	rcv := &receiver{failures: 3, secret: []byte("0123456789abcdef0123")}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	hook := &Webhook{URL: srv.URL, Secret: rcv.secret}
	start := func() context.CancelFunc {
		cctx, cancel := context.WithCancel(ctx)
		d := New(Config{Source: st, Sinks: []Sink{hook}, Poll: 10 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, Log: slog.New(slog.DiscardHandler)})
		done := make(chan struct{})
		go func() { d.Run(cctx); close(done) }()
		return func() { cancel(); <-done }
	}
	stop := start()
	// The cursor starts at the newest entry once the consumer first runs.
	waitFor(t, func() bool { c, _ := st.EventCursor(ctx, hook.Name()); return c > 0 })
	transitions(t, st, m, machine.Deploying, machine.Deployed)
	waitFor(t, func() bool { return len(rcv.events()) == 2 })
	stop()

	// Events written while drover is down are delivered when it is back.
	transitions(t, st, m, machine.Maintenance)
	stop = start()
	defer stop()
	waitFor(t, func() bool { return len(rcv.events()) == 3 })
	got := rcv.events()
	want := []machine.State{machine.Deploying, machine.Deployed, machine.Maintenance}
	for i, e := range got {
		if e.To != want[i] || e.Machine.Name != "lab-compute-01" || e.Type != "transition" || (i > 0 && e.ID <= got[i-1].ID) {
			t.Errorf("event %d: %+v, want to %s in id order", i, e, want[i])
		}
	}
	if rcv.badSigs != 0 {
		t.Errorf("%d deliveries with a bad signature", rcv.badSigs)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSignature(t *testing.T) {
	// RFC 4231 test case 2.
	if got := Signature([]byte("Jefe"), []byte("what do ya want for nothing?")); got != "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" {
		t.Errorf("got %s", got)
	}
}
