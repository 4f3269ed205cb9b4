package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/drover/drover/internal/api"
	"github.com/drover/drover/internal/boot"
	"github.com/drover/drover/internal/cluster"
	"github.com/drover/drover/internal/dhcp"
	"github.com/drover/drover/internal/events"
	"github.com/drover/drover/internal/gitops"
	"github.com/drover/drover/internal/httpserve"
	"github.com/drover/drover/internal/monitoring"
	"github.com/drover/drover/internal/nameserver"
	"github.com/drover/drover/internal/power"
	"github.com/drover/drover/internal/serve"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/tftp"
)

type serveFlags struct {
	config          string
	design          string
	dhcpListen      string
	dhcpInterfaces  []string
	serverIP        string
	dhcpWorkers     int
	dhcpClientRate  float64
	dhcpQueue       int
	dhcpReadBuffer  string
	biosFile        string
	uefiFile        string
	tftpListen      string
	tftpRoots       []string
	tftpMaxWindow   int
	tftpMaxBlock    int
	httpListen      string
	httpHost        string
	artifacts       string
	ipxeDir         string
	discoveryKernel string
	discoveryInitrd string
	discoveryArgs   string
	logLevel        string
	logFormat       string
	apiListen       string
	apiCert         string
	apiKey          string
	adminTokenFile  string
	stateDir        string
	standby         bool
	shared          bool
	agents          bool
	serverName      string
	advertiseAPI    string
	designDir       string
	pprofListen     string
	memoryLimit     string
	heapFloor       string
	powerSecrets    string
	prometheus      string
	dnsListen       string
	dnsKey          string
	webhooks        []string
	webhookSecret   string
	alertmanager    string
	follow          string
	branch          string
	followPath      string
	followInterval  time.Duration
}

