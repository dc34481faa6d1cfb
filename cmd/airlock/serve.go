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
	"sync"
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
	"github.com/airlock-gw/airlock/internal/pipeline"
	"github.com/airlock-gw/airlock/internal/scan"
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
	logWarnings(log, cfg.Warnings)
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
	quarantine, err := storage.Open(ctx, cfg.Quarantine)
	if err != nil {
		return err
	}
	defer quarantine.Close()
	// What a crash left half written can go; what another node writes
	// into a shared directory stays (see storage.ClearStaging).
	for _, st := range []*storage.Store{landing, quarantine} {
		if n, err := st.ClearStaging(); err != nil {
			return err
		} else if n > 0 {
			log.Info("removed writes cut short by the last stop", "store", st.String(), "files", n)
		}
	}
	scanner, err := openScanner(cfg.Scanner, log)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	checkpointer, err := newCheckpointer(ctx, cfg, led, log, reg)
	if err != nil {
		return err
	}
	defer checkpointer.Store.Close()

	// Set before the reloads start (Watch and SIGHUP, below): a reload
	// re-checks the live sessions against the new set.
	var srv *sftpd.Server
	suppliers := config.NewReloader(cfg.SuppliersDir, filepath.Dir(cfg.File), cfg.Suppliers,
		func(ctx context.Context, s *config.Suppliers, err error) {
			ev := ledger.Event{Kind: "config.reload", Actor: "system", Detail: map[string]string{"suppliers_dir": cfg.SuppliersDir}}
			if err != nil {
				log.Error("supplier reload refused; keeping the previous configuration", "err", err)
				ev.Detail["error"] = err.Error()
			} else {
				log.Info("suppliers reloaded", "suppliers", s.Len())
				ev.Detail["suppliers"] = fmt.Sprint(s.Len())
				if w := s.Warnings(); len(w) > 0 {
					logWarnings(log, w)
					ev.Detail["warnings"] = w.Error()
				}
			}
			if _, aerr := led.Append(ctx, ev); aerr != nil {
				log.Error("append audit event", "kind", ev.Kind, "err", aerr)
			}
			if err == nil {
				if n := srv.Revalidate(ctx, s); n > 0 {
					log.Warn("sessions the reload no longer allows were closed", "sessions", n)
				}
			}
		})

	mailer, err := openMailer(cfg.Notify, log)
	if err != nil {
		return err
	}
	notifier := &notify.KeyExpiryNotifier{
		Suppliers: suppliers.Current,
		Ledger:    led,
		Operators: cfg.Notify.Operators,
		Lead:      cfg.Notify.KeyExpiryNotice,
		Log:       log,
	}
	deps := pipeline.Deps{
		Ledger:     led,
		Landing:    landing,
		Quarantine: quarantine,
		Suppliers:  suppliers.Current,
		Scanner:    scanner,
		TooLarge:   cfg.Scanner.TooLarge,
		Operators:  cfg.Notify.Operators,
		Metrics:    pipeline.NewMetrics(reg),
		Log:        log,
	}
	if mailer != nil { // a nil *Mailer in an interface would not be nil
		notifier.Mailer, deps.Mailer = mailer, mailer
	}
	if wh := cfg.Notify.Webhook; wh != nil {
		if deps.Webhook, err = notify.NewWebhook(wh.URL, wh.SecretEnv, os.Getenv, nil); err != nil {
			return err
		}
	}
	workers := pipeline.NewWorkers(deps)
	defer func() {
		if err := workers.Close(); err != nil {
			log.Warn("close destination stores", "err", err)
		}
	}()
	queue, err := pipeline.Open(ctx, led, cfg.Node, cfg.Pipeline, workers, log)
	if err != nil {
		return err
	}

	srv, err = sftpd.New(sftpd.Options{
		Config:    cfg,
		Suppliers: suppliers.Current,
		Ledger:    led,
		Landing:   landing,
		Logger:    log,
		Metrics:   sftpd.NewMetrics(reg),
		Bans:      led,
		Handoff:   queue.Process,
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
		{Name: "quarantine", Pinger: quarantine},
		{Name: "scanner", Pinger: scanner, Note: scanner.Describe()},
		{Name: "sftp", Pinger: srv}, // fails while draining
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

	// ctx ends at SIGTERM: the SFTP server and the queue drain. The HTTP
	// listener runs on until they are done, its /readyz failing, and the
	// audit checkpoints cover what the drain settles.
	grp, ctx := errgroup.WithContext(ctx)
	rest, stopRest := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRest()
	var draining sync.WaitGroup
	drain := func(run func() error) {
		draining.Add(1)
		grp.Go(func() error {
			defer draining.Done()
			return run()
		})
	}
	drain(func() error { return srv.Serve(ctx, sftpLn) })
	drain(func() error { return queue.Run(ctx, cfg.SFTP.DrainTimeout) })
	grp.Go(func() error {
		draining.Wait()
		stopRest()
		return nil
	})
	grp.Go(func() error {
		log.Info("http listening", "addr", httpLn.Addr().String())
		if err := httpSrv.Serve(httpLn); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	grp.Go(func() error {
		<-rest.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return httpSrv.Shutdown(shutdownCtx)
	})
	grp.Go(func() error { return suppliers.Watch(ctx) })
	grp.Go(func() error { return notifier.Run(ctx) })
	grp.Go(func() error { return reloadOnHangup(ctx, suppliers) })
	grp.Go(func() error { return checkpointer.Run(rest) })
	err = grp.Wait()
	// Everything has stopped appending: the last checkpoint covers it all.
	finalCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	_ = checkpointer.Checkpoint(finalCtx) // logged there
	cancel()
	log.Info("airlock stopped")
	return err
}

// openMailer returns the mailer notifications go through, or nil when no
// SMTP server is configured: notifications are then logged, as said here
// once.
func openMailer(cfg config.Notify, log *slog.Logger) (*notify.Mailer, error) {
	if cfg.SMTP == nil {
		log.Warn("no notify.smtp configured: transfer outcome notifications are logged, not emailed")
		return nil, nil
	}
	return notify.NewMailer(*cfg.SMTP, os.Getenv)
}

// scanner is what serve needs of a malware scanner.
type scanner interface {
	pipeline.Scanner
	httpapi.Pinger
	Describe() string
}

// openScanner returns clamd when configured, else the builtin scanner,
// which is loudly no antivirus.
func openScanner(cfg config.Scanner, log *slog.Logger) (scanner, error) {
	if cfg.Clamd != "" {
		return scan.NewClamd(cfg.Clamd)
	}
	b, err := scan.NewBuiltin(cfg.DenyList)
	if err != nil {
		return nil, err
	}
	log.Warn("no scanner.clamd configured: the builtin scanner is NOT an antivirus", "scanner", b.Describe())
	return b, nil
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

// logWarnings logs the risky but legal settings of a configuration, such
// as a supplier open to every address, each with its file and line.
func logWarnings(log *slog.Logger, warnings config.Errors) {
	for _, w := range warnings {
		log.Warn("risky configuration", "file", w.File, "line", w.Line, "warning", w.Msg)
	}
}
