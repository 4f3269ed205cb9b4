package main

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
)

type outputFlag struct{ format string }

func (o *outputFlag) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", "table", "output format: table or json")
}

func (o *outputFlag) check() error {
	if o.format != "table" && o.format != "json" {
		return &usageError{fmt.Errorf("unknown output format %q (use table or json)", o.format)}
	}
	return nil
}

// writeJSON prints v indented. Empty lists print as [] (never null), at the
// top level and as values of a top-level map, so scripts can iterate them.
func writeJSON(w io.Writer, v any) error {
	v = emptyList(v)
	if m, ok := v.(map[string]any); ok {
		for k, e := range m {
			m[k] = emptyList(e)
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func emptyList(v any) any {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice && rv.IsNil() {
		return reflect.MakeSlice(rv.Type(), 0, 0).Interface()
	}
	return v
}

func newSlotsCommand(g *globals) *cobra.Command {
	var f store.SlotFilter
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "slots",
		Short: "List the slots of the applied design",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			b, err := g.backend(cmd.Context())
			if err != nil {
				return err
			}
			defer b.Close()
			slots, err := b.Slots(cmd.Context(), f)
			if err != nil {
				return err
			}
			if out.format == "json" {
				return writeJSON(g.env.stdout, slots)
			}
			tw := newTable(g.env.stdout)
			fmt.Fprintln(tw, "NAME\tZONE\tPOD\tSLOT\tROLE\tVARIANT\tADDRESS\tBMC")
			for _, s := range slots {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Zone, s.Pod, s.Key, s.Role, dash(s.Variant), s.Address, addrOrDash(s.BMCAddress.String(), s.BMCAddress.IsValid()))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&f.Zone, "zone", "", "only this zone")
	cmd.Flags().StringVar(&f.Pod, "pod", "", "only this pod")
	cmd.Flags().StringVar(&f.Role, "role", "", "only this role")
	cmd.Flags().StringVar(&f.Variant, "variant", "", "only this variant")
	out.register(cmd)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func addrOrDash(s string, ok bool) string {
	if !ok {
		return "-"
	}
	return s
}

func newMachinesCommand(g *globals) *cobra.Command {
	var f store.MachineFilter
	var state string
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "machines",
		Short: "List machines and their states",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			if state != "" {
				st, err := machine.ParseState(state)
				if err != nil {
					return &usageError{err}
				}
				f.State = st
			}
			b, err := g.backend(cmd.Context())
			if err != nil {
				return err
			}
			defer b.Close()
			ms, err := b.Machines(cmd.Context(), f)
			if err != nil {
				return err
			}
			if out.format == "json" {
				return writeJSON(g.env.stdout, ms)
			}
			return printMachines(g.env.stdout, ms)
		},
	}
	cmd.Flags().StringVar(&f.Zone, "zone", "", "only machines in this zone")
	cmd.Flags().StringVar(&f.Pod, "pod", "", "only machines in this pod")
	cmd.Flags().StringVar(&f.Role, "role", "", "only machines with this role")
	cmd.Flags().StringVar(&f.Variant, "variant", "", "only machines with this variant")
	cmd.Flags().StringVar(&state, "state", "", "only machines in this state")
	out.register(cmd)
	return cmd
}

func newShowCommand(g *globals) *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "show NAME|MAC|SLOT",
		Short: "Show one machine, its slot and its timeline (or an empty slot)",
		Long: `show prints a machine found by name, MAC or id, with its timeline. A name (or
switch/port key) of a slot nothing has booted in yet shows the slot and says it
is empty. Exit code 5 when neither exists.`,
		Args: args(1, "a machine name, MAC or slot"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := out.check(); err != nil {
				return err
			}
			b, err := g.backend(cmd.Context())
			if err != nil {
				return err
			}
			defer b.Close()
			sh, err := b.Show(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			if out.format == "json" {
				return writeJSON(g.env.stdout, sh)
			}
			if sh.Machine == nil {
				return printEmptySlot(g.env.stdout, sh.Slot)
			}
			return printMachine(g.env.stdout, sh.Machine, sh.Timeline)
		},
	}
	out.register(cmd)
	return cmd
}
