package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/airlock-gw/airlock/internal/ledger"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Work with the tamper-evident audit chain"}
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check every link of the audit chain; exit 1 on an edited, deleted or truncated event",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.openLedger(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			n, err := l.VerifyAudit(cmd.Context())
			var ce *ledger.ChainError
			if errors.As(err, &ce) {
				fmt.Fprintf(cmd.ErrOrStderr(), "audit chain BROKEN at event %d: %s\n", ce.Seq, ce.Reason)
				return exitError{code: 1}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "audit chain intact: %d events verified\n", n)
			return nil
		},
	}
	cmd.AddCommand(verify)
	return cmd
}
