package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/airlock-gw/airlock/internal/console"
	"github.com/airlock-gw/airlock/internal/pipeline"
)

// openConsole makes the web console and takes its listener, when
// airlock.yaml has a console section. Its actions go through a
// pipeline.Operator per person, as the CLI's do.
func (n *node) openConsole(ctx context.Context) error {
	cfg := n.cfg.Console
	if cfg == nil {
		return nil
	}
	key, err := consoleKey(cfg.SessionKeyEnv)
	if err != nil {
		return err
	}
	if key == nil {
		n.log.Warn("no console.session_key_env: sessions are sealed with a key made at start; a restart signs everyone out and nodes do not share sessions")
	}
	var secret string
	if env := cfg.OIDC.ClientSecretEnv; env != "" {
		if secret = os.Getenv(env); secret == "" {
			return fmt.Errorf("console.oidc.client_secret_env: $%s is not set", env)
		}
	}
	base := pipeline.Operator{Ledger: n.led, Queue: n.queue, Landing: n.landing, Quarantine: n.quarantine, Routes: n.routes,
		ReleaseApprovals: n.cfg.QuarantineReleaseApprovals}
	n.console, err = console.New(console.Options{
		Config: *cfg, Ledger: n.led, SessionKey: key, ClientSecret: secret, Log: n.log.With("component", "console"),
		Tree: console.Tree{Suppliers: n.suppliers.Current, Datasets: n.datasets.Current, Routes: n.cfg.Routes},
		Health: []console.Check{{Name: "database", Ping: n.led.Ping}, {Name: "landing", Ping: n.landing.Ping},
			{Name: "quarantine", Ping: n.quarantine.Ping}, {Name: "exports", Ping: n.exports.Ping}, {Name: "scanner", Ping: n.scanner.Ping}},
		Operate: func(a console.Actor) console.Operator {
			op := base
			op.Actor, op.Person = a.Name, a.Person
			return &op
		},
	})
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	if n.consoleLn, err = lc.Listen(ctx, "tcp", cfg.Listen); err != nil {
		return fmt.Errorf("console listen: %w", err)
	}
	n.onClose(func() { n.consoleLn.Close() })
	return nil
}

// consoleKey reads the session key from the environment variable env
// (base64, standard or URL alphabet); nil when env is "".
func consoleKey(env string) ([]byte, error) {
	if env == "" {
		return nil, nil
	}
	raw := strings.TrimSpace(os.Getenv(env))
	if raw == "" {
		return nil, fmt.Errorf("console.session_key_env: $%s is not set", env)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(raw); err == nil && len(key) >= 32 {
			return key, nil
		}
	}
	return nil, fmt.Errorf("console.session_key_env: $%s must hold 32 bytes or more in base64 (openssl rand -base64 32)", env)
}
