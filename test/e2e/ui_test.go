package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"golang.org/x/sys/unix"

	"github.com/drover/drover/internal/zone"
)

// forward serves a loopback port of this namespace by connecting, for each
// client, to addr inside the namespace ns (where drover's operator listener
// is), so that a browser on this side reaches it.
func forward(t *testing.T, ns, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := dialInNS(ns, addr)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// dialInNS opens a TCP connection from inside a network namespace: the
// socket belongs to the namespace its thread was in when it was made.
func dialInNS(ns, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, err
	}
	defer self.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, err
	}
	c, dialErr := net.Dial("tcp", addr)
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		panic(fmt.Sprintf("cannot return to the test's network namespace: %v", err)) // the thread would be wrong for good
	}
	return c, dialErr
}

// browser is a headless Chromium (its own profile, so its own cookies).
type browser struct {
	t   *testing.T
	ctx context.Context
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	// chromedp waits 20 s for Chromium's debugging address; on 2 busy
	// cores (the full suite, a QEMU lab) Chromium once took longer to start.
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]), chromedp.ExecPath("chromium"), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.WSURLReadTimeout(90*time.Second))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// cdproto lags Chromium's newest enum values; those events are not needed here.
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithErrorf(func(string, ...any) {}))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The browser lives as long as the context of the first Run: start it on this one.
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// Every action is confirmed in a dialog: accept them.
	chromedp.ListenTarget(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			go chromedp.Run(ctx, page.HandleJavaScriptDialog(true))
		}
	})
	return &browser{t: t, ctx: ctx}
}

