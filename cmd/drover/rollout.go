package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover/drover/internal/rollout"
	"github.com/drover/drover/internal/store"
)

const rolloutExitCodes = `Exit codes: 0 done, 3 no valid token, 4 the token's role is not enough,
5 no such rollout, 6 not possible in the rollout's state, 64 usage, 1 other errors
(nothing matches the selectors; a watched rollout that ended aborted or with failures).`

func newRolloutCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Reinstall sets of machines in waves: plan, start, status, pause, resume, abort",
		Long: `A rollout reinstalls machines chosen from the plan (--from-plan: every machine the
applied design marks as needing a reinstall) or by --zone, --pod, --role, --variant,
--state and --profile (they narrow each other). It runs in waves by environment
(dev, test, then prod: every test zone done before a prod machine is touched); in
each zone a canary first, then batches bounded by the zone's max_unavailable per pod
and per role. Each machine is drained, power-cycled into PXE through its BMC,
installed, health-gated and undrained. Machines in maintenance are skipped. See
docs/rollouts.md.

Talks to a drover server (--server, or DROVER_SERVER, and a token: viewer to plan
and read, operator to pause and resume, admin to start and abort). ` + rolloutExitCodes,
	}
	var q rollout.Request
	var budget int
	selector := func(c *cobra.Command) {
		f := c.Flags()
		f.BoolVar(&q.FromPlan, "from-plan", false, "the machines the applied design marks as needing a reinstall")
		f.StringSliceVar(&q.Zones, "zone", nil, "only these zones (repeatable)")
		f.StringVar(&q.Pod, "pod", "", "only this pod")
		f.StringVar(&q.Role, "role", "", "only this role")
		f.StringVar(&q.Variant, "variant", "", "only this variant")
		f.StringVar(&q.State, "state", "", "only machines in this state")
		f.StringVar(&q.Profile, "profile", "", "only slots installed with this profile")
		f.IntVar(&budget, "failure-budget", -1, "failures tolerated before the rollout pauses (default: the zones' failure_budget, 0 unless set)")
	}
	request := func(c *cobra.Command) rollout.Request {
		if c.Flags().Changed("failure-budget") {
			q.FailureBudget = &budget
		}
		return q
	}
	var out outputFlag
	plan := &cobra.Command{
		Use:   "plan [selectors]",
		Short: "Show the waves and batches a rollout would run, changing nothing",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var s rollout.Schedule
			if err := c.call(cmd.Context(), "POST", "/api/v1/rollouts/plan", request(cmd), &s); err != nil {
				return err
			}
			if out.format == "json" {
				return writeJSON(g.env.stdout, s)
			}
			printSchedule(g.env.stdout, s)
			return nil
		},
	}
	selector(plan)
	out.register(plan)

	var reason string
	var watch bool
	start := &cobra.Command{
		Use:   "start [selectors] [--watch]",
		Short: "Start a rollout (admin)",
		Args:  args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			q := request(cmd)
			q.Reason = reason
			var res struct {
				Rollout  store.Rollout    `json:"rollout"`
				Schedule rollout.Schedule `json:"schedule"`
			}
			if err := c.call(cmd.Context(), "POST", "/api/v1/rollouts", q, &res); err != nil {
				return err
			}
			if out.format == "json" && !watch {
				return writeJSON(g.env.stdout, res)
			}
			fmt.Fprintf(g.env.stdout, "Rollout %d started: %d machines to reinstall, %d skipped.\n", res.Rollout.ID, res.Schedule.Total, len(res.Schedule.Skipped))
			printSchedule(g.env.stdout, res.Schedule)
			if watch {
				return watchRollout(cmd, g, c, res.Rollout.ID, out.format == "json")
			}
			return nil
		},
	}
	selector(start)
	start.Flags().StringVar(&reason, "reason", "", "why (recorded with the rollout and in the audit log)")
	start.Flags().BoolVar(&watch, "watch", false, "follow its progress until it ends")
	out.register(start)

	status := &cobra.Command{
		Use:   "status [ID] [--watch]",
		Short: "Show rollouts, or one rollout's progress per wave, zone and batch",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := out.check(); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if len(a) == 0 {
				ros, err := all[store.Rollout](cmd.Context(), c, "/api/v1/rollouts", url.Values{})
				if err != nil {
					return err
				}
				if out.format == "json" {
					return writeJSON(g.env.stdout, ros)
				}
				tw := newTable(g.env.stdout)
				fmt.Fprintln(tw, "ID\tSTATE\tCREATED\tBY\tSOURCE\tDETAIL")
				for _, r := range ros {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, r.Created.Format("2006-01-02 15:04:05"), r.Actor, r.Source, dash(r.Detail))
				}
				return tw.Flush()
			}
			id, err := rolloutID(a[0])
			if err != nil {
				return err
			}
			if watch {
				return watchRollout(cmd, g, c, id, out.format == "json")
			}
			var v rollout.View
			if err := c.call(cmd.Context(), "GET", fmt.Sprintf("/api/v1/rollouts/%d", id), nil, &v); err != nil {
				return err
			}
			if out.format == "json" {
				return writeJSON(g.env.stdout, v)
			}
			printRollout(g.env.stdout, v, false)
			return nil
		},
	}
	status.Flags().BoolVarP(&watch, "watch", "w", false, "follow the rollout live until it ends")
	out.register(status)

	act := func(name, short string) *cobra.Command {
		var reason string
		c := &cobra.Command{
			Use:   name + " ID",
			Short: short,
			Args:  args(1, "a rollout id"),
			RunE: func(cmd *cobra.Command, a []string) error {
				if _, err := rolloutID(a[0]); err != nil {
					return err
				}
				cl, err := g.client()
				if err != nil {
					return err
				}
				var ro store.Rollout
				if err := cl.call(cmd.Context(), "POST", "/api/v1/rollouts/"+a[0]+"/"+name, map[string]string{"reason": reason}, &ro); err != nil {
					return err
				}
				fmt.Fprintf(g.env.stdout, "Rollout %d is %s: %s\n", ro.ID, ro.State, ro.Detail)
				return nil
			},
		}
		if name != "resume" {
			c.Flags().StringVar(&reason, "reason", "", "why (in the audit log)")
		}
		return c
	}
	cmd.AddCommand(plan, start, status,
		act("pause", "Stop starting machines; those being reinstalled finish (operator)"),
		act("resume", "Continue a paused rollout, accepting its failures so far (operator)"),
		act("abort", "End a rollout: machines not started are never touched (admin)"))
	return cmd
}

