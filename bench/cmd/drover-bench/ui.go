package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/cdproto/performance"
	"github.com/chromedp/chromedp"

	"github.com/drover/drover/internal/api"
	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/secret"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/ui"
	"github.com/drover/drover/internal/zone"
)

// UIReport is the web UI in a real browser under a burst of timeline events.
type UIReport struct {
	EventsPerSec   int     `json:"events_per_second"`
	Seconds        float64 `json:"seconds"`
	EventsWritten  int     `json:"events_written"`
	RowsShown      int     `json:"rows_shown"`
	MainThreadBusy float64 `json:"main_thread_busy_fraction"`
	ScriptSec      float64 `json:"script_seconds"`
	LayoutSec      float64 `json:"layout_seconds"`
	ClickMs        float64 `json:"click_to_scroll_ms"`
}

// benchUI opens a machine's page in headless Chromium while its timeline
// grows by eventsPerSec entries a second, and reads how busy the page's main
// thread was (Chromium's own TaskDuration) and how long a script round trip
// took in the middle of it.
func benchUI(ctx context.Context, e *env) (*UIReport, error) {
	const eventsPerSec, seconds = 1000, 5
	dir := filepath.Join(e.work, "ui")
	os.MkdirAll(dir, 0o755)
	d, err := zone.Load("examples/lab")
	if err != nil {
		return nil, err
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "ui.db"))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if _, err := st.ApplyDesign(ctx, &store.Revision{Hash: d.Hash, AppliedBy: "bench", AppliedAt: time.Now(), Sources: d.Source}, d.Slots, nil); err != nil {
		return nil, err
	}
	now := time.Now()
	err = st.Update(ctx, func(tx store.Tx) error {
		return tx.PutMachine(ctx, &machine.Machine{MAC: "52:54:00:00:00:01", SlotKey: "p1-tor1/swp1", Name: "lab-compute-01", State: machine.Deployed, StateSince: now, Created: now})
	})
	if err != nil {
		return nil, err
	}
	fl, err := fleet.New(ctx, fleet.Config{Store: st})
	if err != nil {
		return nil, err
	}
	fctx, stopFleet := context.WithCancel(ctx)
	defer stopFleet()
	go fl.Run(fctx)
	tok := "drv_" + secret.Hex(32)
	if err := st.CreateToken(ctx, &store.Token{Name: "bench", Role: "viewer", Hash: secret.Hash(tok), Created: time.Now()}, nil); err != nil {
		return nil, err
	}
	web, err := ui.New(ui.Config{Store: st, Fleet: fl, RoleRank: api.RoleRank})
	if err != nil {
		return nil, err
	}
	srv := httptest.NewServer(web)
	defer srv.Close()
	m, err := st.Machine(ctx, "lab-compute-01")
	if err != nil {
		return nil, err
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath("chromium"), chromedp.NoSandbox)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(alloc, chromedp.WithErrorf(func(string, ...any) {}))
	defer cancel()
	if err := chromedp.Run(bctx, performance.Enable(),
		chromedp.Navigate(srv.URL+"/login"), chromedp.SendKeys("#token", tok, chromedp.ByID), chromedp.Click("#login", chromedp.ByID),
		chromedp.WaitVisible("#logout", chromedp.ByID), chromedp.Navigate(srv.URL+"/machines/lab-compute-01"),
		chromedp.WaitVisible("#timeline", chromedp.ByID)); err != nil {
		return nil, fmt.Errorf("browser: %w", err)
	}
	metric := func(name string) (float64, error) {
		var ms []*performance.Metric
		err := chromedp.Run(bctx, chromedp.ActionFunc(func(ctx context.Context) error {
			var err error
			ms, err = performance.GetMetrics().Do(ctx)
			return err
		}))
		if err != nil {
			return 0, err
		}
		for _, m := range ms {
			if m.Name == name {
				return m.Value, nil
			}
		}
		return 0, fmt.Errorf("no metric %s", name)
	}
	read := func() (task, script, layout float64, err error) {
		if task, err = metric("TaskDuration"); err != nil {
			return
		}
		if script, err = metric("ScriptDuration"); err != nil {
			return
		}
		layout, err = metric("LayoutDuration")
		return
	}
	t0, s0, l0, err := read()
	if err != nil {
		return nil, err
	}
	r := &UIReport{EventsPerSec: eventsPerSec}
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var clickMs float64
	for time.Since(start) < seconds*time.Second {
		<-tick.C
		batch := make([]*machine.Entry, eventsPerSec/10)
		for i := range batch {
			batch[i] = &machine.Entry{MachineID: m.ID, At: time.Now(), Actor: "bench", Kind: machine.KindProgress, Reason: fmt.Sprintf("event %d", r.EventsWritten+i)}
		}
		if err := st.Update(ctx, func(tx store.Tx) error { return tx.AddEntries(ctx, batch...) }); err != nil {
			return nil, err
		}
		r.EventsWritten += len(batch)
		if clickMs == 0 && time.Since(start) > seconds*time.Second/2 {
			c0 := time.Now()
			if err := chromedp.Run(bctx, chromedp.Evaluate(`window.scrollTo(0, 200); document.body.offsetHeight`, nil)); err != nil {
				return nil, err
			}
			clickMs = float64(time.Since(c0).Microseconds()) / 1000
		}
	}
	time.Sleep(time.Second) // the last events reach the page
	wall := time.Since(start).Seconds()
	t1, s1, l1, err := read()
	if err != nil {
		return nil, err
	}
	var rows int
	if err := chromedp.Run(bctx, chromedp.Evaluate(`document.querySelectorAll('#timeline tbody tr').length`, &rows)); err != nil {
		return nil, err
	}
	r.Seconds, r.RowsShown, r.ClickMs = wall, rows, clickMs
	r.MainThreadBusy, r.ScriptSec, r.LayoutSec = (t1-t0)/wall, s1-s0, l1-l0
	return r, nil
}

func (u *UIReport) markdown(md *strings.Builder) {
	fmt.Fprintf(md, "## Web UI under a burst of timeline events\n\nA machine's page open in headless Chromium (Debian's) while its timeline grows by %d entries a second for %.0f s (%d written; the page keeps the newest %d rows). From Chromium's own performance metrics:\n\n", u.EventsPerSec, u.Seconds, u.EventsWritten, u.RowsShown)
	fmt.Fprintf(md, "| measure | value | target |\n|---|---|---|\n")
	fmt.Fprintf(md, "| main thread busy (TaskDuration / wall time) | %.1f %% | the page stays responsive |\n", 100*u.MainThreadBusy)
	fmt.Fprintf(md, "| of which script / layout | %.2f s / %.2f s | |\n", u.ScriptSec, u.LayoutSec)
	fmt.Fprintf(md, "| a script round trip (scroll) in the middle of the burst | %.1f ms | |\n\n", u.ClickMs)
}
