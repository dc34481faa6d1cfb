package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/pipeline"
	"github.com/airlock-gw/airlock/internal/storage"
)

// operator opens what an operator action needs; close releases it all.
func (g *globals) operator(ctx context.Context) (op *pipeline.Operator, closeAll func(), err error) {
	cfg, err := config.Load(g.configPath)
	if err != nil {
		return nil, nil, err
	}
	var closers []func() error
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]() // nothing was written through them that could be lost
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	op = &pipeline.Operator{Actor: operatorName(), Person: operatorPerson(), Routes: routesOf(cfg),
		ReleaseApprovals: cfg.QuarantineReleaseApprovals}
	if op.Ledger, err = ledger.Open(ctx, cfg.Database); err != nil {
		return nil, nil, err
	}
	closers = append(closers, op.Ledger.Close)
	if op.Queue, err = pipeline.Open(ctx, op.Ledger, cfg.Node, cfg.Pipeline, nil, slog.New(slog.DiscardHandler)); err != nil {
		return nil, nil, err
	}
	if op.Landing, err = storage.Open(ctx, cfg.Landing); err != nil {
		return nil, nil, err
	}
	closers = append(closers, op.Landing.Close)
	if op.Quarantine, err = storage.Open(ctx, cfg.Quarantine); err != nil {
		return nil, nil, err
	}
	closers = append(closers, op.Quarantine.Close)
	return op, closeAll, nil
}

// operatorName is who the audit log says acted: the person and, when
// $AIRLOCK_OPERATOR names them, the system user who did.
func operatorName() string {
	p, sys := operatorPerson(), systemUser()
	switch {
	case p == "":
		return "operator"
	case p != sys:
		return "operator:" + p + " (system user " + cmp.Or(sys, "unknown") + ")"
	}
	return "operator:" + p
}

// operatorPerson is the person whose approval counts: $AIRLOCK_OPERATOR
// on an admin host people share an account of, else the system user
// name; "" if unknown.
func operatorPerson() string {
	if p := strings.TrimSpace(os.Getenv("AIRLOCK_OPERATOR")); p != "" {
		return p
	}
	return systemUser()
}

func systemUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

func newQuarantineCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "quarantine", Short: "List, release or delete quarantined files"}

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List quarantined transfers, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.openLedger(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			trs, err := l.List(cmd.Context(), ledger.Filter{States: []ledger.State{ledger.Quarantined}})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), orEmpty(trs))
			}
			return writeQuarantineTable(cmd.OutOrStdout(), trs)
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var (
		reason   string
		skipScan bool
	)
	release := &cobra.Command{
		Use:   "release ID --reason TEXT",
		Short: "Release a quarantined file, rescanned first: with quarantine_release_approvals, request it of others (audited with the reason)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.act(cmd, func(ctx context.Context, op *pipeline.Operator) (ledger.Transfer, error) {
				return op.Release(ctx, args[0], reason, skipScan)
			}, releasedSo)
		},
	}
	release.Flags().StringVar(&reason, "reason", "", "why the file may go out (required; kept in the audit log)")
	release.Flags().BoolVar(&skipScan, "skip-rescan", false, "deliver without scanning again (audited)")

	var deleteReason string
	del := &cobra.Command{
		Use:   "delete ID --reason TEXT",
		Short: "Delete a quarantined file for good (the transfer stays in the ledger)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.act(cmd, func(ctx context.Context, op *pipeline.Operator) (ledger.Transfer, error) {
				return op.Delete(ctx, args[0], deleteReason)
			}, said("deleted from quarantine"))
		},
	}
	del.Flags().StringVar(&deleteReason, "reason", "", "why (required; kept in the audit log)")

	cmd.AddCommand(list, release, del)
	return cmd
}

// act runs one operator action and reports its result.
func (g *globals) act(cmd *cobra.Command, action func(context.Context, *pipeline.Operator) (ledger.Transfer, error), done func(ledger.Transfer) string) error {
	op, closeAll, err := g.operator(cmd.Context())
	if err != nil {
		return err
	}
	defer closeAll()
	tr, err := action(cmd.Context(), op)
	if errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("%w (see `airlock transfers list`)", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %s (state %s)\n", tr.ID, tr.Path, done(tr), tr.State)
	return nil
}

// releasedSo says what a release did: released the file, or requested
// its release of others.
func releasedSo(tr ledger.Transfer) string {
	if tr.State == ledger.Quarantined {
		return "release requested; it waits for approval by others (airlock approvals approve " + tr.ID + ")"
	}
	return "released; it will be delivered once it scans clean"
}

// said is an action's report that is the same whatever the outcome.
func said(s string) func(ledger.Transfer) string {
	return func(ledger.Transfer) string { return s }
}

// orEmpty makes an empty list print as [] rather than null.
func orEmpty[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}

func writeQuarantineTable(w io.Writer, trs []ledger.Transfer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSUPPLIER\tSIZE\tQUARANTINED\tSCAN RESULT\tHELD\tPATH")
	for _, t := range trs {
		held := "yes"
		if t.Destination == "" {
			held = "deleted"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n",
			t.ID, t.Supplier, t.Size, t.UpdatedAt.Format(time.DateTime), t.ScanResult, held, t.Path)
	}
	return tw.Flush()
}
