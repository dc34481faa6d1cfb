package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-gw/airlock/internal/config"
)

// keyRow is one supplier key as `airlock keys list` prints it.
type keyRow struct {
	Supplier    string     `json:"supplier"`
	Type        string     `json:"type"`
	Bits        int        `json:"bits"` // RSA only; 0 for other types
	Fingerprint string     `json:"fingerprint"`
	Comment     string     `json:"comment"`
	Expires     *time.Time `json:"expires"`     // first instant refused; null: never
	ExpiryDate  string     `json:"expiry_date"` // last day accepted (UTC); "" for never
	DaysLeft    *int       `json:"days_left"`   // null: never expires; 0 once expired
	Status      string     `json:"status"`      // ok, expiring or expired
}

func newKeysCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Inspect the suppliers' SSH keys"}
	var (
		within   string
		expiring bool
		asJSON   bool
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List every supplier key with its type, fingerprint, expiry and status",
		Long: "List every supplier key. STATUS is ok, \"expires in N days\" when the key expires\n" +
			"within --within, or EXPIRED (the key is refused).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			window, err := config.ParseDuration(within)
			if err != nil {
				return fmt.Errorf("--within: %w", err)
			}
			cfg, err := config.Load(g.configPath)
			if err != nil {
				return err
			}
			rows := keyRows(cfg.Suppliers, time.Now(), window, expiring)
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), rows)
			}
			return writeKeyTable(cmd.OutOrStdout(), rows)
		},
	}
	list.Flags().StringVar(&within, "within", "30d", `how far ahead an expiry counts as soon, like "30d" or "72h"`)
	list.Flags().BoolVar(&expiring, "expiring", false, "only keys that expire within --within or have expired")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(list)
	return cmd
}

// keyRows lists the keys of every supplier, by supplier name and then in
// file order; onlyDue keeps those expiring within window or expired.
func keyRows(s *config.Suppliers, now time.Time, window time.Duration, onlyDue bool) []keyRow {
	rows := []keyRow{}
	for _, sup := range s.All() {
		for _, k := range sup.SSHKeys {
			status := k.StatusAt(now, window)
			if onlyDue && status == config.KeyOK {
				continue
			}
			r := keyRow{Supplier: sup.Name, Type: k.Type, Bits: k.Bits, Fingerprint: k.Fingerprint,
				Comment: k.Comment, ExpiryDate: k.ExpiryDate(), Status: string(status)}
			if !k.Expires.IsZero() {
				exp, days := k.Expires.UTC(), config.DaysLeft(k.Expires, now)
				r.Expires, r.DaysLeft = &exp, &days
			}
			rows = append(rows, r)
		}
	}
	return rows
}

func writeKeyTable(w io.Writer, rows []keyRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SUPPLIER\tTYPE\tFINGERPRINT\tCOMMENT\tEXPIRES\tSTATUS")
	for _, r := range rows {
		typ := r.Type
		if r.Bits > 0 {
			typ = fmt.Sprintf("%s %d", r.Type, r.Bits)
		}
		expires := "never"
		if r.Expires != nil {
			expires = r.ExpiryDate
			if r.Expires.Truncate(24*time.Hour) != *r.Expires { // a time, not a date
				expires = r.Expires.Format(time.RFC3339)
			}
		}
		status := "ok"
		switch config.KeyStatus(r.Status) {
		case config.KeyExpiring:
			status = "expires in " + count(*r.DaysLeft, "day")
		case config.KeyExpired:
			status = "EXPIRED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Supplier, typ, r.Fingerprint, r.Comment, expires, status)
	}
	return tw.Flush()
}
