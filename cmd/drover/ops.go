package main

import (
	"fmt"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
)

// newActionCommand is a machine action; the action is also its API path.
func newActionCommand(g *globals, action, short string) *cobra.Command {
	var reason string
	var out outputFlag
	cmd := &cobra.Command{
		Use:   action + " NAME|MAC",
		Short: short,
		Long: short + `.

Talks to a drover server (--server, or DROVER_SERVER, and a token with role
operator). Exit codes: 0 done, 3 no valid token, 4 the token's role is not
enough, 5 no such machine, 6 the machine's state does not allow it, 1 other errors.`,
		Args: args(1, "a machine name or MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := out.check(); err != nil {
				return err
			}
			return postMachineAction(cmd, g, out, a[0], action, map[string]any{"reason": reason})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded on the timeline and in the audit log)")
	out.register(cmd)
	return cmd
}

// postMachineAction posts an action to a machine and prints the machine after it.
func postMachineAction(cmd *cobra.Command, g *globals, out outputFlag, ref, action string, body any) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	var m machine.Machine
	if err := c.call(cmd.Context(), "POST", machinePath(ref, "/"+action), body, &m); err != nil {
		return err
	}
	if out.format == "json" {
		return writeJSON(g.env.stdout, m)
	}
	fmt.Fprintf(g.env.stdout, "%s: %s\n", m.Label(), m.State)
	return nil
}

func newMaintenanceCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "maintenance", Short: "Put machines in maintenance and take them out"}
	var reason, owner, expires string
	enter := &cobra.Command{
		Use:   "enter NAME|MAC --reason R --owner O --expires 4h",
		Short: "Put a machine in maintenance (reason, owner and expiry are required)",
		Args:  args(1, "a machine name or MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if reason == "" || owner == "" || expires == "" {
				return &usageError{fmt.Errorf("maintenance enter needs --reason, --owner and --expires")}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var m machine.Machine
			body := map[string]string{"reason": reason, "owner": owner, "expires": expires}
			if err := c.call(cmd.Context(), "POST", machinePath(a[0], "/maintenance"), body, &m); err != nil {
				return err
			}
			fmt.Fprintf(g.env.stdout, "%s: maintenance until %s (owner %s)\n", m.Label(), m.Maintenance.Expires.Format(time.RFC3339), m.Maintenance.Owner)
			return nil
		},
	}
	enter.Flags().StringVar(&reason, "reason", "", "why")
	enter.Flags().StringVar(&owner, "owner", "", "who is responsible")
	enter.Flags().StringVar(&expires, "expires", "", "when it ends: RFC 3339 time or a duration like 4h")
	leave := &cobra.Command{
		Use:   "leave NAME|MAC",
		Short: "Take a machine out of maintenance",
		Args:  args(1, "a machine name or MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var m machine.Machine
			if err := c.call(cmd.Context(), "DELETE", machinePath(a[0], "/maintenance"), nil, &m); err != nil {
				return err
			}
			fmt.Fprintf(g.env.stdout, "%s: %s\n", m.Label(), m.State)
			return nil
		},
	}
	cmd.AddCommand(enter, leave)
	return cmd
}

func newTimelineCommand(g *globals) *cobra.Command {
	var followFlag bool
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "timeline NAME|MAC [--follow]",
		Short: "Show a machine's timeline; --follow streams new entries until Ctrl-C",
		Args:  args(1, "a machine name or MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := out.check(); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if followFlag {
				return c.follow(cmd.Context(), a[0], g.env.stdout, out.format == "json")
			}
			var tl []machine.Entry
			if err := c.call(cmd.Context(), "GET", machinePath(a[0], "/timeline"), nil, &tl); err != nil {
				return err
			}
			if out.format == "json" {
				return writeJSON(g.env.stdout, tl)
			}
			tw := newTable(g.env.stdout)
			for _, e := range tl {
				printEntry(tw, e)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&followFlag, "follow", "f", false, "stream new entries")
	out.register(cmd)
	return cmd
}

