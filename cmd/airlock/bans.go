package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-gw/airlock/internal/ledger"
)

func newBansCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "bans", Short: "List or lift the bans of client addresses (shared by all nodes on the database)"}

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the addresses banned now, by address",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.openLedger(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			bans, err := l.Bans(cmd.Context(), time.Now())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), orEmpty(bans))
			}
			return writeBanTable(cmd.OutOrStdout(), bans)
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var reason string
	lift := &cobra.Command{
		Use:   "lift IP",
		Short: "End the ban of an address on every node within 2 s, and forget its failed logins (audited)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ip, err := netip.ParseAddr(args[0])
			if err != nil {
				return fmt.Errorf("lift: %w", err)
			}
			l, err := g.openLedger(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			ev := ledger.Event{Actor: operatorName()}
			if reason != "" {
				ev.Detail = map[string]string{"reason": reason}
			}
			err = l.Lift(cmd.Context(), ip.Unmap(), ev)
			if errors.Is(err, ledger.ErrNotBanned) {
				return fmt.Errorf("%w (see `airlock bans list`)", err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ban lifted; every node lets it in again within 2 s\n", ip.Unmap())
			return nil
		},
	}
	lift.Flags().StringVar(&reason, "reason", "", "why (kept in the audit log)")

	cmd.AddCommand(list, lift)
	return cmd
}

func writeBanTable(w io.Writer, bans []ledger.Ban) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tFAILURES\tBANNED UNTIL\tNODE\tREASON")
	for _, b := range bans {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", b.IP, b.Failures, b.BannedUntil.UTC().Format(time.RFC3339), b.Node, b.Reason)
	}
	return tw.Flush()
}
