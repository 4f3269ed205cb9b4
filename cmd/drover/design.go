package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

func newRootCommand(ctx context.Context, env environment) *cobra.Command {
	dbDefault := "drover.db"
	if v := env.getenv("DROVER_DB"); v != "" {
		dbDefault = v
	}
	g := &globals{env: env}
	root := &cobra.Command{
		Use:   "drover",
		Short: "Boot, name and operate a zone of bare-metal machines as one unit",
		Long: `drover serves DHCP, TFTP and HTTP boot for a zone described in a versioned
design file, gives every machine the identity of the switch port it is plugged
into, installs it for its role and tracks its lifecycle.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(env.stdout)
	root.SetErr(env.stderr)
	root.SetIn(env.stdin)
	root.PersistentFlags().StringVar(&g.db, "db", dbDefault, "path of the SQLite database (env DROVER_DB)")
	root.PersistentFlags().StringVar(&g.server, "server", env.getenv("DROVER_SERVER"), "operator API of a drover server, e.g. http://127.0.0.1:9090 (env DROVER_SERVER); commands then use it instead of --db")
	root.PersistentFlags().StringVar(&g.tokenFile, "token-file", env.getenv("DROVER_TOKEN_FILE"), "file holding the API token (or env DROVER_TOKEN)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(
		newValidateCommand(g),
		newPlanCommand(g),
		newApplyCommand(g),
		newSlotsCommand(g),
		newMachinesCommand(g),
		newShowCommand(g),
		newServeCommand(g),
		newLabCommand(g),
		newTimelineCommand(g),
		newActionCommand(g, fleet.ActReinstall, "Reinstall a machine into its slot's identity"),
		newMaintenanceCommand(g),
		newActionCommand(g, fleet.ActRetire, "Retire a machine: it leaves its slot and boots nothing"),
		newActionCommand(g, fleet.ActRelease, "Release a machine from its slot (back to ready)"),
		newAuditCommand(g),
		newTokensCommand(g),
	)
	return root
}

// globals are the flags and environment every subcommand shares.
type globals struct {
	env       environment
	db        string
	server    string
	tokenFile string
}

func (g *globals) open(ctx context.Context) (*store.SQLite, error) {
	return store.OpenSQLite(ctx, g.db)
}

// args checks the number of positional arguments and reports misuse as a usage error.
func args(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if len(a) != n {
			return &usageError{fmt.Errorf("%s needs %s (see %s --help)", cmd.Name(), what, cmd.CommandPath())}
		}
		return nil
	}
}

// loadDesign reads and validates a design, printing every problem.
func loadDesign(path string) (*zone.Design, error) {
	d, err := zone.Load(path)
	if err != nil {
		var ps zone.Problems
		if errors.As(err, &ps) {
			return nil, &exitError{code: exitError1, err: fmt.Errorf("design %s has %d problem(s):\n%s", path, len(ps), ps.Error())}
		}
		return nil, &exitError{code: exitError1, err: err}
	}
	return d, nil
}

func newValidateCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate PATH",
		Short: "Check a design file or directory and print a summary",
		Long: `validate reads a zone file, or a directory of zone files, checks all of it and
prints a one-line summary. On any problem it prints every problem as
file:line:column: field: problem (fix) and exits 1.`,
		Args: args(1, "the path of a design file or directory"),
		RunE: func(cmd *cobra.Command, a []string) error {
			d, err := loadDesign(a[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(g.env.stdout, "%s: valid: %s\n", a[0], d)
			return nil
		},
	}
}

func newPlanCommand(g *globals) *cobra.Command {
	var asJSON, serverPath bool
	cmd := &cobra.Command{
		Use:   "plan PATH",
		Short: "Show what applying a design would change",
		Long: `plan compares a design with the applied one and shows the slots it would add,
change and remove, grouped by zone and pod. Changes marked ! need the machine
in the slot to be reinstalled.

Exit codes: 0 no changes, 2 changes, 1 error (such as an invalid design).`,
		Args: args(1, "the path of a design file or directory"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if g.remote() {
				return remotePlan(cmd.Context(), g, a[0], serverPath, asJSON)
			}
			d, err := loadDesign(a[0])
			if err != nil {
				return err
			}
			st, err := g.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			current, err := st.Slots(cmd.Context(), store.SlotFilter{})
			if err != nil {
				return err
			}
			plan := zone.Diff(current, d.Slots)
			if asJSON {
				enc := json.NewEncoder(g.env.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(planJSON(plan, d)); err != nil {
					return err
				}
			} else {
				plan.Write(g.env.stdout)
			}
			if !plan.Empty() {
				return &exitError{code: exitChanges}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	cmd.Flags().BoolVar(&serverPath, "server-path", false, "with --server: PATH is on the server, not uploaded")
	return cmd
}

func planJSON(p *zone.Plan, d *zone.Design) any {
	nonNil := func(s []*zone.Slot) []*zone.Slot {
		if s == nil {
			return []*zone.Slot{}
		}
		return s
	}
	changed := p.Changed
	if changed == nil {
		changed = []zone.SlotChange{}
	}
	return map[string]any{
		"design_hash": d.Hash,
		"changes":     !p.Empty(),
		"added":       nonNil(p.Added),
		"changed":     changed,
		"removed":     nonNil(p.Removed),
	}
}

func newApplyCommand(g *globals) *cobra.Command {
	var yes, serverPath bool
	var actor string
	cmd := &cobra.Command{
		Use:   "apply PATH",
		Short: "Make a design the current one",
		Long: `apply shows the plan, asks for confirmation (unless --yes) and then, in one
transaction, updates the slots, marks machines whose role, variant or profile
changed as needing a reinstall, and records the design revision: its content
hash, the git commit when the design is in a git checkout, and who applied it.`,
		Args: args(1, "the path of a design file or directory"),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			if g.remote() {
				return remoteApply(ctx, g, a[0], serverPath, yes)
			}
			d, err := loadDesign(a[0])
			if err != nil {
				return err
			}
			st, err := g.open(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			current, err := st.Slots(ctx, store.SlotFilter{})
			if err != nil {
				return err
			}
			plan := zone.Diff(current, d.Slots)
			plan.Write(g.env.stdout)
			if cur, err := st.CurrentRevision(ctx); err == nil && cur.Hash == d.Hash {
				fmt.Fprintf(g.env.stdout, "Design %.12s is already applied (revision %d).\n", d.Hash, cur.ID)
				return nil
			}
			if !yes && !confirm(g, "Apply this design?") {
				return &exitError{code: exitError1, err: errors.New("not applied: no confirmation (answer y, or pass --yes)")}
			}
			if actor == "" {
				actor = g.env.getenv("USER")
			}
			return applyDesign(ctx, g, st, d, a[0], actor)
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "apply without asking")
	cmd.Flags().StringVar(&actor, "actor", "", "who is applying (default: $USER; with --server, the token's name)")
	cmd.Flags().BoolVar(&serverPath, "server-path", false, "with --server: PATH is on the server, not uploaded")
	return cmd
}

func confirm(g *globals, question string) bool {
	fmt.Fprintf(g.env.stdout, "%s [y/N] ", question)
	line, _ := bufio.NewReader(g.env.stdin).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes"
}

// applyDesign records d as the applied design, prints what changed, and sees
// the revision's effects on machines carried out by the one writer of machines:
// the running server when one holds the database, otherwise a fleet started
// here for that alone.
func applyDesign(ctx context.Context, g *globals, st store.Store, d *zone.Design, path, actor string) error {
	if actor == "" {
		actor = "cli"
	}
	rev, applied, err := store.Apply(ctx, st, store.ApplyRequest{Design: d, Dir: path, Actor: actor})
	if err != nil {
		return err
	}
	commit := rev.Commit
	if commit == "" {
		commit = "not in git"
	}
	fmt.Fprintf(g.env.stdout, "Applied revision %d (design %.12s, %s) by %s: %d added, %d changed, %d removed.\n",
		rev.ID, rev.Hash, commit, actor, len(applied.Added), len(applied.Changed), len(applied.Removed))
	release, err := st.LockWriter()
	if errors.Is(err, store.ErrWriterBusy) {
		if waitMachinesRevision(ctx, st, rev.ID, 10*time.Second) {
			if len(rev.Effects) > 0 {
				fmt.Fprintln(g.env.stdout, "The running drover server has updated the machines in changed and removed slots.")
			}
			return nil
		}
		fmt.Fprintf(g.env.stdout, "A drover server holds this database; it updates the machines in changed and removed slots when it loads revision %d.\n", rev.ID)
		return nil
	}
	if err != nil {
		return err
	}
	defer release()
	if _, err := fleet.New(ctx, fleet.Config{Store: st}); err != nil {
		return fmt.Errorf("revision %d is applied, but its changes to machines are not: %w (a server started on this database carries them out)", rev.ID, err)
	}
	return nil
}

// waitMachinesRevision waits until the machine rows reflect revision id.
func waitMachinesRevision(ctx context.Context, st store.Store, id int64, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		got, err := st.MachinesRevision(ctx)
		if err == nil && got >= id {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}