func newServeCommand(g *globals) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve DHCP, TFTP and HTTP boot for the applied design",
		Long: `serve answers machines: DHCP (with option 82 identity), TFTP for iPXE, and HTTP
for iPXE scripts, artifacts, install templates and phone-home. It serves the
design applied in the database and follows new revisions as they are applied;
--design applies a design at start.

Every flag can also come from the environment (DROVER_ and the flag name in
upper case with underscores: --dhcp-listen is DROVER_DHCP_LISTEN) or from a
YAML file given with --config whose keys are flag names. Flags win over the
environment, which wins over the file.`,
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := resolveSettings(cmd.Flags(), f.config, g.env.getenv); err != nil {
				return &usageError{err}
			}
			return runServe(cmd, g, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "YAML file of settings (keys are flag names)")
	fl.StringVar(&f.design, "design", "", "apply this design file or directory at start")
	fl.StringVar(&f.follow, "follow", "", "follow the design in this git repository (a local path or a URL): apply new commits to auto_apply zones, the rest after `drover approve`")
	fl.StringVar(&f.branch, "branch", "main", "the branch --follow follows")
	fl.StringVar(&f.followPath, "follow-path", "", "the design's directory inside the followed repository (default: its root)")
	fl.DurationVar(&f.followInterval, "follow-interval", 30*time.Second, "how often the followed repository is fetched")
	fl.StringVar(&f.dhcpListen, "dhcp-listen", "0.0.0.0:67", "DHCP UDP address")
	fl.StringSliceVar(&f.dhcpInterfaces, "dhcp-interface", nil, "serve DHCP only on these interfaces (repeatable; default all)")
	fl.StringVar(&f.serverIP, "server-ip", "", "server identifier and next-server (default: the address each request reached)")
	fl.IntVar(&f.dhcpWorkers, "dhcp-workers", 64, "DHCP requests handled at once")
	fl.Float64Var(&f.dhcpClientRate, "dhcp-client-rate", 10, "DHCP requests per second allowed per client")
	fl.IntVar(&f.dhcpQueue, "dhcp-queue", 65536, "DHCP requests waiting for a worker; beyond it the least urgent are dropped")
	fl.StringVar(&f.dhcpReadBuffer, "dhcp-read-buffer", "8MiB", "DHCP socket receive buffer (past net.core.rmem_max with CAP_NET_ADMIN)")
	fl.StringVar(&f.biosFile, "bios-boot-file", "undionly.kpxe", "TFTP file for BIOS PXE clients")
	fl.StringVar(&f.uefiFile, "uefi-boot-file", "ipxe.efi", "TFTP file for UEFI PXE clients (snponly.efi also works)")
	fl.StringVar(&f.tftpListen, "tftp-listen", "0.0.0.0:69", "TFTP UDP address")
	fl.StringSliceVar(&f.tftpRoots, "tftp-root", nil, "TFTP directories searched in order (default: --ipxe-dir, then --artifacts)")
	fl.IntVar(&f.tftpMaxWindow, "tftp-max-window", 64, "largest TFTP windowsize granted (RFC 7440)")
	fl.IntVar(&f.tftpMaxBlock, "tftp-max-blksize", 1468, "largest TFTP blksize granted")
	fl.StringVar(&f.httpListen, "http-listen", "0.0.0.0:8080", "machine HTTP address (separate from the operator API)")
	fl.StringVar(&f.httpHost, "http-host", "", "host name or address machines use for HTTP (default: the server address they reached)")
	fl.StringVar(&f.artifacts, "artifacts", "artifacts", "directory of kernels, initrds and images")
	fl.StringVar(&f.ipxeDir, "ipxe-dir", "/usr/lib/ipxe", "directory of iPXE binaries (Debian package ipxe)")
	fl.StringVar(&f.discoveryKernel, "discovery-kernel", "", "artifact path of the kernel unknown machines boot (default: none; they boot nothing)")
	fl.StringVar(&f.discoveryInitrd, "discovery-initrd", "", "artifact path of the discovery initrd")
	fl.StringVar(&f.discoveryArgs, "discovery-args", "", "kernel arguments of the discovery image")
	fl.StringVar(&f.apiListen, "api-listen", "127.0.0.1:9090", "operator API address (REST, metrics)")
	fl.StringVar(&f.apiCert, "api-tls-cert", "", "serve the operator API over TLS with this certificate")
	fl.StringVar(&f.apiKey, "api-tls-key", "", "and this key")
	fl.BoolVar(&f.standby, "standby", false, "with PostgreSQL: when another server is active on the database, wait and take over when it stops or dies (docs/ha.md)")
	fl.BoolVar(&f.shared, "shared", false, "with PostgreSQL: be one of several active servers on the database, which divide its pods between them and take over a dead one's (docs/ha.md)")
	fl.BoolVar(&f.agents, "agents", false, "accept pod agents (drover agent): a pod is handed to its agent when the agent attaches (docs/ha.md)")
	fl.StringVar(&f.serverName, "name", "", "with --shared or --agents: this server's name among the pods' owners (default: host name and process id)")
	fl.StringVar(&f.advertiseAPI, "advertise-api", "", "with --shared: this server's operator API URL, as operators and the other servers reach it (default: from --api-listen)")
	fl.StringVar(&f.stateDir, "state-dir", "", "this server's own files: the first admin token, uploaded designs, the git follower's checkout (default: the SQLite file's directory; with PostgreSQL, the working directory)")
	fl.StringVar(&f.adminTokenFile, "admin-token-file", "", "where the first admin token is written on first start (default: in --state-dir)")
	fl.StringVar(&f.designDir, "design-dir", "", "where designs uploaded through the API are kept (default: in --state-dir)")
	fl.StringVar(&f.memoryLimit, "memory-limit", "auto", "soft limit for drover's Go memory, e.g. 450MiB: the heap is collected harder as it nears it (auto: GOMEMLIMIT if set, else 90% of the cgroup's memory limit if any; off: none)")
	fl.StringVar(&f.heapFloor, "heap-floor", defaultHeapFloor, "let the heap grow by at least this much past what is live before a garbage collection (off: Go's default, the heap doubling; ignored when GOGC is set)")
	fl.StringVar(&f.pprofListen, "pprof-listen", "", "serve Go profiles (/debug/pprof/) on this address; off by default, for diagnosis only")
	fl.StringVar(&f.prometheus, "prometheus", "", "URL of the Prometheus that scrapes the machines (e.g. http://prometheus:9090): `drover monitoring check` asks it which machines are up")
	fl.StringVar(&f.dnsListen, "dns", "", "serve authoritative DNS for the design's domains and reverse zones on this address (UDP and TCP), e.g. :53; off by default")
	fl.StringVar(&f.dnsKey, "dns-tsig-key", "", "TSIG key file in BIND's format (tsig-keygen NAME > FILE): secondaries must sign zone transfers with it, NOTIFY is signed with it; without it transfers are refused")
	fl.StringArrayVar(&f.webhooks, "webhook", nil, "POST every machine state transition as JSON to this URL, signed with --webhook-secret-file (repeatable; docs/handoff.md#events)")
	fl.StringVar(&f.webhookSecret, "webhook-secret-file", "", "file holding the shared secret webhooks are signed with (HMAC-SHA256), mode 0600")
	fl.StringVar(&f.alertmanager, "alertmanager", "", "URL of the Alertmanager to silence a machine's alerts in while it is in maintenance (e.g. http://alertmanager:9093)")
	fl.StringVar(&f.powerSecrets, "power-secrets", "", "YAML file of BMC credentials per zone and role, mode 0600 (see docs/power.md); without it power actions are refused")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.logFormat, "log-format", "text", "text or json")
	return cmd
}