func (b *browser) run(what string, actions ...chromedp.Action) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) login(base, token string) {
	b.t.Helper()
	b.run("log in", chromedp.Navigate(base+"/login"), chromedp.WaitVisible("#token", chromedp.ByID),
		chromedp.SendKeys("#token", token, chromedp.ByID), chromedp.Click("#login", chromedp.ByID), chromedp.WaitVisible("#logout", chromedp.ByID))
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	var png []byte
	b.run("screenshot "+name, chromedp.FullScreenshot(&png, 100))
	dir := filepath.Join("..", "..", "docs", "ui")
	must(b.t, os.MkdirAll(dir, 0o755))
	must(b.t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
}

func TestWebUI(t *testing.T) {
	require(t, map[string]string{"ip": "iproute2", "dhclient": "isc-dhcp-client", "dhcrelay": "isc-dhcp-relay", "curl": "curl", "chromium": "chromium"})
	tp := newTopo(t)
	base := forward(t, tp.net.NS("srv"), "127.0.0.1:9090")
	admin := filepath.Join(filepath.Dir(tp.db), "drover-admin.token")
	token := func(name, role string) string {
		out, err := exec.Command("ip", "netns", "exec", tp.net.NS("srv"), droverBin, "--server", "http://127.0.0.1:9090", "--token-file", admin,
			"tokens", "create", name, "--role", role).Output()
		if err != nil {
			t.Fatalf("tokens create %s: %v", name, err)
		}
		return strings.TrimSpace(strings.Split(string(out), "\n")[0])
	}
	operator, viewer := token("olga", "operator"), token("victor", "viewer")

	// A machine on c22 (e2e-storage-02) starts installing.
	l, err := tp.dhclient("c22")
	must(t, err)
	code, script := tp.curl("c22", l.File)
	if code != 200 || !strings.Contains(script, "drover.token=") {
		t.Fatalf("script %d:\n%s", code, script)
	}
	installToken, url := between(script, "drover.token=", " "), between(script, "drover.url=", " ")

	op := newBrowser(t)
	op.login(base, operator)
	var zonesText string
	op.run("zones page", chromedp.Text("main", &zonesText, chromedp.ByQuery))
	if !strings.Contains(zonesText, "e2e") || !strings.Contains(zonesText, "deploying") {
		t.Errorf("zones page:\n%s", zonesText)
	}
	op.screenshot("zones.png")

	t.Run("the pod page shows every port of the design in order", func(t *testing.T) {
		d, err := zone.Load(tp.design)
		must(t, err)
		var want []string
		for _, sw := range d.Zone("e2e").Pods[0].Switches {
			want = append(want, sw.PortNames()...)
		}
		var got []string
		op.run("pod page", chromedp.Navigate(base+"/zones/e2e/pods/p1"), chromedp.WaitVisible("#rack", chromedp.ByID),
			chromedp.Evaluate(`Array.from(document.querySelectorAll('#rack .pname')).map(e => e.textContent)`, &got))
		if !slices.Equal(got, want) {
			t.Errorf("ports %v, want %v", got, want)
		}
	})

	t.Run("a box changes colour within a second of the phone-home, without a reload", func(t *testing.T) {
		const box = `document.querySelector('a[data-slot="p1-tor2/swp2"]')`
		var state string
		op.run("box", chromedp.Evaluate(box+`.dataset.state`, &state))
		if state != "deploying" {
			t.Fatalf("box state %q before the phone-home", state)
		}
		op.run("mark the page", chromedp.Evaluate(`window.notReloaded = true`, nil))
		if code, b := tp.curl("c22", "-X", "POST", "-d", "status=installed", url+"/phone-home?token="+installToken); code != 200 {
			t.Fatalf("phone-home %d %s", code, b)
		}
		var class string
		var same bool
		ctx, cancel := context.WithTimeout(op.ctx, time.Second)
		defer cancel()
		err := chromedp.Run(ctx, chromedp.Poll(box+`.dataset.state === "deployed"`, nil, chromedp.WithPollingInterval(20*time.Millisecond)))
		if err != nil {
			t.Fatalf("the box did not turn deployed within a second: %v", err)
		}
		op.run("box", chromedp.Evaluate(box+`.className`, &class), chromedp.Evaluate(`window.notReloaded === true`, &same))
		if !strings.Contains(class, "st-deployed") || !same {
			t.Errorf("class %q, same page %v", class, same)
		}
		op.screenshot("pod.png")
	})

	t.Run("an operator puts a machine into maintenance and the audit log shows it", func(t *testing.T) {
		var flash, audit string
		op.run("maintenance", chromedp.Navigate(base+"/machines/e2e-storage-02"), chromedp.WaitVisible("#timeline", chromedp.ByID))
		op.screenshot("machine.png")
		op.run("maintenance",
			chromedp.SendKeys(`form[action$="/maintenance-enter"] input[name=reason]`, "fan replacement", chromedp.ByQuery),
			chromedp.Click("#act-maintenance-enter", chromedp.ByID),
			chromedp.WaitVisible(".flash", chromedp.ByQuery), chromedp.Text(".flash", &flash, chromedp.ByQuery),
			chromedp.Navigate(base+"/audit?action=maintenance-enter"), chromedp.Text("#audit", &audit, chromedp.ByID))
		if !strings.Contains(flash, "maintenance-enter done") || !strings.Contains(audit, "olga") || !strings.Contains(audit, "e2e-storage-02") {
			t.Errorf("flash %q, audit:\n%s", flash, audit)
		}
	})

	t.Run("a viewer sees no action buttons and a forged POST is refused", func(t *testing.T) {
		v := newBrowser(t)
		v.login(base, viewer)
		var buttons int
		var status int
		v.run("viewer", chromedp.Navigate(base+"/machines/e2e-storage-02"), chromedp.WaitVisible("#timeline", chromedp.ByID),
			chromedp.Evaluate(`document.querySelectorAll('[id^="act-"]').length`, &buttons),
			chromedp.Evaluate(`(async () => {
				const csrf = document.querySelector('input[name=csrf]').value;
				const r = await fetch(location.pathname + '/retire', {method: 'POST', body: new URLSearchParams({csrf})});
				return r.status; })()`, &status, func(p *cdpruntime.EvaluateParams) *cdpruntime.EvaluateParams { return p.WithAwaitPromise(true) }))
		if buttons != 0 || status != 403 {
			t.Errorf("viewer: %d action buttons, forged retire answered %d", buttons, status)
		}
	})

	t.Run("logout ends the session", func(t *testing.T) {
		var loc string
		op.run("logout", chromedp.Navigate(base+"/"), chromedp.WaitVisible("#logout", chromedp.ByID), chromedp.Click("#logout", chromedp.ByID),
			chromedp.WaitVisible("#token", chromedp.ByID), chromedp.Navigate(base+"/design"), chromedp.WaitVisible("#token", chromedp.ByID),
			chromedp.Location(&loc))
		if !strings.Contains(loc, "/login") {
			t.Errorf("after logout, /design is at %s", loc)
		}
	})
}
