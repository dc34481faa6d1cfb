package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"gocloud.dev/secrets"

	"github.com/airlock-gw/airlock/internal/audit"
	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/console"
	"github.com/airlock-gw/airlock/internal/gcfloor"
	"github.com/airlock-gw/airlock/internal/httpapi"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/notify"
	"github.com/airlock-gw/airlock/internal/pipeline"
	"github.com/airlock-gw/airlock/internal/scan"
	"github.com/airlock-gw/airlock/internal/sftpd"
	"github.com/airlock-gw/airlock/internal/storage"
	"github.com/airlock-gw/airlock/internal/watch"
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

// heapFloor is the heap goal the collector is held at while the live heap
// is small (see gcfloor); a node's live heap is a few MB.
const heapFloor = 32 << 20

// serve runs until ctx ends: it opens each part of the node in turn (a
// node, below), then runs them (run.go).
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, opts serveOptions) error {
	logWarnings(log, cfg.Warnings)
	gcfloor.Hold(ctx, heapFloor)
	n := &node{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	defer n.close()
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, open := range []func(context.Context) error{n.openStores, n.openAudit, n.openPipeline, n.openExports, n.openRoutes, n.openSFTP, n.openConsole} {
		if err := open(ctx); err != nil {
			return err
		}
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
	httpSrv := n.httpServer(opts.profiling)
	log.Info("airlock started", "sftp", sftpLn.Addr().String(), "http", httpLn.Addr().String(),
		"node", cfg.Node, "suppliers", cfg.Suppliers.Len(), "landing", cfg.Landing)
	if opts.ready != nil {
		opts.ready()
	}
	return n.run(ctx, sftpLn, httpLn, httpSrv)
}

// node is what serve opens, part by part; close undoes it in reverse.
type node struct {
	cfg *config.Config
	log *slog.Logger
	reg *prometheus.Registry

	led                 *ledger.Ledger
	landing, quarantine *storage.Store
	scanner             scan.Scanner
	checkpointer        *audit.Checkpointer
	suppliers           *config.Reloader[config.Suppliers]
	datasets            *config.Reloader[config.Datasets]
	exports             *storage.Store
	poller              *watch.Poller
	routePollers        *watch.Pollers // the routes' pollers of the day, kicked by notifications too
	watchMetrics        *watch.Metrics
	keepers             map[string]*secrets.Keeper // the key services routes unwrap data keys with, by name
	routeSet            atomic.Pointer[routeSet]   // the routes in force
	routeReloader       *config.Reloader[config.Routes]
	nextRoutes          *routeSet     // opened by checkRoutes, for routesReloaded to put in force
	routesChanged       chan struct{} // routesReloaded → watchRoutes
	notifications       http.Handler  // bucket notifications: a poll now
	metrics             *pipeline.Metrics
	notifier            *notify.KeyExpiryNotifier
	queue               *pipeline.Queue
	srv                 *sftpd.Server
	console             *console.Console // nil: none configured
	consoleLn           net.Listener

	closers []func()
}

func (n *node) onClose(f func()) { n.closers = append(n.closers, f) }

func (n *node) close() {
	for _, f := range slices.Backward(n.closers) {
		f()
	}
}

// openStores opens the ledger and the stores uploads land in, and clears
// what a crash left half written in them; what another node writes into
// a shared directory stays (see storage.ClearStaging).
func (n *node) openStores(ctx context.Context) error {
	var err error
	if n.led, err = ledger.Open(ctx, n.cfg.Database); err != nil {
		return err
	}
	n.onClose(func() { n.led.Close() })
	if n.landing, err = storage.Open(ctx, n.cfg.Landing); err != nil {
		return err
	}
	n.onClose(func() { n.landing.Close() })
	if n.quarantine, err = storage.Open(ctx, n.cfg.Quarantine); err != nil {
		return err
	}
	n.onClose(func() { n.quarantine.Close() })
	for _, st := range []*storage.Store{n.landing, n.quarantine} {
		if cleared, err := st.ClearStaging(); err != nil {
			return err
		} else if cleared > 0 {
			n.log.Info("removed writes cut short by the last stop", "store", st.String(), "files", cleared)
		}
	}
	n.scanner, err = openScanner(n.cfg.Scanner, n.log)
	return err
}

// openAudit opens the audit checkpoints' store and signing key.
func (n *node) openAudit(ctx context.Context) error {
	var err error
	if n.checkpointer, err = newCheckpointer(ctx, n.cfg, n.led, n.log, n.reg); err != nil {
		return err
	}
	n.onClose(func() { n.checkpointer.Store.Close() })
	return nil
}

// openPipeline opens the supplier files (reloaded on change), the
// notifiers and the job queue with its workers.
func (n *node) openPipeline(ctx context.Context) error {
	n.suppliers = config.NewReloader(n.cfg.SuppliersDir, filepath.Dir(n.cfg.File), n.cfg.Suppliers, n.reloaded)
	n.datasets = config.NewDatasetReloader(n.cfg.DatasetsDir, filepath.Dir(n.cfg.File), n.cfg.Datasets,
		func(ctx context.Context, d *config.Datasets, err error) {
			n.auditReload(ctx, "dataset", n.cfg.DatasetsDir, d.Len(), nil, err, nil)
		})
	mailer, err := openMailer(n.cfg.Notify, n.log)
	if err != nil {
		return err
	}
	n.metrics = pipeline.NewMetrics(n.reg)
	n.notifier = &notify.KeyExpiryNotifier{
		Suppliers: n.suppliers.Current,
		Ledger:    n.led,
		Operators: n.cfg.Notify.Operators,
		Lead:      n.cfg.Notify.KeyExpiryNotice,
		Log:       n.log,
	}
	deps := pipeline.Deps{
		Ledger:     n.led,
		Landing:    n.landing,
		Quarantine: n.quarantine,
		Suppliers:  n.suppliers.Current,
		Routes:     n.routes,
		Retention:  pullRetention(n.datasets.Current),
		Scanner:    n.scanner,
		TooLarge:   n.cfg.Scanner.TooLarge,
		Operators:  n.cfg.Notify.Operators,
		Metrics:    n.metrics,
		Log:        n.log,
	}
	if mailer != nil { // a nil *Mailer in an interface would not be nil
		n.notifier.Mailer, deps.Mailer = mailer, mailer
	}
	if wh := n.cfg.Notify.Webhook; wh != nil {
		if deps.Webhook, err = notify.NewWebhook(wh.URL, wh.SecretEnv, os.Getenv, nil); err != nil {
			return err
		}
	}
	workers := pipeline.NewWorkers(deps)
	n.onClose(func() {
		if err := workers.Close(); err != nil {
			n.log.Warn("close destination stores", "err", err)
		}
	})
	n.queue, err = pipeline.Open(ctx, n.led, n.cfg.Node, n.cfg.Pipeline, workers, n.log)
	return err
}

// reloaded logs and audits a reload of the supplier files, and closes the
// live sessions the new set no longer allows.
func (n *node) reloaded(ctx context.Context, s *config.Suppliers, err error) {
	n.auditReload(ctx, "supplier", n.cfg.SuppliersDir, s.Len(), s.Warnings(), err, nil)
	// The reloads start with run, after openSFTP has set srv.
	if err == nil {
		if closed := n.srv.Revalidate(ctx, s); closed > 0 {
			n.log.Warn("sessions the reload no longer allows were closed", "sessions", closed)
		}
	}
}

// auditReload logs and audits a reload of the kind ("supplier") of files
// in dir, which left count of them in force, with what changed (names by
// "added", "changed", "removed"; nil when not told).
func (n *node) auditReload(ctx context.Context, kind, dir string, count int, warns config.Errors, err error, changes map[string]string) {
	ev := ledger.Event{Kind: "config.reload", Actor: "system", Detail: map[string]string{kind + "s_dir": dir}}
	if err != nil {
		n.log.Error(kind+" reload refused; keeping the previous configuration", "err", err)
		ev.Detail["error"] = err.Error()
	} else {
		args := []any{kind + "s", count}
		for _, k := range slices.Sorted(maps.Keys(changes)) {
			ev.Detail[k] = changes[k]
			args = append(args, k, changes[k])
		}
		n.log.Info(kind+"s reloaded", args...)
		ev.Detail[kind+"s"] = fmt.Sprint(count)
		if len(warns) > 0 {
			logWarnings(n.log, warns)
			ev.Detail["warnings"] = warns.Error()
		}
	}
	if _, aerr := n.led.Append(ctx, ev); aerr != nil {
		n.log.Error("append audit event", "kind", ev.Kind, "err", aerr)
	}
}

// openSFTP makes the SFTP server, and fails what this node was receiving
// when it last stopped.
func (n *node) openSFTP(ctx context.Context) error {
	var err error
	n.srv, err = sftpd.New(sftpd.Options{
		Config:    n.cfg,
		Suppliers: n.suppliers.Current,
		Ledger:    n.led,
		Landing:   n.landing,
		Logger:    n.log,
		Metrics:   sftpd.NewMetrics(n.reg),
		Bans:      n.led,
		Handoff:   n.queue.Admit,
	})
	if err != nil {
		return err
	}
	return n.srv.RecoverInterrupted(ctx)
}

// httpServer serves health, readiness, metrics and, if asked, profiles.
func (n *node) httpServer(profiling bool) *http.Server {
	handler := httpapi.New([]httpapi.Check{
		{Name: "database", Pinger: n.led},
		{Name: "landing", Pinger: n.landing},
		{Name: "quarantine", Pinger: n.quarantine},
		{Name: "exports", Pinger: n.exports},
		{Name: "scanner", Pinger: n.scanner, Note: n.scanner.Describe()},
		{Name: "sftp", Pinger: n.srv}, // fails while draining
	}, n.reg, n.log)
	handler = n.withNotifications(handler)
	if profiling {
		handler = httpapi.WithProfiling(handler)
	}
	return &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
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

// openScanner returns clamd when configured, else the builtin scanner,
// which is loudly no antivirus.
func openScanner(cfg config.Scanner, log *slog.Logger) (scan.Scanner, error) {
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

// reloadOnHangup re-reads the supplier, dataset and route files on SIGHUP.
func reloadOnHangup(ctx context.Context, reloads ...func(context.Context) error) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			// The outcomes are logged and audited by the reload callbacks.
			for _, reload := range reloads {
				_ = reload(ctx)
			}
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