func rolloutID(arg string) (int64, error) {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil {
		return 0, &usageError{fmt.Errorf("rollout id %q is not a number", arg)}
	}
	return id, nil
}

// isTerminal reports whether w is a terminal (progress can redraw in place).
func isTerminal(w io.Writer) bool {
	fi, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := fi.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func printSchedule(w io.Writer, s rollout.Schedule) {
	for i, wave := range s.Waves {
		fmt.Fprintf(w, "wave %d: %s\n", i+1, wave.Env)
		for _, z := range wave.Zones {
			for bi, b := range z.Batches {
				label := fmt.Sprintf("batch %d", bi)
				if bi == 0 && z.Canary {
					label = "canary "
				}
				names := make([]string, len(b))
				for j, it := range b {
					names[j] = it.Name
				}
				fmt.Fprintf(w, "  zone %s %s: %s\n", z.Zone, label, strings.Join(names, ", "))
			}
		}
	}
	for _, it := range s.Skipped {
		fmt.Fprintf(w, "  skipped %s: %s\n", it.Name, it.Skip)
	}
	fmt.Fprintf(w, "%d machines in %d waves, %d skipped.\n", s.Total, len(s.Waves), len(s.Skipped))
}

// bar draws done of total in width cells.
func bar(done, total, width int) string {
	if total == 0 {
		return strings.Repeat("░", width)
	}
	n := done * width / total
	return strings.Repeat("█", n) + strings.Repeat("░", width-n)
}

func printRollout(w io.Writer, v rollout.View, live bool) {
	fmt.Fprintf(w, "rollout %d: %s — %s\n", v.ID, v.State, v.Source)
	if v.Detail != "" {
		fmt.Fprintf(w, "  %s\n", v.Detail)
	}
	for i, wave := range v.Progress.Waves {
		for _, z := range wave.Zones {
			fmt.Fprintf(w, "wave %d %-5s zone %-10s %s %d/%d  batches %d  %s\n", i+1, wave.Env, z.Zone, bar(z.Done, z.Total, 20), z.Done, z.Total, z.Batches, phaseCounts(z.Phases))
		}
	}
	for _, m := range v.Machines {
		if live && (m.Phase == store.PhasePending || m.Phase == store.PhaseDone) {
			continue // the live view shows what moves and what went wrong
		}
		batch := "-"
		if m.Batch >= 0 {
			batch = strconv.Itoa(m.Batch)
		}
		fmt.Fprintf(w, "  %-24s %-6s batch %-3s %-13s %s\n", m.Name, m.Env, batch, m.Phase, m.Detail)
	}
}

func phaseCounts(p map[string]int) string {
	var parts []string
	for _, ph := range []string{store.PhasePending, store.PhaseDraining, store.PhaseCycling, store.PhaseInstalling, store.PhaseChecking,
		store.PhaseUndraining, store.PhaseDone, store.PhaseFailed, store.PhaseSkipped, store.PhaseCancelled} {
		if p[ph] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", ph, p[ph]))
		}
	}
	return strings.Join(parts, ", ")
}

