package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/pipeline"
)

func newApprovalsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "approvals", Short: "List, approve or reject transfers held for approval"}

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List transfers awaiting approval, newest first, with who approved them so far",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			l, err := g.openLedger(ctx)
			if err != nil {
				return err
			}
			defer l.Close()
			held, err := heldTransfers(ctx, l)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), orEmpty(held))
			}
			return writeHeldTable(cmd.OutOrStdout(), held)
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	approve := &cobra.Command{
		Use:   "approve ID",
		Short: "Approve a transfer (not your own); the last approval its route needs sends it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var approvals int
			return g.act(cmd, func(ctx context.Context, op *pipeline.Operator) (ledger.Transfer, error) {
				tr, n, err := op.Approve(ctx, args[0])
				approvals = n
				return tr, err
			}, func(tr ledger.Transfer) string {
				if tr.State == ledger.Delivering {
					return fmt.Sprintf("approved (%d approvals): it will be sent", approvals)
				}
				return fmt.Sprintf("approved (%d so far): it waits for more", approvals)
			})
		},
	}

	var reason string
	reject := &cobra.Command{
		Use:   "reject ID --reason TEXT",
		Short: "Reject a transfer: nothing is sent, nothing deleted (audited with the reason)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.act(cmd, func(ctx context.Context, op *pipeline.Operator) (ledger.Transfer, error) {
				return op.Reject(ctx, args[0], reason)
			}, said("rejected; nothing was sent"))
		},
	}
	reject.Flags().StringVar(&reason, "reason", "", "why (required; kept in the audit log)")

	cmd.AddCommand(list, approve, reject)
	return cmd
}

// heldTransfer is a transfer awaiting approval, with who approved it.
type heldTransfer struct {
	ledger.Transfer
	Approvers []string `json:"approvers"`
}

func heldTransfers(ctx context.Context, l *ledger.Ledger) ([]heldTransfer, error) {
	trs, err := l.List(ctx, ledger.Filter{States: []ledger.State{ledger.AwaitingApproval}})
	if err != nil {
		return nil, err
	}
	held := make([]heldTransfer, len(trs))
	for i, tr := range trs {
		who, err := l.Approvers(ctx, tr.ID)
		if err != nil {
			return nil, err
		}
		held[i] = heldTransfer{Transfer: tr, Approvers: orEmpty(who)}
	}
	return held, nil
}

func writeHeldTable(w io.Writer, held []heldTransfer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROUTE\tWRITER\tSIZE\tSHA256\tQUEUED\tAPPROVED BY\tPATH")
	for _, h := range held {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.12s\t%s\t%s\t%s\n", h.ID, h.Route, h.Supplier, h.Size, h.SHA256,
			h.CreatedAt.Format(time.DateTime), strings.Join(h.Approvers, ","), h.Path)
	}
	return tw.Flush()
}
