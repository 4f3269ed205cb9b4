package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/drover/drover/internal/cabling"
)

func newCablingCommand(g *globals) *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "cabling",
		Short: "What every installed machine's NICs heard over LLDP, against the design",
		Long: `Lists, per machine in a slot whose install agent reported, the LLDP neighbour
of each NIC and whether it is where the design (and option 82) put it: ok,
mismatch (naming the port seen and the port expected), or no-lldp. Talks to a
drover server (--server).`,
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var rs []cabling.Report
			if err := c.call(cmd.Context(), "GET", "/api/v1/cabling", nil, &rs); err != nil {
				return err
			}
			if out.format == "json" {
				return writeJSON(g.env.stdout, rs)
			}
			w := tabwriter.NewWriter(g.env.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "MACHINE\tSLOT\tSTATUS\tNEIGHBOURS")
			for _, r := range rs {
				var seen []string
				for _, n := range r.Neighbours {
					seen = append(seen, n.Interface+"="+cabling.Where(n))
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Machine, r.Slot, r.Status, strings.Join(seen, " "))
				for _, f := range r.Findings {
					fmt.Fprintf(w, "\t\t\t! %s\n", f.Problem)
				}
			}
			return w.Flush()
		},
	}
	out.register(cmd)
	return cmd
}
