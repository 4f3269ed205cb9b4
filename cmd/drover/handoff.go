package main

import (
	"errors"
	"fmt"
	"github.com/drover/drover/internal/monitoring"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// newInventoryCommand is an Ansible dynamic inventory: Ansible runs it with
// --list, or --host NAME.
func newInventoryCommand(g *globals) *cobra.Command {
	var list bool
	var host string
	cmd := &cobra.Command{
		Use:   "inventory --list | --host NAME",
		Short: "Ansible dynamic inventory of the design's hosts, from a drover server",
		Long: `Prints the hosts of the design being served as an Ansible dynamic inventory:
groups zone_Z, pod_Z_P, role_R, variant_R_V, environment_E and state_S (every
slot is a host; a slot without a machine is in state_absent), and each host's
variables (drover_*, ansible_host = its boot address) under _meta.hostvars.
--host NAME prints one host's variables. Ansible runs an executable inventory
file with --list; point it at a two-line script:

    #!/bin/sh
    exec drover inventory "$@"

with DROVER_SERVER and DROVER_TOKEN_FILE (a viewer token) in its environment.
The same JSON is GET /api/v1/inventory/ansible (?host=NAME).`,
		Args: args(0, "--list or --host NAME"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if list == (host != "") {
				return &usageError{errors.New("give --list or --host NAME")}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			path := "/api/v1/inventory/ansible"
			if host != "" {
				path += "?host=" + url.QueryEscape(host)
			}
			var out any
			if err := c.call(cmd.Context(), "GET", path, nil, &out); err != nil {
				return err
			}
			return writeJSON(g.env.stdout, out)
		},
	}
	cmd.Flags().BoolVar(&list, "list", false, "the whole inventory")
	cmd.Flags().StringVar(&host, "host", "", "one host's variables (a slot name, permanent name or FQDN)")
	return cmd
}

// newENCCommand is a Puppet external node classifier.
func newENCCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "enc NAME",
		Short: "Puppet external node classifier: a host's classes, parameters and environment as YAML",
		Long: `Prints what Puppet's exec node terminus expects of an external node
classifier for host NAME (a slot name, permanent name or FQDN, so a Puppet
certname works): classes (the role's, with the variant's), parameters (the
role's params, and drover_* variables: addresses in every network, BMC, pod,
state, facts), and environment (the zone's environment: Puppet must have an
environment of that name). In puppet.conf:

    [server]
    node_terminus = exec
    external_nodes = /usr/local/bin/drover-enc   # exec drover enc "$1"

Talks to a drover server (--server and a viewer token). A host the design
does not have exits 5 (not found); Puppet then fails the catalog, as it should.`,
		Args: args(1, "a host name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			return handoffHost(cmd, g, "/api/v1/inventory/puppet/", a[0], true)
		},
	}
}

// newChefCommand prints node JSON for chef-client -j.
func newChefCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "chef NAME",
		Short: "Chef node JSON for chef-client -j: run list from the role's classes, attributes from its params",
		Long: `Prints node JSON for host NAME (a slot name, permanent name or FQDN) to pass
to chef-client -j: run_list (each class as recipe[CLASS]; a class written
recipe[...] or role[...] is kept as is), the role's params as normal
attributes, drover's variables under "drover", name (the FQDN) and
chef_environment (the zone's environment). Talks to a drover server.`,
		Args: args(1, "a host name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			return handoffHost(cmd, g, "/api/v1/inventory/chef/", a[0], false)
		},
	}
}

func handoffHost(cmd *cobra.Command, g *globals, path, name string, asYAML bool) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	var out any
	if err := c.call(cmd.Context(), "GET", path+url.PathEscape(name), nil, &out); err != nil {
		return err
	}
	if !asYAML {
		return writeJSON(g.env.stdout, out)
	}
	b, err := yaml.Marshal(out)
	if err != nil {
		return err
	}
	_, err = g.env.stdout.Write(append([]byte("---\n"), b...))
	return err
}

// newMonitoringCommand checks that monitoring sees what drover deployed.
func newMonitoringCommand(g *globals) *cobra.Command {
	var port int
	var network string
	var out outputFlag
	cmd := &cobra.Command{Use: "monitoring", Short: "Monitoring of the deployed machines (docs/handoff.md)"}
	check := &cobra.Command{
		Use:   "check",
		Short: "List the deployed machines (and those in maintenance) that Prometheus does not see as up",
		Long: `Compares the machines drover hands to Prometheus (GET /api/v1/monitoring/targets:
deployed or in maintenance, their address and exporter port) with Prometheus's
up series, asked by the server from the Prometheus given to drover serve
--prometheus URL. A machine is listed when no up series has its address (or its
name label), or when up is 0. Exit 0 when every machine is up, 1 otherwise.
Talks to a drover server (a viewer token).`,
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			q := url.Values{"port": {fmt.Sprint(port)}}
			if network != "" {
				q.Set("network", network)
			}
			var fs []monitoring.Finding
			if err := c.call(cmd.Context(), "GET", "/api/v1/monitoring/check?"+q.Encode(), nil, &fs); err != nil {
				return err
			}
			if out.format == "json" {
				if err := writeJSON(g.env.stdout, fs); err != nil {
					return err
				}
			} else if len(fs) == 0 {
				fmt.Fprintln(g.env.stdout, "every monitored machine is up")
			} else {
				w := tabwriter.NewWriter(g.env.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "MACHINE\tSTATE\tTARGET\tPROBLEM")
				for _, f := range fs {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", f.Machine, f.State, f.Target, f.Problem)
				}
				w.Flush()
			}
			if len(fs) > 0 {
				return &exitError{code: exitError1, err: fmt.Errorf("%d monitored machines are not up", len(fs))}
			}
			return nil
		},
	}
	check.Flags().IntVar(&port, "port", 9100, "the exporter's port on the machines")
	check.Flags().StringVar(&network, "network", "", "the pod network whose address is scraped (default boot)")
	out.register(check)
	cmd.AddCommand(check)
	return cmd
}
