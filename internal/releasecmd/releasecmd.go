// Package releasecmd is the release client's command line: `airlock
// release` in the gateway's binary, and the whole of airlock-release, the
// small binary for desktops (internal/release does the work).
package releasecmd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/airlock-gw/airlock/internal/names"
	"github.com/airlock-gw/airlock/internal/release"
)

// New is the release command as name runs it: "airlock release", or
// "airlock-release".
func New(name string) *cobra.Command {
	words := strings.Fields(name)
	var (
		to       string
		creds    release.Credentials
		asJSON   bool
		dryRun   bool
		partMiB  int64
		jobs     int
		parts    int
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   words[len(words)-1] + " FILE|DIR… --to s3://bucket/prefix",
		Short: "Release files from this computer into the TRE's release inbox",
		Long: "Send files and directories (their contents, by relative path) to --to, then write\n" +
			release.ManifestName + " there last. Each file's sha256 is stored as object metadata and the\n" +
			"full-object CRC64NVME checksum is checked. Running it again skips complete files and\n" +
			"continues unfinished uploads. Credentials come from the AWS chain (environment, AWS_PROFILE or\n" +
			"--profile, SSO, credential_process), optionally assuming --role-arn. Needs no config file.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return errors.New("--to is required: s3://bucket/prefix")
			}
			target, err := release.ParseTarget(to)
			if err != nil {
				return err
			}
			// The gateway's name policy: what the TRE would refuse is refused here first.
			files, err := release.Plan(args, names.CheckPath)
			if err != nil {
				return fmt.Errorf("nothing sent: %w", err)
			}
			o := release.Options{Target: target, Files: files, PartSize: partMiB << 20, Parts: parts, Jobs: jobs, DryRun: dryRun}
			var client release.Client
			if dryRun {
				o.Who = release.OSUser()
			} else {
				creds.MFACode, creds.Login = askMFA, name+" login"
				cfg, err := release.LoadConfig(cmd.Context(), target, creds)
				if err != nil {
					return err
				}
				client = release.NewS3Client(cfg, target)
				o.Who = release.Who(cmd.Context(), cfg, target)
			}
			if asJSON {
				o.Report = release.NewJSONReporter(cmd.OutOrStdout())
			} else {
				p := release.NewProgress(cmd.ErrOrStderr(), term.IsTerminal(int(os.Stderr.Fd())), interval)
				defer p.Close()
				o.Report = p
			}
			// The transfer manager logs a failed completion with the
			// standard logger; the error it returns says the same.
			log.SetOutput(io.Discard)
			r, err := release.New(client, o)
			if err != nil {
				return err
			}
			return r.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "where to release: s3://bucket/prefix[?region=…&endpoint=…&use_path_style=true]")
	f.StringVar(&creds.Profile, "profile", "", "AWS profile (default: AWS_PROFILE, else the default profile)")
	f.StringVar(&creds.RoleARN, "role-arn", "", "assume this IAM role with the credentials of the profile or environment")
	f.StringVar(&creds.MFASerial, "mfa", "", "with --role-arn: the MFA device's serial or ARN; the code is asked for on the terminal")
	f.BoolVar(&asJSON, "json", false, "print one JSON event per line on stdout instead of progress bars")
	f.BoolVar(&dryRun, "dry-run", false, "list what would be sent, with sizes and sha256, and send nothing")
	f.Int64Var(&partMiB, "part-size", 8, "MiB per part; files this large or larger go in parts (at least 5)")
	f.IntVar(&jobs, "jobs", 4, "files sent at once")
	f.IntVar(&parts, "parts", 4, "parts of one file sent at once")
	f.DurationVar(&interval, "progress-every", 10*time.Second, "without a terminal: how often to print the total")
	cmd.AddCommand(newReleaseLoginCmd())
	return cmd
}

func newReleaseLoginCmd() *cobra.Command {
	var (
		profile   string
		noBrowser bool
	)
	cmd := &cobra.Command{
		Use:   "login --profile P",
		Short: "Sign in to IAM Identity Center (SSO) for a profile, as `aws sso login` does",
		Long: "Sign in with the device authorization flow: print a URL and a code (and open the browser),\n" +
			"wait for the approval, and write the token to the AWS CLI's SSO cache (~/.aws/sso/cache),\n" +
			"where both airlock and the AWS CLI read it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if profile == "" {
				profile = os.Getenv("AWS_PROFILE")
			}
			if profile == "" {
				return errors.New("--profile is required: the profile with the sso_session to sign in to")
			}
			open := openBrowser
			if noBrowser {
				open = nil
			}
			return release.Login(cmd.Context(), profile, cmd.ErrOrStderr(), open)
		},
	}
	cmd.Flags().StringVar(&profile, "profile", "", "the AWS profile to sign in for (default: AWS_PROFILE)")
	cmd.Flags().BoolVar(&noBrowser, "no-browser", false, "only print the URL and the code")
	return cmd
}

// openBrowser starts the desktop's browser on url, without waiting for it.
func openBrowser(url string) error {
	var c *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		c = exec.Command("open", url)
	case "windows":
		c = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		c = exec.Command("xdg-open", url)
	}
	if err := c.Start(); err != nil {
		return err
	}
	go func() { _ = c.Wait() }()
	return nil
}

// askMFA reads the MFA code from the terminal.
func askMFA() (string, error) {
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return "", errors.New("--mfa needs a terminal to ask for the code")
	}
	fmt.Fprint(os.Stderr, "MFA code: ")
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read MFA code: %w", err)
	}
	return strings.TrimSpace(line), nil
}
