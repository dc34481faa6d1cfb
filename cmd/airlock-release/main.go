// Command airlock-release is the release client alone, for the desktops of
// those who release data into the TRE: the same command as `airlock
// release`, without the gateway's server, database and job queue, so that
// it builds small for Linux, macOS and Windows.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/airlock-gw/airlock/internal/releasecmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	cmd := releasecmd.New("airlock-release")
	cmd.SilenceUsage, cmd.SilenceErrors = true, true // the error is printed once, below
	err := cmd.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "airlock-release:", err)
		os.Exit(1)
	}
}
