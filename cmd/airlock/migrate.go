package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/pipeline"
)

func newMigrateCmd(g *globals) *cobra.Command {
	var databaseEnv string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Bring the database schema (ledger and job queue) up to date, then exit",
		Long: "Bring the database schema (ledger and job queue) up to date, then exit. serve does the same\n" +
			"at start; run this first (a Helm pre-upgrade Job does) so that an upgrade's schema change\n" +
			"happens once, before any new node starts. With --database-env the configuration is not\n" +
			"read: the Job needs only the database URL, in the environment variable it names.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			database, node, settings := os.Getenv(databaseEnv), "migrate", config.Pipeline{}
			switch {
			case databaseEnv != "" && database == "":
				return fmt.Errorf("--database-env: environment variable %s is not set", databaseEnv)
			case databaseEnv == "":
				cfg, err := config.Load(g.configPath)
				if err != nil {
					return err
				}
				database, node, settings = cfg.Database, cfg.Node, cfg.Pipeline
			}
			ctx := cmd.Context()
			led, err := ledger.Open(ctx, database)
			if err != nil {
				return err
			}
			defer led.Close()
			// Opening the queue migrates River's tables; without workers it
			// runs nothing.
			if _, err := pipeline.Open(ctx, led, node, settings, nil, slog.New(slog.DiscardHandler)); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "database schema up to date")
			return nil
		},
	}
	cmd.Flags().StringVar(&databaseEnv, "database-env", "", "name of an environment variable holding the database URL (sqlite:PATH or postgres://…), read instead of the configuration")
	return cmd
}
