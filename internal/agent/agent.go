// Package agent is the install agent that runs on a machine from drover's
// install initrd: it brings up the network, fetches its plan with its
// one-time token, writes the profile's OS image to disk (checksummed,
// resumable), adds the machine's cloud-init seed, reports its hardware and
// LLDP neighbours, and reboots into the installed system.
package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"time"

	"github.com/drover/drover/internal/install"
)

// Config configures one run of the agent.
type Config struct {
	Server  string // drover's machine HTTP base URL
	Token   string // the one-time install token
	Name    string // the slot's name, for logs
	BootMAC string // the NIC the machine network-booted from, if known
	// LLDPWait is how long to listen for LLDP neighbours (it overlaps the
	// image download). Switches send every 30 s by default.
	LLDPWait time.Duration
	HTTP     *http.Client
	Log      *slog.Logger
}

// Run installs the machine. It returns nil once the machine is installed
// and drover knows it; the caller reboots.
func Run(ctx context.Context, cfg Config) error {
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 0}
	}
	if cfg.LLDPWait == 0 {
		cfg.LLDPWait = 35 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	nics, err := NICs()
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	l, err := DHCP(dctx, nics, cfg.BootMAC)
	cancel()
	if err != nil {
		return err
	}
	cfg.Log.Info("network up", "interface", l.Interface, "address", l.Address.String())
	neighbours := make(chan []install.Neighbour, 1)
	go func() { neighbours <- ListenLLDP(ctx, nics, cfg.LLDPWait) }()

	r := &reporter{cfg: cfg}
	r.post(ctx, "progress", fmt.Sprintf("agent: network up, %s on %s", l.Address.String(), l.Interface), nil)
	plan, err := r.plan(ctx)
	if err != nil {
		return r.fail(ctx, err)
	}
	if plan.Image != nil {
		err = installImage(ctx, cfg, r, plan)
	} else {
		err = runScript(ctx, cfg, plan)
	}
	if err != nil {
		return r.fail(ctx, err)
	}
	facts := Facts(nics, <-neighbours)
	msg := "installed by the drover agent"
	if plan.Image != nil {
		msg = fmt.Sprintf("%s %s written to disk; rebooting into it", plan.Image.Name, plan.Image.Version)
	}
	if err := r.post(ctx, "installed", msg, facts); err != nil {
		return err
	}
	return nil
}

func installImage(ctx context.Context, cfg Config, r *reporter, plan install.Plan) error {
	img := *plan.Image
	disks := Disks()
	if len(disks) == 0 {
		return errors.New("the machine has no disk to install on")
	}
	target := disks[0]
	f, err := os.OpenFile(target.Path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", target.Path, err)
	}
	d := &fileDisk{File: f, size: target.Bytes}
	start := time.Now()
	r.post(ctx, "progress", fmt.Sprintf("agent: writing %s %s (%s) to %s (%s)", img.Name, img.Version, humanBytes(img.Size), target.Name, humanBytes(target.Bytes)), nil)
	n, err := WriteImage(ctx, cfg.HTTP, img, d, 10, func(done, total int64) {
		r.post(ctx, "progress", fmt.Sprintf("agent: image %s of %s (%d%%)", humanBytes(done), humanBytes(total), done*100/max(total, 1)), nil)
	})
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	r.post(ctx, "progress", fmt.Sprintf("agent: image verified (sha256 %s…), %s written in %.1f s (%.1f MB/s)", img.SHA256[:12], humanBytes(n), secs, float64(n)/1e6/max(secs, 0.001)), nil)
	if err := WriteSeed(target.Path, plan.Seed); err != nil {
		return err
	}
	r.post(ctx, "progress", "agent: cloud-init seed written (partition cidata)", nil)
	return nil
}

// runScript runs the profile's install script, for profiles without an image.
func runScript(ctx context.Context, cfg Config, plan install.Plan) error {
	if plan.Script == "" {
		return errors.New("the plan has neither an image nor an install script")
	}
	resp, err := get(ctx, cfg.HTTP, plan.Script, cfg.Token)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "sh", "-s")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(resp), &out, &out
	if err := cmd.Run(); err != nil {
		last := bytes.TrimSpace(out.Bytes())
		if i := bytes.LastIndexByte(last, '\n'); i >= 0 {
			last = last[i+1:]
		}
		return fmt.Errorf("install script failed: %v: %s", err, last)
	}
	return nil
}

func get(ctx context.Context, client *http.Client, u, token string) ([]byte, error) {
	var last error
	for try := 0; try < 30; try++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case rerr != nil:
				err = rerr
			case resp.StatusCode == http.StatusOK:
				return b, nil
			case resp.StatusCode < 500:
				return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, bytes.TrimSpace(b))
			default:
				err = fmt.Errorf("GET %s: %s", u, resp.Status)
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	return nil, last
}

// reporter talks to drover's phone-home endpoint.
type reporter struct{ cfg Config }

func (r *reporter) plan(ctx context.Context) (install.Plan, error) {
	b, err := get(ctx, r.cfg.HTTP, r.cfg.Server+"/agent/plan", r.cfg.Token)
	if err != nil {
		return install.Plan{}, fmt.Errorf("fetch the install plan: %w", err)
	}
	var p install.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return install.Plan{}, fmt.Errorf("install plan: %w", err)
	}
	return p, nil
}

// post sends a report, retrying while drover is unreachable (a server
// restart must not fail an install).
func (r *reporter) post(ctx context.Context, status, message string, facts map[string]any) error {
	r.cfg.Log.Info(message, "status", status)
	body, _ := json.Marshal(map[string]any{"status": status, "message": message, "facts": facts})
	u := r.cfg.Server + "/phone-home?token=" + url.QueryEscape(r.cfg.Token)
	var last error
	for try := 0; try < 60; try++ {
		resp, err := r.cfg.HTTP.Post(u, "application/json", bytes.NewReader(body))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			if resp.StatusCode < 500 {
				return fmt.Errorf("phone-home %s: %s", status, resp.Status)
			}
			err = fmt.Errorf("phone-home %s: %s", status, resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	return last
}

func (r *reporter) fail(ctx context.Context, err error) error {
	r.post(ctx, "failed", err.Error(), nil)
	return err
}

// fileDisk is a block device (or a file) as a Disk.
type fileDisk struct {
	*os.File
	size int64
}

func (d *fileDisk) Size() int64 { return d.size }