// watchRollout follows a rollout's event stream: on a terminal it redraws
// the view in place, otherwise it prints each change.
func watchRollout(cmd *cobra.Command, g *globals, c *apiClient, id int64, asJSON bool) error {
	resp, err := c.request(cmd.Context(), "GET", fmt.Sprintf("/api/v1/rollouts/%d?follow=true", id), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	term := isTerminal(g.env.stdout)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	var last rollout.View
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if asJSON {
			fmt.Fprintln(g.env.stdout, data)
			continue
		}
		if err := json.Unmarshal([]byte(data), &last); err != nil {
			continue
		}
		if term {
			fmt.Fprint(g.env.stdout, "\x1b[H\x1b[2J")
		}
		printRollout(g.env.stdout, last, true)
	}
	if cmd.Context().Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if last.State == store.RolloutAborted || last.State == store.RolloutDone && last.Progress.Phases[store.PhaseFailed] > 0 {
		return fmt.Errorf("rollout %d ended %s: %s", id, last.State, last.Detail)
	}
	return nil
}

func newPendingCommand(g *globals) *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "pending",
		Short: "Show the followed design repository's commits: applied, waiting for approval, invalid",
		Long: `pending lists the commits a server following a design repository (serve --follow)
has seen, newest first: their author, status, the zones waiting for approval and
the plan approving them would apply, and the file:line problems of invalid ones.
Needs a token with role viewer.`,
		Args: args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			cs, err := all[store.PendingCommit](cmd.Context(), c, "/api/v1/design/pending", url.Values{})
			if err != nil {
				return err
			}
			if out.format == "json" {
				return writeJSON(g.env.stdout, cs)
			}
			for _, pc := range cs {
				fmt.Fprintf(g.env.stdout, "%.12s %-10s %s  %s  %q\n", pc.Commit, pc.Status, pc.When.Format("2006-01-02 15:04"), pc.Author, pc.Message)
				if len(pc.Waiting) > 0 {
					fmt.Fprintf(g.env.stdout, "  waiting for `drover approve %.12s`: zones %s\n", pc.Commit, strings.Join(pc.Waiting, ", "))
					if pc.Plan != nil {
						var b strings.Builder
						pc.Plan.Write(&b)
						for _, l := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
							fmt.Fprintln(g.env.stdout, "    "+l)
						}
					}
				}
				for _, p := range pc.Problems {
					fmt.Fprintln(g.env.stdout, "  "+p)
				}
				if pc.Approver != "" {
					fmt.Fprintf(g.env.stdout, "  approved by %s\n", pc.Approver)
				}
			}
			return nil
		},
	}
	out.register(cmd)
	return cmd
}

func newApproveCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "approve COMMIT",
		Short: "Apply a followed commit's zones that wait for approval (admin)",
		Long: `approve applies the zones of a pending commit (see drover pending) that are not
auto_apply, starts a rollout when its plan needs reinstalls, and records the
commit, its author and you in the audit log. Give at least 7 characters of the
commit. Needs a token with role admin. Exit codes: 5 no such commit, 6 the commit
is not pending (applied, invalid or superseded by a newer one).`,
		Args: args(1, "a commit (at least 7 characters)"),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var pc store.PendingCommit
			if err := c.call(cmd.Context(), "POST", "/api/v1/design/pending/"+a[0]+"/approve", nil, &pc); err != nil {
				return err
			}
			fmt.Fprintf(g.env.stdout, "Commit %.12s (%s) is %s, approved by %s; revisions %v.\n", pc.Commit, pc.Author, pc.Status, pc.Approver, pc.Applied)
			return nil
		},
	}
}
