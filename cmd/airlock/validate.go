package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/policy"
)

func newValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check airlock.yaml and every supplier and dataset file; print each problem as file:line: message",
		Long: "Check airlock.yaml and every supplier and dataset file. Errors are printed as file:line: message, then\n" +
			"warnings (risky but legal settings) as file:line: warning: message. The exit status is 1\n" +
			"if there is any error; warnings alone do not fail.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, warnings, err := config.Check(g.configPath)
			var errs config.Errors
			if err != nil && !errors.As(err, &errs) {
				return err
			}
			if cfg != nil {
				// The documents `airlock policy` would write must be valid too.
				errs = policy.Check(cfg)
			}
			stderr := cmd.ErrOrStderr()
			for _, e := range errs {
				fmt.Fprintln(stderr, e.Error())
			}
			for _, w := range warnings {
				fmt.Fprintln(stderr, w.Error())
			}
			if len(errs) > 0 {
				fmt.Fprintf(stderr, "%s, %s found\n", count(len(errs), "error"), count(len(warnings), "warning"))
				return exitError{code: 1}
			}
			datasets := ""
			if n := cfg.Datasets.Len(); n > 0 {
				datasets = ", " + count(n, "dataset")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%s%s, %s)\n", g.configPath,
				count(cfg.Suppliers.Len(), "supplier"), datasets, count(len(warnings), "warning"))
			return nil
		},
	}
}

// count formats n with unit, in the plural unless n is 1.
func count(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
