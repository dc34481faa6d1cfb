package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "90s", want: 90 * time.Second},
		{in: "15m", want: 15 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "336h", want: 14 * day},
		{in: "14d", want: 14 * day},
		{in: " 1d ", want: day},
		{in: "0d", want: 0},
		{in: "0", want: 0},
		{in: "1.5h", want: 90 * time.Minute},
		{in: "", wantErr: `invalid duration "": want a number and a unit, like "30s", "15m", "336h" or "14d"`},
		{in: "30", wantErr: `invalid duration "30": want a number and a unit, like "30s", "15m", "336h" or "14d"`},
		{in: "2w", wantErr: `invalid duration "2w": want a number and a unit, like "30s", "15m", "336h" or "14d"`},
		{in: "1d12h", wantErr: `invalid duration "1d12h": want a number and a unit, like "30s", "15m", "336h" or "14d"`},
		{in: "1.5d", wantErr: `invalid duration "1.5d": want a number and a unit, like "30s", "15m", "336h" or "14d"`},
		{in: "-1s", wantErr: `invalid duration "-1s": must not be negative`},
		{in: "106752d", wantErr: `invalid duration "106752d": too large`},
		{in: "99999999999999999999d", wantErr: `invalid duration "99999999999999999999d": too large`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseDuration(tt.in)
			switch {
			case tt.wantErr != "":
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("ParseDuration(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
			case err != nil || got != tt.want:
				t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatDays(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		14 * 24 * time.Hour: "14d",
		36 * time.Hour:      "36h0m0s",
		0:                   "0s",
	} {
		if got := FormatDays(d); got != want {
			t.Errorf("FormatDays(%v) = %q, want %q", d, got, want)
		}
	}
}

// FuzzParseDuration: ParseDuration never panics nor returns a negative
// duration, and what it accepts formats back to the same value.
func FuzzParseDuration(f *testing.F) {
	for _, seed := range []string{"14d", "90s", "1h30m", "0", "-1s", "106751d", "1.5h", "9223372036s"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v", s, d)
		}
		back, err := ParseDuration(FormatDays(d))
		if err != nil || back != d {
			t.Fatalf("ParseDuration(%q) = %v, formatted %q, parsed back as %v, %v", s, d, FormatDays(d), back, err)
		}
	})
}

// FuzzLoadConfig feeds arbitrary bytes to the loader as airlock.yaml (with
// an empty suppliers directory): it must never panic, and must either load
// or explain every problem with a line number.
func FuzzLoadConfig(f *testing.F) {
	for _, seed := range []string{
		"node: n\nsftp:\n  max_auth_tries: 3\n  idle_timeout: 1h\n  ban:\n    threshold: 0\n",
		"node: n\nnotify:\n  smtp:\n    addr: localhost:25\n    from: a@b.example\n    tls: none\n  operators: [o@b.example]\n  key_expiry_notice: 14d\n",
		"node: n\nnotify:\n  smtp:\n    username: u\n    tls: [x]\n",
		"node: n\nsftp:\n  keepalive_interval: 0\n  handshake_timeout: 0x10\n",
		"limits: {max_file_size: 5GB}\n",
		"node: n\nsftp:\n  receipt_retention: 0\npipeline:\n  workers: 64\n  retry_backoff: 10m\n  rescue_after: 59s\n",
		"node: n\npipeline: {max_attempts: 1000, retry_backoff: 1s, max_backoff: 1s}\n",
		// deny_list names a file that exists: airlock.yaml itself.
		"node: n\nscanner:\n  clamd: tcp://localhost:3310\n  deny_list: airlock.yaml\n  too_large: deliver\n",
		"node: n\nnotify:\n  webhook:\n    url: http://[::1]:8080/hook\n    secret_env: S\n",
		"node: n\nnotify:\n  webhook: {url: \"https://h/%zz\", secret_env: \"1\"}\n",
		"{",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "suppliers"), 0o755); err != nil {
		f.Fatal(err)
	}
	file := filepath.Join(dir, "airlock.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, warns, err := Check(file)
		for _, w := range warns {
			if w.Line < 1 || !w.Warning {
				t.Errorf("bad warning %q", w.Error())
			}
		}
		if err == nil {
			if cfg.SFTP.MaxAuthTries < 1 || cfg.SFTP.HandshakeTimeout <= 0 || cfg.SFTP.IdleTimeout <= 0 ||
				cfg.SFTP.KeepaliveInterval < 0 || cfg.Notify.KeyExpiryNotice < 0 || cfg.SFTP.ReceiptRetention < 0 {
				t.Fatalf("loaded an out-of-range setting: %+v %+v", cfg.SFTP, cfg.Notify)
			}
			if p := cfg.Pipeline; p.Workers < 1 || p.Workers > 64 || p.MaxAttempts < 1 || p.MaxAttempts > 1000 ||
				p.RetryBackoff <= 0 || p.MaxBackoff < p.RetryBackoff || p.RescueAfter < time.Minute {
				t.Fatalf("loaded an out-of-range pipeline: %+v", p)
			}
			if s := cfg.Scanner; s.TooLarge != TooLargeQuarantine && s.TooLarge != TooLargeDeliver {
				t.Fatalf("loaded too_large %q", s.TooLarge)
			}
			if w := cfg.Notify.Webhook; w != nil && (w.URL == "" || w.SecretEnv == "") {
				t.Fatalf("loaded an incomplete webhook: %+v", w)
			}
			return
		}
		errs, ok := err.(Errors)
		if !ok || len(errs) == 0 {
			t.Fatalf("error %T %v, want non-empty Errors", err, err)
		}
		for _, e := range errs {
			// The suppliers directory is the only whole-directory problem possible.
			if (e.Line < 1 && e.File == file) || e.Msg == "" || e.Warning {
				t.Errorf("error without line or message: %q", e.Error())
			}
		}
	})
}
