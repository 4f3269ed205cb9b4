package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/drover/drover/internal/catalogue"
	"github.com/drover/drover/internal/store"
)

func newArtifactsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "artifacts",
		Short: "The artifact catalogue: OS images by name, version, SHA-256 and channel",
		Long: `The catalogue holds every version of the images profiles install, each file
stored once by its SHA-256 under ARTIFACTS/sha256/. A profile names an image
(image: NAME, or NAME@CHANNEL); the channel defaults to the zone's environment,
so a new version goes to test first and 'promote' moves it to prod.
These commands work on the server's host, on its database (--db) and its
artifact directory (--artifacts, the same as drover serve's).`,
	}
	var dir, channel string
	// withStore runs fn on the local database: files are not uploaded through the API.
	withStore := func(ctx context.Context, fn func(st *store.DB) error) error {
		if g.remote() {
			return &usageError{errors.New("artifacts commands run on the server's host with --db and --artifacts (files are not uploaded through the API)")}
		}
		st, err := g.open(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		return fn(st)
	}
	add := &cobra.Command{
		Use:   "add NAME VERSION FILE [--channel CHANNEL]",
		Short: "Add a version (raw or gzip-compressed raw disk image), optionally onto a channel",
		Args:  args(3, "a name, a version and a file"),
		RunE: func(cmd *cobra.Command, a []string) error {
			f, err := os.Open(a[2])
			if err != nil {
				return err
			}
			defer f.Close()
			var art store.Artifact
			if err := withStore(cmd.Context(), func(st *store.DB) error {
				art, err = catalogue.Add(cmd.Context(), st, dir, a[0], a[1], channel, actorName(), f)
				return err
			}); err != nil {
				return err
			}
			fmt.Fprintf(g.env.stdout, "%s %s: sha256 %s, %d bytes (%s, %d bytes on disk)", art.Name, art.Version, art.SHA256, art.Size, art.Format, art.Disk)
			if channel != "" {
				fmt.Fprintf(g.env.stdout, ", on channel %s", channel)
			}
			fmt.Fprintln(g.env.stdout)
			return nil
		},
	}
	add.Flags().StringVar(&channel, "channel", "", "point this channel at the new version (e.g. test)")
	var out outputFlag
	list := &cobra.Command{
		Use:   "list",
		Short: "List every version and the channels pointing at it",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var as []store.Artifact
			if err := withStore(cmd.Context(), func(st *store.DB) (err error) {
				as, err = st.Artifacts(cmd.Context())
				return err
			}); err != nil {
				return err
			}
			if out.format == "json" {
				return writeJSON(g.env.stdout, as)
			}
			w := tabwriter.NewWriter(g.env.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tVERSION\tCHANNELS\tFORMAT\tSIZE\tSHA256\tADDED")
			for _, a := range as {
				chs := "-"
				if len(a.Channels) > 0 {
					chs = fmt.Sprint(a.Channels)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s by %s\n", a.Name, a.Version, chs, a.Format, a.Size, a.SHA256[:16], a.Added.Format("2006-01-02 15:04"), a.AddedBy)
			}
			return w.Flush()
		},
	}
	out.register(list)
	promote := &cobra.Command{
		Use:   "promote NAME VERSION --channel CHANNEL",
		Short: "Point a channel (e.g. prod) at a version",
		Args:  args(2, "a name and a version"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if channel == "" {
				return &usageError{errors.New("give --channel, e.g. --channel prod")}
			}
			if err := withStore(cmd.Context(), func(st *store.DB) error { return st.Promote(cmd.Context(), a[0], a[1], channel) }); err != nil {
				return err
			}
			fmt.Fprintf(g.env.stdout, "channel %s of %s is now version %s; machines installing from now on get it (roll it out with drover rollout start --profile ...)\n", channel, a[0], a[1])
			return nil
		},
	}
	promote.Flags().StringVar(&channel, "channel", "", "the channel to move")
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Forget versions no channel points at, and delete their files",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var removed []store.Artifact
			err := withStore(cmd.Context(), func(st *store.DB) (err error) {
				removed, err = catalogue.GC(cmd.Context(), st, dir)
				return err
			})
			for _, a := range removed {
				fmt.Fprintf(g.env.stdout, "removed %s %s (sha256 %s)\n", a.Name, a.Version, a.SHA256[:16])
			}
			if len(removed) == 0 {
				fmt.Fprintln(g.env.stdout, "nothing to remove: every version is on a channel")
			}
			return err
		},
	}
	cmd.PersistentFlags().StringVar(&dir, "artifacts", "artifacts", "the artifact directory drover serve serves")
	cmd.AddCommand(add, list, promote, gc)
	return cmd
}

// actorName is who runs a local command, for the catalogue's added_by.
func actorName() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}
