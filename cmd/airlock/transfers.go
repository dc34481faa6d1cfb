package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/pipeline"
)

// openLedger opens the database named by the configuration.
func (g *globals) openLedger(ctx context.Context) (*ledger.Ledger, error) {
	cfg, err := config.Load(g.configPath)
	if err != nil {
		return nil, err
	}
	return ledger.Open(ctx, cfg.Database)
}

func newTransfersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "transfers", Short: "Inspect the ledger of transfers"}
	var (
		state     string
		direction string
		supplier  string
		route     string
		batch     string
		limit     int
		asJSON    bool
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List transfers, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := ledger.Filter{Supplier: supplier, Route: route, Batch: batch, Limit: limit}
			if state != "" {
				s, err := ledger.ParseState(state)
				if err != nil {
					return fmt.Errorf("--state: %w", err)
				}
				f.States = []ledger.State{s}
			}
			if direction != "" {
				d, err := ledger.ParseDirection(direction)
				if err != nil {
					return fmt.Errorf("--direction: %w", err)
				}
				f.Direction = d
			}
			l, err := g.openLedger(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			trs, err := l.List(cmd.Context(), f)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), orEmpty(trs))
			}
			return writeTransferTable(cmd.OutOrStdout(), trs)
		},
	}
	list.Flags().StringVar(&state, "state", "", "only transfers in this state")
	list.Flags().StringVar(&direction, "direction", "", "only ingress (uploads), egress (downloads and datasets sent) or release")
	list.Flags().StringVar(&supplier, "supplier", "", "only this supplier's (or writer's) transfers")
	list.Flags().StringVar(&route, "route", "", "only the transfers of this dataset or route")
	list.Flags().StringVar(&batch, "batch", "", "only the members of this batch: its manifest")
	list.Flags().IntVar(&limit, "limit", 0, "at most this many (0: all)")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var showJSON bool
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one transfer and its audit events",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := g.openLedger(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			tr, err := l.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			events, err := l.Events(cmd.Context(), tr.ID, 0)
			if err != nil {
				return err
			}
			if showJSON {
				return writeJSON(cmd.OutOrStdout(), struct {
					ledger.Transfer
					Events []ledger.Event `json:"events"`
				}{tr, events})
			}
			return writeTransferDetail(cmd.OutOrStdout(), tr, events)
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "print JSON")

	retry := &cobra.Command{
		Use:   "retry ID",
		Short: "Send a failed transfer through scanning and delivery again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.act(cmd, func(ctx context.Context, op *pipeline.Operator) (ledger.Transfer, error) {
				return op.Retry(ctx, args[0])
			}, said("queued again"))
		},
	}
	cmd.AddCommand(list, show, retry)
	return cmd
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeTransferTable(w io.Writer, trs []ledger.Transfer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDIRECTION\tSTATE\tSUPPLIER\tSIZE\tSHA256\tCREATED\tPATH")
	for _, t := range trs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%.12s\t%s\t%s\n",
			t.ID, t.Direction, t.State, t.Supplier, t.Size, t.SHA256, t.CreatedAt.Format(time.DateTime), t.Path)
	}
	return tw.Flush()
}

func writeTransferDetail(w io.Writer, t ledger.Transfer, events []ledger.Event) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, row := range [][2]string{
		{"id", t.ID}, {"direction", string(t.Direction)}, {"supplier", t.Supplier}, {"route", t.Route}, {"path", t.Path},
		{"size", fmt.Sprint(t.Size)}, {"sha256", t.SHA256}, {"state", string(t.State)},
		{"scan_result", t.ScanResult}, {"destination", t.Destination}, {"error", t.Error},
		{"created_at", t.CreatedAt.Format(time.RFC3339)}, {"updated_at", t.UpdatedAt.Format(time.RFC3339)},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nevents:")
	for _, e := range events {
		fmt.Fprintf(w, "  %s  %-14s %s %v\n", e.At.Format(time.RFC3339), e.Kind, e.Actor, e.Detail)
	}
	return nil
}
