package main

import (
	"context"
	"errors"
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
	cmd := &cobra.Command{Use: "approvals", Short: "List, approve or reject transfers held for approval and requested releases from quarantine"}

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List transfers awaiting approval, newest first, then requested releases from quarantine, with who approved them so far",
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

	var batch string
	approve := &cobra.Command{
		Use:   "approve ID | --batch BATCH",
		Short: "Approve a transfer, a flag batch whole or a release (not your own); the last approval needed sends or releases it",
		Args: func(cmd *cobra.Command, args []string) error {
			if batch != "" {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if batch != "" {
				return g.approveBatch(cmd, batch)
			}
			var approvals int
			return g.act(cmd, func(ctx context.Context, op *pipeline.Operator) (ledger.Transfer, error) {
				tr, n, err := op.Approve(ctx, args[0])
				approvals = n
				return tr, err
			}, func(tr ledger.Transfer) string { return approvedSo(tr.State, approvals) })
		},
	}
	approve.Flags().StringVar(&batch, "batch", "", "approve every file of this batch at once (all must be checked and held)")

	var reason string
	reject := &cobra.Command{
		Use:   "reject ID --reason TEXT",
		Short: "Reject a transfer or a requested release: nothing is sent, nothing deleted (audited with the reason)",
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

// approveBatch approves every member of batch as the operator.
func (g *globals) approveBatch(cmd *cobra.Command, batch string) error {
	op, closeAll, err := g.operator(cmd.Context())
	if err != nil {
		return err
	}
	defer closeAll()
	members, n, err := op.ApproveBatch(cmd.Context(), batch)
	if errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("%w (see `airlock batches list`)", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "batch %s, %d files: %s\n", batch, len(members), approvedSo(members[0].State, n))
	return nil
}

// approvedSo says what an approval did: sent the transfer on (it is
// delivering) or left it waiting for more.
func approvedSo(state ledger.State, approvals int) string {
	switch state {
	case ledger.Delivering:
		return fmt.Sprintf("approved (%d approvals): it will be sent", approvals)
	case ledger.Received:
		return fmt.Sprintf("approved (%d approvals): released from quarantine, it will be delivered once it scans clean (unless the request skipped the rescan)", approvals)
	}
	return fmt.Sprintf("approved (%d so far): it waits for more", approvals)
}

// heldTransfer is a transfer awaiting approval, or a quarantined one
// whose release is requested (Release), with who approved it.
type heldTransfer struct {
	ledger.Transfer
	Approvers []string               `json:"approvers"`
	Release   *ledger.ReleaseRequest `json:"release,omitempty"`
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
	reqs, err := l.ReleaseRequests(ctx)
	if err != nil {
		return nil, err
	}
	for _, req := range reqs {
		tr, err := l.Get(ctx, req.TransferID)
		if err != nil {
			return nil, err
		}
		req.Approvers = orEmpty(req.Approvers)
		held = append(held, heldTransfer{Transfer: tr, Approvers: req.Approvers, Release: &req})
	}
	return held, nil
}

// writeHeldTable lists held transfers; the members of a batch, approved
// whole, share one line, whose ID is the batch's.
func writeHeldTable(w io.Writer, held []heldTransfer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROUTE\tWRITER\tSIZE\tSHA256\tQUEUED\tAPPROVED BY\tPATH")
	batches := map[string]*heldBatch{}
	var lines []*heldBatch
	for _, h := range held {
		b := batches[h.Batch]
		if b == nil || h.Batch == "" || h.Release != nil {
			// A release is of one file, even one of a batch.
			b = &heldBatch{first: h}
			lines = append(lines, b)
			if h.Release == nil {
				batches[h.Batch] = b
			}
		}
		b.files++
		b.size += h.Size
	}
	for _, b := range lines {
		h := b.first
		id, sum, path := h.ID, fmt.Sprintf("%.12s", h.SHA256), h.Path
		switch {
		case h.Release != nil:
			path = fmt.Sprintf("%s (quarantined: release requested by %s: %s)", h.Path, h.Release.Requester, h.Release.Reason)
		case h.Batch != "":
			id, sum, path = h.Batch, "-", fmt.Sprintf("batch of %d files held (approve with --batch)", b.files)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", id, h.Route, h.Supplier, b.size, sum,
			h.CreatedAt.Format(time.DateTime), strings.Join(h.Approvers, ","), path)
	}
	return tw.Flush()
}

// heldBatch is one line of the held table: a transfer, or the held
// members of a batch.
type heldBatch struct {
	first heldTransfer
	files int
	size  int64
}
