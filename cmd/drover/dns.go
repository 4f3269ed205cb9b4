package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover/drover/internal/api"
	"github.com/drover/drover/internal/dnszone"
)

// newDNSCommand lists and exports the zones drover is authoritative for.
func newDNSCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "dns", Short: "The DNS zones drover serves (docs/handoff.md)"}
	var out outputFlag
	zones := &cobra.Command{
		Use:   "zones",
		Short: "List the zones a drover server is authoritative for, with their serials",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, zs, err := servedZones(cmd, g)
			if err != nil {
				return err
			}
			if out.format == "json" {
				return writeJSON(g.env.stdout, zs)
			}
			w := tabwriter.NewWriter(g.env.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ZONE\tSERIAL\tRECORDS\tNOTIFY")
			for _, z := range zs {
				fmt.Fprintf(w, "%s\t%d\t%d\t%s\n", z.Zone, z.Serial, z.Records, strings.Join(z.Notify, " "))
			}
			return w.Flush()
		},
	}
	out.register(zones)
	var design string
	export := &cobra.Command{
		Use:   "export DIR",
		Short: "Write every zone as a BIND master file DIR/ZONE.zone",
		Long: `Writes each zone drover is authoritative for (forward zones per domain and
reverse in-addr.arpa zones) as a BIND master file DIR/ZONE.zone, as the server
serves it, serial included (GET /api/v1/dns/zones/ZONE). With --design PATH it
builds them from design files instead, without a server, with the current time
as the serial. Files are replaced whole (written aside, then renamed).`,
		Args: args(1, "a directory"),
		RunE: func(cmd *cobra.Command, a []string) error {
			dir := a[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if design != "" {
				d, err := loadDesign(design)
				if err != nil {
					return err
				}
				set := dnszone.Build(d)
				set.Serials(nil, time.Now())
				for _, z := range set.Zones() {
					if err := writeZoneFile(g, dir, strings.TrimSuffix(z.Origin, "."), func(w io.Writer) error { _, err := z.WriteTo(w); return err }); err != nil {
						return err
					}
				}
				return nil
			}
			c, zs, err := servedZones(cmd, g)
			if err != nil {
				return err
			}
			for _, z := range zs {
				err := writeZoneFile(g, dir, z.Zone, func(w io.Writer) error {
					resp, err := c.request(cmd.Context(), "GET", "/api/v1/dns/zones/"+url.PathEscape(z.Zone), nil)
					if err != nil {
						return err
					}
					defer resp.Body.Close()
					_, err = io.Copy(w, resp.Body)
					return err
				})
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	export.Flags().StringVar(&design, "design", "", "build the zones from this design file or directory instead of asking a server")
	cmd.AddCommand(zones, export)
	return cmd
}

// servedZones asks the server which zones it serves.
func servedZones(cmd *cobra.Command, g *globals) (*apiClient, []api.DNSZone, error) {
	c, err := g.client()
	if err != nil {
		return nil, nil, err
	}
	var zs []api.DNSZone
	if err := c.call(cmd.Context(), "GET", "/api/v1/dns/zones", nil, &zs); err != nil {
		return nil, nil, err
	}
	return c, zs, nil
}

// writeZoneFile writes DIR/ZONE.zone whole or not at all.
func writeZoneFile(g *globals, dir, zone string, write func(io.Writer) error) error {
	if zone == "" || strings.ContainsAny(zone, `/\`) || strings.HasPrefix(zone, ".") {
		return fmt.Errorf("refusing zone name %q as a file name", zone)
	}
	path := filepath.Join(dir, zone+".zone")
	f, err := os.CreateTemp(dir, "."+zone+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := errors.Join(write(f), f.Close()); err != nil {
		return fmt.Errorf("export zone %s: %w", zone, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	fmt.Fprintln(g.env.stdout, path)
	return nil
}
