package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-gw/airlock/internal/ledger"
)

func newBatchesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "batches", Short: "Inspect the batches routes' flags started"}
	var (
		route, state string
		limit        int
		asJSON       bool
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List batches, newest first, with their members counted by state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains([]string{"", ledger.BatchOpen, ledger.BatchDelivered, ledger.BatchFailed}, state) {
				return fmt.Errorf("--state %q: want %s, %s or %s", state, ledger.BatchOpen, ledger.BatchDelivered, ledger.BatchFailed)
			}
			l, err := g.openLedger(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			bs, err := l.Batches(cmd.Context(), ledger.BatchFilter{Route: route, State: state, Limit: limit})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), orEmpty(bs))
			}
			return writeBatchTable(cmd.OutOrStdout(), bs)
		},
	}
	list.Flags().StringVar(&route, "route", "", "only this route's batches")
	list.Flags().StringVar(&state, "state", "", "only batches in this state: open, delivered or failed")
	list.Flags().IntVar(&limit, "limit", 0, "at most this many (0: all)")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var showJSON bool
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a batch and its members: its manifest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := g.openLedger(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			b, err := l.GetBatch(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			members, err := l.List(cmd.Context(), ledger.Filter{Batch: b.ID})
			if err != nil {
				return err
			}
			if showJSON {
				return writeJSON(cmd.OutOrStdout(), struct {
					ledger.Batch
					Members []ledger.Transfer `json:"members"`
				}{b, orEmpty(members)})
			}
			if err := writeBatchTable(cmd.OutOrStdout(), []ledger.Batch{b}); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return writeTransferTable(cmd.OutOrStdout(), members)
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "print JSON")
	cmd.AddCommand(list, show)
	return cmd
}

func writeBatchTable(w io.Writer, bs []ledger.Batch) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROUTE\tSTARTED\tFILES\tDELIVERED\tFAILED\tSTATE\tRERUNS\tTRIGGER")
	for _, b := range bs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", b.ID, b.Route, b.CreatedAt.Format(time.DateTime), b.Files,
			b.States[ledger.Delivered], b.States[ledger.Failed]+b.States[ledger.Rejected], b.State, b.Reruns, b.Trigger)
	}
	return tw.Flush()
}
