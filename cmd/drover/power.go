package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/power"
)

const apiExitCodes = `Exit codes: 0 done, 3 no valid token, 4 the token's role is not enough, 5 no
such machine, 6 the machine's state does not allow it, or drover cannot drive its
BMC (no power driver, no credentials), 1 other errors (the BMC failed).`

func newPowerCommand(g *globals) *cobra.Command {
	var reason string
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "power NAME|MAC on|off|cycle|pxe-once|status",
		Short: "Drive a machine's power through its BMC",
		Long: `power asks the machine's BMC, found by its slot (see docs/power.md), to switch
the machine on or off, to power-cycle it (on, when it is off), to boot from the
network next time only (pxe-once; combine with cycle), or says its power state.
Every action is on the machine's timeline and in the audit log, failed or not.

Talks to a drover server (--server, or DROVER_SERVER, and a token with role
operator). ` + apiExitCodes,
		Args: args(2, "a machine name or MAC and an action: on, off, cycle, pxe-once or status"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := out.check(); err != nil {
				return err
			}
			if _, err := power.ParseAction(a[1]); err != nil {
				return &usageError{err}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var res fleet.PowerResult
			if err := c.call(cmd.Context(), "POST", machinePath(a[0], "/power"), map[string]string{"action": a[1], "reason": reason}, &res); err != nil {
				return err
			}
			if out.format == "json" {
				return writeJSON(g.env.stdout, res)
			}
			fmt.Fprintf(g.env.stdout, "%s: %s via BMC %s: power %s (%s)\n", res.Machine, a[1], res.BMC, res.State, res.Took)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded on the timeline and in the audit log)")
	out.register(cmd)
	return cmd
}

func newReinstallCommand(g *globals) *cobra.Command {
	var reason string
	var cycle bool
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "reinstall NAME|MAC [--power-cycle]",
		Short: "Reinstall a machine into its slot's identity",
		Long: `reinstall marks a machine for reinstalling: the next time it network-boots, it
installs its slot's role. With --power-cycle drover also tells its BMC to boot
from the network once and power-cycles it, so nobody needs to touch it.

Talks to a drover server (--server, or DROVER_SERVER, and a token with role
operator). ` + apiExitCodes,
		Args: args(1, "a machine name or MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := out.check(); err != nil {
				return err
			}
			body := map[string]any{"reason": reason}
			if !cycle {
				return postMachineAction(cmd, g, out, a[0], fleet.ActReinstall, body)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			body["power_cycle"] = true
			var res struct {
				Machine machine.Machine   `json:"machine"`
				Power   fleet.PowerResult `json:"power"`
			}
			if err := c.call(cmd.Context(), "POST", machinePath(a[0], "/reinstall"), body, &res); err != nil {
				return err
			}
			if out.format == "json" {
				return writeJSON(g.env.stdout, res)
			}
			fmt.Fprintf(g.env.stdout, "%s: %s; network boot once and power cycle via BMC %s (%s)\n", res.Machine.Label(), res.Machine.State, res.Power.BMC, res.Power.Took)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded on the timeline and in the audit log)")
	cmd.Flags().BoolVar(&cycle, "power-cycle", false, "also boot it from the network once and power-cycle it through its BMC")
	out.register(cmd)
	return cmd
}
