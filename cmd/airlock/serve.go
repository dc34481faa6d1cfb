package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/httpapi"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/notify"
	"github.com/airlock-gw/airlock/internal/sftpd"
	"github.com/airlock-gw/airlock/internal/storage"
)

func newServeCmd(g *globals) *cobra.Command {
	var profiling bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway: SFTP, HTTP (health, readiness, metrics)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			cfg, err := config.Load(g.configPath)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, log, serveOptions{profiling: profiling})
		},
	}
	cmd.Flags().BoolVar(&profiling, "pprof", false, "serve Go profiles under /debug/pprof/ on the HTTP listener")
	return cmd
}

// serveOptions are the knobs of serve that are not configuration.
type serveOptions struct {
	profiling bool
	ready     func() // called once both listeners are up
}

// serve runs until ctx ends.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, opts serveOptions) error {
	led, err := ledger.Open(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer led.Close()
	landing, err := storage.Open(ctx, cfg.Landing)
	if err != nil {
		return err
	}
	defer landing.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	suppliers := config.NewReloader(cfg.SuppliersDir, filepath.Dir(cfg.File), cfg.Suppliers,
		func(ctx context.Context, s *config.Suppliers, err error) {
			ev := ledger.Event{Kind: "config.reload", Actor: "system", Detail: map[string]string{"suppliers_dir": cfg.SuppliersDir}}
			if err != nil {
				log.Error("supplier reload refused; keeping the previous configuration", "err", err)
				ev.Detail["error"] = err.Error()
			} else {
				log.Info("suppliers reloaded", "suppliers", s.Len())
				ev.Detail["suppliers"] = fmt.Sprint(s.Len())
			}
			if _, aerr := led.Append(ctx, ev); aerr != nil {
				log.Error("append audit event", "kind", ev.Kind, "err", aerr)
			}
		})

	notifier, err := keyExpiryNotifier(cfg, suppliers, led, log)
	if err != nil {
		return err
	}

	srv, err := sftpd.New(sftpd.Options{
		Config:    cfg,
		Suppliers: suppliers.Current,
		Ledger:    led,
		Landing:   landing,
		Logger:    log,
		Metrics:   sftpd.NewMetrics(reg),
	})
	if err != nil {
		return err
	}
	if err := srv.RecoverInterrupted(ctx); err != nil {
		return err
	}

	sftpLn, err := net.Listen("tcp", cfg.SFTP.Listen)
	if err != nil {
		return fmt.Errorf("sftp listen: %w", err)
	}
	httpLn, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		sftpLn.Close()
		return fmt.Errorf("http listen: %w", err)
	}
	handler := httpapi.New([]httpapi.Check{
		{Name: "database", Pinger: led},
		{Name: "landing", Pinger: landing},
	}, reg, log)
	if opts.profiling {
		handler = httpapi.WithProfiling(handler)
	}
	httpSrv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	log.Info("airlock started", "sftp", sftpLn.Addr().String(), "http", httpLn.Addr().String(),
		"node", cfg.Node, "suppliers", cfg.Suppliers.Len(), "landing", cfg.Landing)
	if opts.ready != nil {
		opts.ready()
	}

	grp, ctx := errgroup.WithContext(ctx)
	grp.Go(func() error { return srv.Serve(ctx, sftpLn) })
	grp.Go(func() error {
		log.Info("http listening", "addr", httpLn.Addr().String())
		if err := httpSrv.Serve(httpLn); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	grp.Go(func() error {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return httpSrv.Shutdown(shutdownCtx)
	})
	grp.Go(func() error { return suppliers.Watch(ctx) })
	grp.Go(func() error { return notifier.Run(ctx) })
	grp.Go(func() error { return reloadOnHangup(ctx, suppliers) })
	err = grp.Wait()
	log.Info("airlock stopped")
	return err
}

// keyExpiryNotifier tells suppliers, by email, that a key will expire
// soon. Without SMTP it logs the notices instead, and says so once here.
func keyExpiryNotifier(cfg *config.Config, suppliers *config.Reloader, led *ledger.Ledger, log *slog.Logger) (*notify.KeyExpiryNotifier, error) {
	n := &notify.KeyExpiryNotifier{
		Suppliers: suppliers.Current,
		Ledger:    led,
		Operators: cfg.Notify.Operators,
		Lead:      cfg.Notify.KeyExpiryNotice,
		Log:       log,
	}
	if cfg.Notify.SMTP == nil {
		log.Warn("no notify.smtp configured: notifications are logged, not emailed")
		return n, nil
	}
	mailer, err := notify.NewMailer(*cfg.Notify.SMTP, os.Getenv)
	if err != nil {
		return nil, err
	}
	n.Mailer = mailer
	return n, nil
}

// reloadOnHangup re-reads the supplier files on SIGHUP.
func reloadOnHangup(ctx context.Context, r *config.Reloader) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			// The outcome is logged and audited by the reload callback.
			_ = r.Reload(ctx)
		}
	}
}
