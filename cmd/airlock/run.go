package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// run serves on the listeners until ctx ends (SIGTERM), then drains: the
// SFTP server and the job queue settle within sftp.drain_timeout while the
// HTTP listener runs on, its /readyz failing, and the audit checkpoints
// cover what the drain settles; a last checkpoint covers it all.
func (n *node) run(ctx context.Context, sftpLn, httpLn net.Listener, httpSrv *http.Server) error {
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
	drain(func() error { return n.srv.Serve(ctx, sftpLn) })
	drain(func() error { return n.queue.Run(ctx, n.cfg.SFTP.DrainTimeout) })
	grp.Go(func() error {
		draining.Wait()
		stopRest()
		return nil
	})
	grp.Go(func() error {
		n.log.Info("http listening", "addr", httpLn.Addr().String())
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
	if n.console != nil {
		grp.Go(func() error {
			n.log.Info("console listening", "addr", n.consoleLn.Addr().String())
			return n.console.Serve(ctx, n.consoleLn)
		})
	}
	grp.Go(func() error { return n.suppliers.Watch(ctx) })
	grp.Go(func() error { return n.datasets.Watch(ctx) })
	grp.Go(func() error { return n.routeReloader.Watch(ctx) })
	grp.Go(func() error { return n.notifier.Run(ctx) })
	grp.Go(func() error {
		return reloadOnHangup(ctx, n.suppliers.Reload, n.datasets.Reload, n.routeReloader.Reload)
	})
	grp.Go(func() error { return n.poller.Run(ctx) })
	grp.Go(func() error { n.watchRoutes(ctx); return nil })
	grp.Go(func() error { return n.checkpointer.Run(rest) })
	err := grp.Wait()
	// Everything has stopped appending: the last checkpoint covers it all.
	finalCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	_ = n.checkpointer.Checkpoint(finalCtx) // logged there
	cancel()
	n.log.Info("airlock stopped")
	return err
}
