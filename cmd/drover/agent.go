package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover/drover/internal/api"
	"github.com/drover/drover/internal/boot"
	"github.com/drover/drover/internal/dhcp"
	"github.com/drover/drover/internal/podagent"
	"github.com/drover/drover/internal/tftp"
)

type agentFlags struct {
	controller, artifactsFrom, tokenFile, pod, state string
	dhcpListen, serverIP, httpListen, httpHost       string
	tftpListen, ipxeDir, biosFile, uefiFile          string
	dhcpInterfaces                                   []string
	every, offline                                   time.Duration
	metricsListen                                    string
	logLevel, logFormat                              string
}

func newAgentCommand(g *globals) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent --controller URL --pod ZONE/POD --token-file FILE --state DIR",
		Short: "Serve DHCP, TFTP and machine HTTP for one pod from a box inside it (a pod agent)",
		Long: `agent serves one pod from a box inside it, so that the pod keeps booting and
installing known machines when the controller is out of reach. The controller
runs drover serve --agents; the agent's token has role agent and names the pod
(drover tokens create NAME --role agent --pod ZONE/POD).

On its first start the agent takes the pod from the controller (the servers stop
answering for it) with a snapshot of its machines, and keeps everything in its
state directory: its database, which also queues what the controller has not
acknowledged yet, and a cache of kernels and initrds fetched from
--artifacts-from. Point the pod's DHCP relays at the agent. See docs/ha.md.`,
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error { return runAgent(cmd, g, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.controller, "controller", "", "the controller's operator API URL (required)")
	fl.StringVar(&f.artifactsFrom, "artifacts-from", "", "the controller's machine HTTP URL, where kernels and initrds missing here are fetched (default: the controller's host, port 8080)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the agent token (required, mode 0600)")
	fl.StringVar(&f.pod, "pod", "", "the pod served, as zone/pod (required; the token's pod)")
	fl.StringVar(&f.state, "state", "/var/lib/drover-agent", "directory of the agent's database and artifact cache")
	fl.StringVar(&f.dhcpListen, "dhcp-listen", "0.0.0.0:67", "DHCP UDP address")
	fl.StringSliceVar(&f.dhcpInterfaces, "dhcp-interface", nil, "serve DHCP only on these interfaces (repeatable; default all)")
	fl.StringVar(&f.serverIP, "server-ip", "", "server identifier and next-server (default: the address each request reached)")
	fl.StringVar(&f.httpListen, "http-listen", "0.0.0.0:8080", "machine HTTP address")
	fl.StringVar(&f.httpHost, "http-host", "", "host name or address machines use for HTTP (default: the agent address they reached)")
	fl.StringVar(&f.tftpListen, "tftp-listen", "0.0.0.0:69", "TFTP UDP address")
	fl.StringVar(&f.ipxeDir, "ipxe-dir", "/usr/lib/ipxe", "directory of iPXE binaries (Debian package ipxe)")
	fl.StringVar(&f.biosFile, "bios-boot-file", "undionly.kpxe", "TFTP file for BIOS PXE clients")
	fl.StringVar(&f.uefiFile, "uefi-boot-file", "ipxe.efi", "TFTP file for UEFI PXE clients")
	fl.DurationVar(&f.every, "report-interval", time.Second, "how often the agent reports to the controller")
	fl.DurationVar(&f.offline, "offline-after", 10*time.Second, "without an answer for this long the controller counts as out of reach: machines the agent has not seen wait")
	fl.StringVar(&f.metricsListen, "metrics-listen", "127.0.0.1:9091", "Prometheus metrics (/metrics) and /healthz; empty: off")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.logFormat, "log-format", "text", "text or json")
	return cmd
}

