package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/power"
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
	root.PersistentFlags().StringVar(&g.db, "db", dbDefault, "the database: a SQLite file, or a postgres:// URL for PostgreSQL (env DROVER_DB)")
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
		newAgentCommand(g),
		newAgentsCommand(g),
		newLabCommand(g),
		newTimelineCommand(g),
		newReinstallCommand(g),
		newPowerCommand(g),
		newMaintenanceCommand(g),
		newActionCommand(g, fleet.ActRetire, "Retire a machine: it leaves its slot and boots nothing"),
		newActionCommand(g, fleet.ActRelease, "Release a machine from its slot (back to ready)"),
		newAuditCommand(g),
		newTokensCommand(g),
		newRolloutCommand(g),
		newPendingCommand(g),
		newApproveCommand(g),
		newArtifactsCommand(g),
		newInventoryCommand(g),
		newENCCommand(g),
		newChefCommand(g),
		newMonitoringCommand(g),
		newDNSCommand(g),
		newCablingCommand(g),
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

func (g *globals) open(ctx context.Context) (*store.DB, error) {
	return store.Open(ctx, g.db)
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
	var secretsPath string
	cmd := &cobra.Command{
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
			if secretsPath != "" {
				secrets, err := power.LoadSecrets(secretsPath)
				if err != nil {
					return err
				}
				if err := secrets.Check(d); err != nil {
					return err
				}
			}
			fmt.Fprintf(g.env.stdout, "%s: valid: %s\n", a[0], d)
			return nil
		},
	}
	cmd.Flags().StringVar(&secretsPath, "power-secrets", "", "also check that this BMC secrets file has credentials for every power driver the design names")
	return cmd
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
			b, err := g.backend(cmd.Context())
			if err != nil {
				return err
			}
			defer b.Close()
			res, err := b.Plan(cmd.Context(), a[0], serverPath)
			if err != nil {
				return err
			}
			if asJSON {
				if err := writeJSON(g.env.stdout, planJSON(res)); err != nil {
					return err
				}
			} else {
				res.Plan.Write(g.env.stdout)
			}
			if res.Changes {
				return &exitError{code: exitChanges}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	cmd.Flags().BoolVar(&serverPath, "server-path", false, "with --server: PATH is on the server, not uploaded")
	return cmd
}

// planJSON is the plan as scripts read it, the same from --db and --server
// (writeJSON prints its empty lists as []).
func planJSON(p planned) map[string]any {
	return map[string]any{
		"design_hash": p.Hash,
		"changes":     p.Changes,
		"added":       p.Plan.Added,
		"changed":     p.Plan.Changed,
		"removed":     p.Plan.Removed,
	}
}

func newApplyCommand(g *globals) *cobra.Command {
	var yes, serverPath bool
	var actor string
	cmd := &cobra.Command{
		Use:   "apply PATH",
		Short: "Make a design the current one",
		Long: `apply shows the plan, asks for confirmation (unless --yes) and then, in one
transaction, updates the slots and records the design revision: its content
hash, the git commit when the design is in a git checkout, and who applied it.
Machines in changed slots are renamed and, when their role, variant or profile
changed, marked as needing a reinstall; machines in removed slots leave them.
The server running on the database makes those machine changes (apply waits
for it); with no server running, apply makes them itself.`,
		Args: args(1, "the path of a design file or directory"),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			b, err := g.backend(ctx)
			if err != nil {
				return err
			}
			defer b.Close()
			res, err := b.Plan(ctx, a[0], serverPath)
			if err != nil {
				return err
			}
			res.Plan.Write(g.env.stdout)
			if res.Current != 0 {
				fmt.Fprintf(g.env.stdout, "Design %.12s is already applied (revision %d).\n", res.Hash, res.Current)
				return nil
			}
			if !yes && !confirm(g, "Apply this design?") {
				return &exitError{code: exitError1, err: errors.New("not applied: no confirmation (answer y, or pass --yes)")}
			}
			if actor == "" {
				actor = g.env.getenv("USER")
			}
			if actor == "" {
				actor = "cli"
			}
			rev, p, note, err := b.Apply(ctx, a[0], serverPath, actor)
			if err != nil {
				return err
			}
			commit := rev.Commit
			if commit == "" {
				commit = "not in git"
			}
			fmt.Fprintf(g.env.stdout, "Applied revision %d (design %.12s, %s) by %s: %d added, %d changed, %d removed.\n",
				rev.ID, rev.Hash, commit, rev.AppliedBy, len(p.Added), len(p.Changed), len(p.Removed))
			if note != "" {
				fmt.Fprintln(g.env.stdout, note)
			}
			return nil
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
