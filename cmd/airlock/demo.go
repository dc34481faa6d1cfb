package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/sftpd"
)

// The demo's supplier and push dataset.
const (
	demoSupplier = "demo"
	demoDataset  = "demo_extract"
)

func newDemoCmd(g *globals) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Create a demo configuration with one supplier, one push dataset and a client key, then serve it",
		Long: `demo writes a complete configuration tree into --dir (only files that are
missing: an existing tree is reused), with one supplier "demo" whose key pair it
generates and one push dataset "demo_extract", and then runs the gateway on
embedded defaults: SQLite, local stores, SFTP on 127.0.0.1:2222 and HTTP on
127.0.0.1:8080.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			keyPath, err := writeDemoTree(dir)
			if err != nil {
				return err
			}
			cfg, err := config.Load(filepath.Join(dir, "airlock.yaml"))
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, log, serveOptions{ready: func() {
				fmt.Fprintf(cmd.OutOrStdout(), `
airlock is running on embedded defaults (state in %[1]s).

  Upload a file as the demo supplier:
    sftp -P 2222 -i %[2]s -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=%[1]s/known_hosts %[3]s@127.0.0.1
    sftp> put README.md

  Send a file out through the push dataset demo_extract:
    cp README.md %[1]s/state/exports/%[4]s/
    (a few seconds later it is in %[1]s/sent/%[4]s/ and gone from the export area)

  Then look at the ledger:
    go run ./cmd/airlock transfers list --config %[1]s/airlock.yaml

  Health and metrics: http://127.0.0.1:8080/readyz  http://127.0.0.1:8080/metrics
  Stop with Ctrl-C.

`, dir, keyPath, demoSupplier, demoDataset)
			}})
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".airlock-demo", "directory of the demo configuration and state")
	return cmd
}

// writeDemoTree creates the demo configuration in dir, keeping whatever is
// already there, and returns the path of the client's private key.
func writeDemoTree(dir string) (string, error) {
	keyPath := filepath.Join(dir, "demo_ed25519")
	for _, sub := range []string{"suppliers", "datasets", filepath.Join("state", "exports", demoDataset)} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
			return "", err
		}
	}
	pub, err := demoClientKey(keyPath)
	if err != nil {
		return "", fmt.Errorf("demo client key: %w", err)
	}
	files := map[string]string{
		"airlock.yaml": `# airlock demo configuration: embedded defaults, loopback only.
sftp:
  listen: "127.0.0.1:2222"
  host_keys: ["state/ssh_host_ed25519_key"]
http:
  listen: "127.0.0.1:8080"
database: "sqlite:state/airlock.db"
landing: "state/landing"
quarantine: "state/quarantine"
limits:
  max_file_size: "5GB"
suppliers_dir: "suppliers"
watch:
  every: "1s"   # the export area is listed every second (default 5s)
`,
		"suppliers/" + demoSupplier + ".yaml": fmt.Sprintf(`name: %s
email: demo@example.org
allowed_ips: ["127.0.0.1/32", "::1/128"]
ssh_keys: [%q]
destination:
  url: "delivered/%s"
`, demoSupplier, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))+" demo", demoSupplier),
		"datasets/" + demoDataset + ".yaml": fmt.Sprintf(`# A push dataset: what is written under state/exports/%[1]s/ is sent to
# sent/%[1]s/, verified, and removed from the export area.
name: %[1]s
paperwork: "https://example.org/dpia/%[1]s"
users: ["demo_user"]
bucket: "sent/%[1]s"
`, demoDataset),
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			return "", err
		}
	}
	return keyPath, nil
}

// demoClientKey loads the demo client's key pair, generating it (0600) on
// first use.
func demoClientKey(path string) (ssh.PublicKey, error) {
	signer, err := sftpd.LoadOrCreateKey(path, "airlock demo supplier")
	if err != nil {
		return nil, err
	}
	return signer.PublicKey(), nil
}