func newAuditCommand(g *globals) *cobra.Command {
	var f store.AuditFilter
	var since string
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List the audit log",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"actor": f.Actor, "action": f.Action, "target": f.Target, "outcome": f.Outcome, "since": since} {
				if v != "" {
					q.Set(k, v)
				}
			}
			var es []store.AuditEntry
			if err := c.call(cmd.Context(), "GET", "/api/v1/audit?"+q.Encode(), nil, &es); err != nil {
				return err
			}
			if out.format == "json" {
				return writeJSON(g.env.stdout, es)
			}
			tw := newTable(g.env.stdout)
			fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tTARGET\tOUTCOME\tREQUEST")
			for _, e := range es {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.At.Format(time.RFC3339), e.Actor, e.Action, dash(e.Target), e.Outcome, dash(e.RequestID))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&f.Actor, "actor", "", "only this actor (token name)")
	cmd.Flags().StringVar(&f.Action, "action", "", "only this action")
	cmd.Flags().StringVar(&f.Target, "target", "", "only this target")
	cmd.Flags().StringVar(&f.Outcome, "outcome", "", "only this outcome")
	cmd.Flags().StringVar(&since, "since", "", "only entries since this RFC 3339 time")
	out.register(cmd)
	return cmd
}

func newTokensCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "tokens", Short: "Create, list and revoke operator API tokens (role admin)"}
	var role, expires, pod string
	var out outputFlag
	create := &cobra.Command{
		Use:   "create NAME --role viewer|operator|admin|agent [--pod ZONE/POD] [--expires 720h]",
		Short: "Create a token and print its secret, once",
		Args:  args(1, "a token name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var got struct {
				Token  store.Token `json:"token"`
				Secret string      `json:"secret"`
			}
			if err := c.call(cmd.Context(), "POST", "/api/v1/tokens", map[string]string{"name": a[0], "role": role, "expires_in": expires, "pod": pod}, &got); err != nil {
				return err
			}
			if out.format == "json" {
				return writeJSON(g.env.stdout, got)
			}
			fmt.Fprintln(g.env.stdout, got.Secret)
			fmt.Fprintf(g.env.stderr, "token %s (role %s) created; the secret above is shown once\n", got.Token.Name, got.Token.Role)
			return nil
		},
	}
	create.Flags().StringVar(&role, "role", "viewer", "viewer, operator, admin, or agent (a pod agent's: its pod's agent calls, nothing else)")
	create.Flags().StringVar(&pod, "pod", "", "with --role agent: the one pod (zone/pod) the agent serves")
	create.Flags().StringVar(&expires, "expires", "", "lifetime, e.g. 720h (default: never)")
	out.register(create)
	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their secrets)",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var ts []store.Token
			if err := c.call(cmd.Context(), "GET", "/api/v1/tokens", nil, &ts); err != nil {
				return err
			}
			tw := newTable(g.env.stdout)
			fmt.Fprintln(tw, "NAME\tROLE\tPOD\tCREATED\tEXPIRES\tREVOKED")
			for _, t := range ts {
				exp := "never"
				if !t.Expires.IsZero() {
					exp = t.Expires.Format(time.RFC3339)
				}
				pod := t.Pod
				if pod == "" {
					pod = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\n", t.Name, t.Role, pod, t.Created.Format(time.RFC3339), exp, t.Revoked)
			}
			return tw.Flush()
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token",
		Args:  args(1, "a token name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.call(cmd.Context(), "DELETE", "/api/v1/tokens/"+url.PathEscape(a[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.env.stdout, "token %s revoked\n", a[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// designBody names a design on the server or uploads it.
func designBody(path string, serverPath bool) (map[string]any, error) {
	if serverPath {
		return map[string]any{"path": path}, nil
	}
	files, err := designUpload(path)
	if err != nil {
		return nil, fmt.Errorf("read design %s: %w", path, err)
	}
	return map[string]any{"files": files}, nil
}
