package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// releaseResult is scenario 11: one file released to versitygw by
// `airlock release` and by `rclone copy` at its defaults, alternating.
type releaseResult struct {
	size    int64
	mbps    map[string][]float64 // by tool
	errors  int
	notes   []string
	skipped string
}

const rcloneName = "rclone copy"

func (b *bench) releaseStep(ctx context.Context) (*releaseResult, error) {
	size := b.opts.releaseSize
	switch {
	case b.opts.noS3:
		return &releaseResult{skipped: "skipped (-no-s3)"}, nil
	case !b.opts.selected("release"):
		return &releaseResult{skipped: "not selected (-only)"}, nil
	case b.tools.rclone == "":
		return &releaseResult{skipped: "skipped: no rclone"}, nil
	}
	if err := b.checkSpace(3*size+1<<30, "the release scenario"); err != nil {
		return &releaseResult{skipped: "skipped: " + err.Error()}, nil
	}
	logf("scenario: release %s to S3 (versitygw): airlock release against rclone copy", humanSize(size))
	dir := filepath.Join(b.dir, "releasebench")
	vg, err := startVersity(b.tools, dir, "inbox")
	if err != nil {
		return nil, err
	}
	defer vg.stop()
	src, err := makeSource(filepath.Join(dir, "release.bin"), size, 11)
	if err != nil {
		return nil, err
	}
	defer os.Remove(src.path)
	res := &releaseResult{size: size, mbps: map[string][]float64{}}
	for run := 1; run <= min(b.opts.runs, 2); run++ {
		for _, tool := range alternate(run, "airlock release", rcloneName) {
			if err := b.releaseRun(ctx, vg, tool, src, run, res); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// releaseRun sends src once with tool under a fresh prefix, checks the
// object's bytes and removes it.
func (b *bench) releaseRun(ctx context.Context, vg *versity, tool string, src srcFile, run int, res *releaseResult) error {
	prefix := fmt.Sprintf("run%d-%d", run, len(tool))
	cmd := b.releaseCmd(ctx, vg, tool, src.path, prefix)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil {
		if bad := checkFile(filepath.Join(vg.root, "inbox", prefix, filepath.Base(src.path)), src); bad != "" {
			err = errors.New(bad)
		}
	}
	if err != nil {
		res.errors++
		res.notes = append(res.notes, fmt.Sprintf("11. %s run %d: %v: %s", tool, run, err, lastLines(out.String(), 3)))
		logf("  run %d %s FAILED: %v\n%s", run, tool, err, lastLines(out.String(), 10))
	} else {
		v := float64(src.size) / mb / took.Seconds()
		res.mbps[tool] = append(res.mbps[tool], v)
		logf("  run %d %-15s %8.1f MB/s (%s)", run, tool, v, took.Round(time.Millisecond))
	}
	return removeFiles(filepath.Join(vg.root, "inbox"))
}

// releaseCmd is tool's command sending file to bucket inbox under prefix.
func (b *bench) releaseCmd(ctx context.Context, vg *versity, tool, file, prefix string) *exec.Cmd {
	// Neither sees the machine's AWS settings, only the server's keys.
	home := filepath.Join(b.dir, "releasehome")
	env := append(vg.env(), "HOME="+home, "PATH="+os.Getenv("PATH"),
		"AWS_CONFIG_FILE="+filepath.Join(home, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "credentials"))
	var cmd *exec.Cmd
	if tool == rcloneName {
		// The bucket exists: rclone would try to make it (refused by
		// versitygw for a bucket made as a directory).
		env = append(env, "RCLONE_S3_NO_CHECK_BUCKET=true", "RCLONE_S3_PROVIDER=Other", "RCLONE_S3_ENV_AUTH=false", "RCLONE_S3_ACCESS_KEY_ID="+vg.access,
			"RCLONE_S3_SECRET_ACCESS_KEY="+vg.secret, "RCLONE_S3_ENDPOINT=http://"+vg.addr, "RCLONE_S3_REGION=us-east-1",
			"RCLONE_S3_FORCE_PATH_STYLE=true")
		cmd = exec.CommandContext(ctx, b.tools.rclone, "copy", file, ":s3:inbox/"+prefix)
	} else {
		to := fmt.Sprintf("s3://inbox/%s/?endpoint=http://%s&use_path_style=true&region=us-east-1", prefix, vg.addr)
		cmd = exec.CommandContext(ctx, b.tools.airlock, "release", file, "--to", to)
	}
	cmd.Env = env
	return cmd
}

// releaseRows are scenario 11; rclone stands where OpenSSH does in the
// other rows.
func (rep *report) releaseRows() []row {
	r := rep.release
	label := "11. release one file to S3 (versitygw): rclone copy | airlock release"
	if r == nil || r.skipped != "" {
		why := "skipped"
		if r != nil {
			why = r.skipped
		}
		return []row{{label, "—", why, "—", "ratio ≥ 1.0", "—"}}
	}
	x := median(r.mbps["airlock release"]) / median(r.mbps[rcloneName])
	return []row{{fmt.Sprintf("%s, %s (MB/s)", label, humanSize(r.size)), cell(r.mbps[rcloneName], 0),
		withErrors(cell(r.mbps["airlock release"], 0), r.errors), fmtRatio(x), "ratio ≥ 1.0", yesNo(x >= 1.0 && r.errors == 0)}}
}