// resolveSettings fills flags not given on the command line from the
// environment (DROVER_FLAG_NAME) and then from a YAML settings file.
func resolveSettings(fs *pflag.FlagSet, configPath string, getenv func(string) string) error {
	file := map[string]any{}
	if configPath != "" {
		b, err := os.ReadFile(configPath)
		if err != nil {
			return fmt.Errorf("settings file: %w", err)
		}
		if err := yaml.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("settings file %s: %w", configPath, err)
		}
		for k := range file {
			if fs.Lookup(k) == nil || k == "config" {
				return fmt.Errorf("settings file %s: unknown setting %q (settings are flag names, see drover serve --help)", configPath, k)
			}
		}
	}
	var errs []error
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed || fl.Name == "config" {
			return
		}
		env := "DROVER_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		if v := getenv(env); v != "" {
			if err := fs.Set(fl.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", env, err))
			}
			return
		}
		v, ok := file[fl.Name]
		if !ok {
			return
		}
		values := []any{v}
		if list, isList := v.([]any); isList {
			values = list
		}
		for _, item := range values {
			if err := fs.Set(fl.Name, fmt.Sprint(item)); err != nil {
				errs = append(errs, fmt.Errorf("settings file %s: %s: %w", configPath, fl.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

func newLogger(g *globals, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(g.env.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(g.env.stderr, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: use text or json", format)
}

func runServe(cmd *cobra.Command, g *globals, f *serveFlags) error {
	ctx := cmd.Context()
	log, err := newLogger(g, f.logLevel, f.logFormat)
	if err != nil {
		return &usageError{err}
	}
	var serverIP netip.Addr
	if f.serverIP != "" {
		if serverIP, err = netip.ParseAddr(f.serverIP); err != nil || !serverIP.Is4() {
			return &usageError{fmt.Errorf("--server-ip %q is not an IPv4 address", f.serverIP)}
		}
	}
	readBuffer, err := dhcpReadBuffer(f.dhcpReadBuffer)
	if err != nil {
		return &usageError{err}
	}
	if f.dhcpQueue < 1 {
		return &usageError{fmt.Errorf("--dhcp-queue %d: give at least 1", f.dhcpQueue)}
	}
	_, httpPort, err := net.SplitHostPort(f.httpListen)
	if err != nil {
		return &usageError{fmt.Errorf("--http-listen %q: %w", f.httpListen, err)}
	}
	port, err := strconv.Atoi(httpPort)
	if err != nil || port == 0 {
		return &usageError{fmt.Errorf("--http-listen %q needs a fixed port: machines are told it in DHCP", f.httpListen)}
	}
	roots := f.tftpRoots
	if len(roots) == 0 {
		for _, d := range []string{f.ipxeDir, f.artifacts} {
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				roots = append(roots, d)
			}
		}
	}
	artifacts := f.artifacts
	if st, err := os.Stat(artifacts); err != nil || !st.IsDir() {
		log.Warn("no artifact directory: kernels and initrds cannot be served", "dir", artifacts)
		artifacts = ""
	}

	if (f.apiCert == "") != (f.apiKey == "") {
		return &usageError{errors.New("--api-tls-cert and --api-tls-key go together")}
	}
	dbDir := f.stateDir
	if dbDir == "" {
		dbDir = "."
		if !store.IsPostgresURL(g.db) {
			dbDir = filepath.Dir(g.db)
		}
	}
	if f.adminTokenFile == "" {
		f.adminTokenFile = filepath.Join(dbDir, "drover-admin.token")
	}
	if f.designDir == "" {
		f.designDir = filepath.Join(dbDir, "designs")
	}
	limit, limitFrom, err := memoryLimit(f.memoryLimit, g.env.getenv("GOMEMLIMIT"), os.ReadFile)
	switch {
	case errors.Is(err, errCgroupLimit):
		log.Warn("memory limit", "err", err)
	case err != nil:
		return &usageError{err}
	}
	switch {
	case limitFrom == "off":
		debug.SetMemoryLimit(math.MaxInt64) // also overrides GOMEMLIMIT
	case limit > 0:
		debug.SetMemoryLimit(limit)
	}
	if limitFrom != "" && limitFrom != "off" {
		log.Info("memory limit", "limit_mib", debug.SetMemoryLimit(-1)>>20, "from", limitFrom)
	}
	floor, err := heapFloorSetting(f.heapFloor, g.env.getenv("GOGC"))
	if err != nil {
		return &usageError{err}
	}
	if floor > 0 {
		keepHeapFloor(ctx, floor)
	}
	if f.pprofListen != "" {
		if err := servePprof(ctx, f.pprofListen, log); err != nil {
			return err
		}
	}
	var secrets *power.Secrets
	if f.powerSecrets != "" {
		if secrets, err = power.LoadSecrets(f.powerSecrets); err != nil {
			return err
		}
	}
	start := time.Now()
	st, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	// The writer lock is taken before a design is applied at start, so that the
	// fleet this server starts is the one that carries out its effects.
	if f.standby && !store.IsPostgresURL(g.db) {
		return &usageError{errors.New("--standby needs a PostgreSQL database (--db postgres://...): a standby takes over on another host")}
	}
	var member cluster.Config
	var release func()
	if f.shared || f.agents {
		member = cluster.Config{Name: f.serverName, API: f.advertiseAPI}
		if member.Name == "" {
			host, _ := os.Hostname()
			member.Name = fmt.Sprintf("%s-%d", host, os.Getpid())
		}
		if member.API == "" {
			scheme := "http"
			if f.apiCert != "" {
				scheme = "https"
			}
			member.API = scheme + "://" + f.apiListen
		}
	}
	if f.shared {
		if !store.IsPostgresURL(g.db) {
			return &usageError{errors.New("--shared needs a PostgreSQL database (--db postgres://...): the servers share it")}
		}
		if f.standby {
			return &usageError{errors.New("--shared and --standby exclude each other: a shared server is active beside the others, a standby waits")}
		}
		release, err = st.LockShared("drover serve --shared " + member.Name)
	} else {
		release, err = serve.LockWriter(ctx, st, log, f.standby)
	}
	if err != nil {
		return err
	}
	defer release()
	// A server that loses its lock stops at once: a standby may be taking over.
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	errLost := errors.New("lost the database's writer lock (its PostgreSQL session ended): stopped so as never to write beside the server taking over")
	if lost := st.WriterLost(); lost != nil {
		go func() {
			select {
			case <-lost:
				log.Error(errLost.Error())
				stop(errLost)
			case <-ctx.Done():
			}
		}()
	}
	if f.design != "" && f.follow != "" {
		return &usageError{errors.New("--design and --follow exclude each other: the design comes from one place")}
	}
	if f.design != "" {
		if err := applyAtStart(cmd, g, st, f.design, secrets); err != nil {
			return err
		}
	}
	apiCfg := api.Config{Listen: f.apiListen, TLSCert: f.apiCert, TLSKey: f.apiKey, DesignDir: f.designDir}
	if f.prometheus != "" {
		apiCfg.Monitoring = &monitoring.Prometheus{URL: f.prometheus}
	}
	dnsCfg := nameserver.Config{Addr: f.dnsListen}
	if f.dnsKey != "" {
		if f.dnsListen == "" {
			return &usageError{errors.New("--dns-tsig-key needs --dns")}
		}
		if dnsCfg.Key, err = nameserver.LoadKey(f.dnsKey); err != nil {
			return err
		}
	}
	sinks, err := eventSinks(f)
	if err != nil {
		return err
	}
	err = serve.Run(ctx, serve.Config{
		Store: st, LockHeld: true, Cluster: member, Agents: f.agents, DNS: dnsCfg, EventSinks: sinks,
		DHCP: dhcp.Config{Listen: f.dhcpListen, Interfaces: f.dhcpInterfaces, ServerIP: serverIP,
			Workers: f.dhcpWorkers, ClientRate: f.dhcpClientRate, Queue: f.dhcpQueue, ReadBuffer: readBuffer,
			Handler: &dhcp.Handler{HTTPPort: port, HTTPHost: f.httpHost}},
		BootFiles: dhcp.BootFiles{BIOS: f.biosFile, UEFI: f.uefiFile},
		TFTP:      tftp.Config{Listen: f.tftpListen, Roots: roots, LinkRoot: f.ipxeDir, MaxWindow: f.tftpMaxWindow, MaxBlockSize: f.tftpMaxBlock},
		Boot: boot.Config{Listen: f.httpListen, ArtifactRoot: artifacts, IPXERoot: f.ipxeDir, Catalogue: st,
			Discovery: boot.Discovery{Kernel: f.discoveryKernel, Initrd: f.discoveryInitrd, Args: f.discoveryArgs}},
		API:            apiCfg,
		AdminTokenFile: f.adminTokenFile,
		PowerSecrets:   secrets,
		Follow: gitops.Config{Repo: f.follow, Branch: f.branch, Path: f.followPath, Interval: f.followInterval,
			Dir: filepath.Join(dbDir, "gitops")},
		Log: log,
		Started: func(l serve.Listeners) {
			log.Info("ready", "startup", time.Since(start).Round(time.Millisecond))
		},
	})
	if cause := context.Cause(ctx); errors.Is(cause, errLost) {
		return cause
	}
	return err
}

// eventSinks are the consumers of state transitions the flags name.
func eventSinks(f *serveFlags) ([]events.Sink, error) {
	var sinks []events.Sink
	if len(f.webhooks) > 0 {
		if f.webhookSecret == "" {
			return nil, &usageError{errors.New("--webhook needs --webhook-secret-file: every delivery is signed")}
		}
		fi, err := os.Stat(f.webhookSecret)
		if err != nil {
			return nil, fmt.Errorf("--webhook-secret-file: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("--webhook-secret-file %s is readable by others (mode %#o): chmod 600 it", f.webhookSecret, fi.Mode().Perm())
		}
		b, err := os.ReadFile(f.webhookSecret)
		if err != nil {
			return nil, fmt.Errorf("--webhook-secret-file: %w", err)
		}
		secret := []byte(strings.TrimSpace(string(b)))
		if len(secret) < 16 {
			return nil, fmt.Errorf("--webhook-secret-file %s: the secret is shorter than 16 bytes", f.webhookSecret)
		}
		for _, u := range f.webhooks {
			if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
				return nil, &usageError{fmt.Errorf("--webhook %q is not an http(s) URL", u)}
			}
			sinks = append(sinks, &events.Webhook{URL: u, Secret: secret})
		}
	}
	if f.alertmanager != "" {
		if pu, err := url.Parse(f.alertmanager); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return nil, &usageError{fmt.Errorf("--alertmanager %q is not an http(s) URL", f.alertmanager)}
		}
		sinks = append(sinks, &events.Alertmanager{URL: f.alertmanager})
	}
	return sinks, nil
}

func applyAtStart(cmd *cobra.Command, g *globals, st store.Store, path string, secrets *power.Secrets) error {
	ctx := cmd.Context()
	d, err := loadDesign(path)
	if err != nil {
		return err
	}
	if secrets != nil {
		if err := secrets.Check(d); err != nil {
			return fmt.Errorf("%s needs BMC credentials that %s does not have:\n%w", path, secrets.Path, err)
		}
	}
	if cur, err := st.CurrentRevision(ctx); err == nil && cur.Hash == d.Hash {
		return nil
	}
	rev, p, err := store.Apply(ctx, st, store.ApplyRequest{Design: d, Dir: path, Actor: "serve --design"})
	if err != nil {
		return err
	}
	fmt.Fprintf(g.env.stdout, "Applied revision %d (design %.12s): %d added, %d changed, %d removed.\n", rev.ID, rev.Hash, len(p.Added), len(p.Changed), len(p.Removed))
	return nil
}

func newTextLogger(g *globals) *slog.Logger {
	return slog.New(slog.NewTextHandler(g.env.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// servePprof serves runtime profiles on their own listener, for diagnosis.
func servePprof(ctx context.Context, addr string, log *slog.Logger) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("--pprof-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	log.Warn("serving Go profiles", "addr", ln.Addr())
	go httpserve.Serve(ctx, &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln, "", "")
	return nil
}