func runAgent(cmd *cobra.Command, g *globals, f *agentFlags) error {
	log, err := newLogger(g, f.logLevel, f.logFormat)
	if err != nil {
		return &usageError{err}
	}
	switch {
	case f.controller == "":
		return &usageError{errors.New("--controller is required: the controller's operator API URL")}
	case f.tokenFile == "":
		return &usageError{errors.New("--token-file is required: an agent token (drover tokens create NAME --role agent --pod ZONE/POD)")}
	case strings.Count(f.pod, "/") != 1:
		return &usageError{fmt.Errorf("--pod %q: give the pod as zone/pod", f.pod)}
	}
	fi, err := os.Stat(f.tokenFile)
	if err != nil {
		return fmt.Errorf("--token-file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("--token-file %s is readable by others (mode %#o): chmod 600 it", f.tokenFile, fi.Mode().Perm())
	}
	b, err := os.ReadFile(f.tokenFile)
	if err != nil {
		return fmt.Errorf("--token-file: %w", err)
	}
	var serverIP netip.Addr
	if f.serverIP != "" {
		if serverIP, err = netip.ParseAddr(f.serverIP); err != nil || !serverIP.Is4() {
			return &usageError{fmt.Errorf("--server-ip %q is not an IPv4 address", f.serverIP)}
		}
	}
	_, httpPort, err := net.SplitHostPort(f.httpListen)
	port, perr := strconv.Atoi(httpPort)
	if err != nil || perr != nil || port == 0 {
		return &usageError{fmt.Errorf("--http-listen %q needs a fixed port: machines are told it in DHCP", f.httpListen)}
	}
	if f.artifactsFrom == "" {
		u, err := url.Parse(f.controller)
		if err != nil || u.Hostname() == "" {
			return &usageError{fmt.Errorf("--controller %q is not a URL", f.controller)}
		}
		f.artifactsFrom = "http://" + net.JoinHostPort(u.Hostname(), "8080")
	}
	return podagent.Run(cmd.Context(), podagent.Config{
		Controller: f.controller, ArtifactsFrom: f.artifactsFrom, Token: strings.TrimSpace(string(b)), Pod: f.pod, StateDir: f.state,
		DHCP: dhcp.Config{Listen: f.dhcpListen, Interfaces: f.dhcpInterfaces, ServerIP: serverIP,
			Handler: &dhcp.Handler{HTTPPort: port, HTTPHost: f.httpHost}},
		BootFiles: dhcp.BootFiles{BIOS: f.biosFile, UEFI: f.uefiFile},
		TFTP:      tftp.Config{Listen: f.tftpListen, Roots: []string{f.ipxeDir}, LinkRoot: f.ipxeDir},
		Boot:      boot.Config{Listen: f.httpListen, IPXERoot: f.ipxeDir},
		Every:     f.every, Offline: f.offline, MetricsListen: f.metricsListen, Log: log,
	})
}

func newAgentsCommand(g *globals) *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "agents",
		Short: "List the pods held by their pod agents",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var list []api.AgentInfo
			if err := c.call(cmd.Context(), "GET", "/api/v1/agents", nil, &list); err != nil {
				return err
			}
			if out.format == "json" {
				return writeJSON(g.env.stdout, list)
			}
			tw := newTable(g.env.stdout)
			fmt.Fprintln(tw, "POD\tEPOCH\tREVISION\tLAST ENTRY HELD")
			for _, a := range list {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", a.Pod, a.Epoch, a.Revision, a.Acked)
			}
			return tw.Flush()
		},
	}
	out.register(cmd)
	detach := &cobra.Command{
		Use:   "detach ZONE/POD",
		Short: "Give a pod back to the servers (role admin); its agent stops",
		Args:  args(1, "a pod as zone/pod"),
		RunE: func(cmd *cobra.Command, a []string) error {
			zoneName, pod, ok := strings.Cut(a[0], "/")
			if !ok {
				return &usageError{fmt.Errorf("%q: give the pod as zone/pod", a[0])}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.call(cmd.Context(), "DELETE", "/api/v1/agents/"+url.PathEscape(zoneName)+"/"+url.PathEscape(pod), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.env.stdout, "pod %s detached: the servers serve it again\n", a[0])
			return nil
		},
	}
	cmd.AddCommand(detach)
	return cmd
}
