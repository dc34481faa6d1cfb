package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/airlock-gw/airlock/internal/testpeer"
)

// releaseEvent is a line of `airlock release --json`, as documented.
type releaseEvent struct {
	Type      string `json:"type"`
	Release   string `json:"release"`
	Key       string `json:"key"`
	Size      int64  `json:"size"`
	Bytes     int64  `json:"bytes"`
	Resumed   int64  `json:"resumed"`
	SHA256    string `json:"sha256"`
	CRC64NVME string `json:"crc64nvme"`
	Files     int    `json:"files"`
	DryRun    bool   `json:"dry_run"`
	Reason    string `json:"reason"`
	Error     string `json:"error"`
}

type releaseManifest struct {
	Release string `json:"release"`
	Who     string `json:"who"`
	When    time.Time
	Bucket  string
	Prefix  string
	Files   []struct {
		Key    string `json:"key"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"files"`
}

// releaseEnv is an environment with the S3 server's credentials and no
// AWS configuration of the machine's.
func releaseEnv(t *testing.T, v *testpeer.Versity) []string {
	dir := t.TempDir()
	return append(v.Env(), "HOME="+dir, "PATH="+os.Getenv("PATH"),
		"AWS_CONFIG_FILE="+filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"))
}

func releaseCmd(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(airlockBin, append([]string{"release"}, args...)...)
	cmd.Env = env
	return cmd
}

// runRelease runs `airlock release --json …` to its end and parses every
// line of its output as an event.
func runRelease(t *testing.T, env []string, args ...string) ([]releaseEvent, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := releaseCmd(env, append([]string{"--json"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return parseEvents(t, stdout.Bytes()), stderr.String(), err
}

func parseEvents(t *testing.T, out []byte) []releaseEvent {
	t.Helper()
	var evs []releaseEvent
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var e releaseEvent
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil && !strings.Contains(err.Error(), `unknown field "time"`) {
			t.Fatalf("event %q does not parse: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}

func eventsOfType(evs []releaseEvent, typ string) map[string]releaseEvent {
	out := make(map[string]releaseEvent)
	for _, e := range evs {
		if e.Type == typ {
			out[e.Key] = e
		}
	}
	return out
}

// releaseTree writes a tree of small files and one of big bytes, and
// returns it with the sha256 of each file by relative path.
func releaseTree(t *testing.T, small int, big int64) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	want := make(map[string]string)
	for i := range small {
		rel := fmt.Sprintf("d%d/part-%03d.csv", i%3, i)
		writeFile(t, filepath.Join(dir, filepath.FromSlash(rel)), fmt.Sprintf("id,value\n%d,%d\n", i, i*i))
		want[rel] = fileSHA256(t, filepath.Join(dir, filepath.FromSlash(rel)))
	}
	if big > 0 {
		p, sum := randomFile(t, big)
		if err := os.Rename(p, filepath.Join(dir, "big.bin")); err != nil {
			t.Fatal(err)
		}
		want["big.bin"] = sum
	}
	return dir, want
}

// checkReleased checks that every file is an object of the same bytes with
// its sha256 as metadata and a CRC64NVME, the manifest listing them is
// the last object written, and nothing else is under the prefix.
func checkReleased(t *testing.T, v *testpeer.Versity, bucket, prefix string, want map[string]string) releaseManifest {
	t.Helper()
	dir := filepath.Join(v.Root, bucket, filepath.FromSlash(prefix))
	got := objects(t, dir)
	manifestSum, ok := got["airlock-manifest.json"]
	if !ok {
		t.Fatalf("no manifest among %v", slices.Sorted(maps.Keys(got)))
	}
	delete(got, "airlock-manifest.json")
	if !maps.Equal(got, want) {
		t.Fatalf("objects = %v\nwant %v", got, want)
	}
	_ = manifestSum
	client := s3Client(t, v)
	manifestTime := mtime(t, filepath.Join(dir, "airlock-manifest.json"))
	for rel, sum := range want {
		out, err := client.HeadObject(context.Background(), &s3.HeadObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(prefix + rel), ChecksumMode: types.ChecksumModeEnabled,
		})
		if err != nil {
			t.Fatalf("head %s: %v", rel, err)
		}
		if out.Metadata["sha256"] != sum {
			t.Errorf("%s: sha256 metadata %q, want %s", rel, out.Metadata["sha256"], sum)
		}
		if aws.ToString(out.ChecksumCRC64NVME) == "" {
			t.Errorf("%s: the server keeps no CRC64NVME", rel)
		}
		if mt := mtime(t, filepath.Join(dir, filepath.FromSlash(rel))); mt.After(manifestTime) {
			t.Errorf("%s written at %s, after the manifest (%s)", rel, mt, manifestTime)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "airlock-manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m releaseManifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest %s: %v", b, err)
	}
	listed := make(map[string]string)
	for _, f := range m.Files {
		listed[f.Key] = f.SHA256
	}
	if !maps.Equal(listed, want) || m.Release == "" || m.Who == "" || m.When.IsZero() || m.Bucket != bucket || m.Prefix != prefix {
		t.Errorf("manifest = %s, want the files %v", b, want)
	}
	return m
}

func mtime(t *testing.T, p string) time.Time {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}

func TestReleaseTree(t *testing.T) {
	t.Parallel()
	v := startVersity(t, "inbox")
	env := releaseEnv(t, v.Versity)
	src, want := releaseTree(t, 30, 12<<20)
	to := testpeer.S3URL(v.Addr, "inbox", "team/r1")

	evs, stderr, err := runRelease(t, env, src, "--to", to, "--part-size", "5")
	if err != nil {
		t.Fatalf("release: %v\n%s", err, stderr)
	}
	m := checkReleased(t, v.Versity, "inbox", "team/r1/", want)
	done := eventsOfType(evs, "done")
	if len(done) != len(want) || evs[0].Type != "release" || evs[0].Files != len(want) {
		t.Fatalf("%d done events for %d files; first event %+v", len(done), len(want), evs[0])
	}
	for rel, sum := range want {
		if e := done["team/r1/"+rel]; e.SHA256 != sum || e.CRC64NVME == "" || e.Release != m.Release {
			t.Errorf("done event of %s = %+v", rel, e)
		}
	}
	if last := evs[len(evs)-1]; last.Type != "manifest" || last.Key != "team/r1/airlock-manifest.json" || last.Reason != "" {
		t.Errorf("last event = %+v, want the manifest written", last)
	}

	// Again: everything is complete, so everything is skipped and the
	// manifest, listing the same files, is left as it is.
	manifestTime := mtime(t, filepath.Join(v.Root, "inbox", "team", "r1", "airlock-manifest.json"))
	evs, stderr, err = runRelease(t, env, src, "--to", to, "--part-size", "5")
	if err != nil {
		t.Fatalf("second release: %v\n%s", err, stderr)
	}
	if skips := eventsOfType(evs, "skip"); len(skips) != len(want) || len(eventsOfType(evs, "start")) != 0 {
		t.Errorf("second run: %d skip events for %d files, %d starts", len(skips), len(want), len(eventsOfType(evs, "start")))
	}
	if last := evs[len(evs)-1]; last.Type != "manifest" || !strings.Contains(last.Reason, "unchanged") {
		t.Errorf("second run's last event = %+v, want the manifest unchanged", last)
	}
	if mt := mtime(t, filepath.Join(v.Root, "inbox", "team", "r1", "airlock-manifest.json")); !mt.Equal(manifestTime) {
		t.Error("the second run rewrote the manifest")
	}

	// Without --json and without a terminal: plain lines, no control
	// characters. The endpoint from AWS_ENDPOINT_URL_S3 this time.
	var stdout, plain bytes.Buffer
	cmd := releaseCmd(append(env, "AWS_ENDPOINT_URL_S3=http://"+v.Addr), src, "--to", "s3://inbox/team/r1?use_path_style=true")
	cmd.Stdout, cmd.Stderr = &stdout, &plain
	if err := cmd.Run(); err != nil {
		t.Fatalf("plain release: %v\n%s", err, plain.String())
	}
	if strings.ContainsFunc(plain.String(), func(r rune) bool { return r < 0x20 && r != '\n' || r == 0x7f }) {
		t.Errorf("piped output has control characters: %q", plain.String())
	}
	if !strings.Contains(plain.String(), "skipped  team/r1/big.bin") || !strings.Contains(plain.String(), fmt.Sprintf("%d/%d files", len(want), len(want))) {
		t.Errorf("plain output:\n%s", plain.String())
	}
}

// partGate passes requests to an S3 server but holds every part of
// key numbered above keep until the client goes away.
func partGate(t *testing.T, target, key string, keep int) string {
	t.Helper()
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		if strings.HasSuffix(r.URL.Path, "/"+key) && r.Method == http.MethodPut {
			_, _ = fmt.Sscan(r.URL.Query().Get("partNumber"), &n)
		}
		if n > keep {
			// Read, so that the server sees the client go away.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestReleaseResumesAfterKill(t *testing.T) {
	t.Parallel()
	v := startVersity(t, "inbox")
	env := releaseEnv(t, v.Versity)
	src, want := releaseTree(t, 6, 40<<20) // 8 parts of 5 MiB
	const kept = 3
	gate := partGate(t, v.Addr, "big.bin", kept)

	// The first run reaches the server through the gate, which lets three
	// parts of big.bin through and holds the rest: killed then, the
	// client leaves an unfinished upload of three parts.
	seen := releaseKilled(t, env, src, testpeer.S3URL(gate, "inbox", "r"), "r/big.bin", kept*5<<20)
	dir := filepath.Join(v.Root, "inbox", "r")
	if got := objects(t, dir); got["big.bin"] != "" || got["airlock-manifest.json"] != "" {
		t.Fatalf("after the kill: %v", slices.Sorted(maps.Keys(got)))
	}

	// The second run, straight to the server, skips the files complete,
	// continues the upload and sends only the parts it lacks.
	evs, errOut, err := runRelease(t, env, src, "--to", testpeer.S3URL(v.Addr, "inbox", "r"), "--part-size", "5", "--parts", "2")
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, errOut)
	}
	checkReleased(t, v.Versity, "inbox", "r/", want)
	big := eventsOfType(evs, "done")["r/big.bin"]
	if big.Resumed < kept*5<<20 || big.Resumed >= big.Size {
		t.Errorf("big.bin: %d bytes resumed of %d; want at least the %d parts let through", big.Resumed, big.Size, kept)
	}
	for _, e := range evs {
		if e.Type == "done" && e.Key != "r/big.bin" && e.Resumed == 0 {
			// A small file sent twice: it had been complete after the first run.
			if _, ok := eventsOfType(seen, "done")[e.Key]; ok {
				t.Errorf("%s sent again", e.Key)
			}
		}
	}
	out, err := s3Client(t, v.Versity).ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String("inbox")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		t.Errorf("%d unfinished uploads left", len(out.Uploads))
	}
}

// releaseKilled runs a release with --part-size 5 --parts 2 and kills it
// (SIGKILL) once key has sent `after` bytes; it returns the events seen.
func releaseKilled(t *testing.T, env []string, src, to, key string, after int64) []releaseEvent {
	t.Helper()
	cmd := releaseCmd(env, "--json", src, "--to", to, "--part-size", "5", "--parts", "2")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var seen []releaseEvent
	for sc.Scan() {
		e := parseEvents(t, sc.Bytes())[0]
		seen = append(seen, e)
		if e.Type == "progress" && e.Key == key && e.Bytes >= after {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	_ = cmd.Wait()
	if len(seen) == 0 || seen[len(seen)-1].Type != "progress" {
		t.Fatalf("the run ended before %d bytes of %s: %+v\n%s", after, key, seen, stderr.String())
	}
	return seen
}

// An upload resumed for a file changed since: the parts that still match
// are kept, the others sent, and the object's sha256 metadata (set when
// the upload began) is found stale, so the file is sent afresh.
func TestReleaseResumeOfChangedFile(t *testing.T) {
	t.Parallel()
	v := startVersity(t, "inbox")
	env := releaseEnv(t, v.Versity)
	src, want := releaseTree(t, 1, 20<<20)
	releaseKilled(t, env, src, testpeer.S3URL(partGate(t, v.Addr, "big.bin", 2), "inbox", "r"), "r/big.bin", 2*5<<20)
	big := filepath.Join(src, "big.bin")
	f, err := os.OpenFile(big, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("changed after the first run"), 18<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want["big.bin"] = fileSHA256(t, big)
	if _, stderr, err := runRelease(t, env, src, "--to", testpeer.S3URL(v.Addr, "inbox", "r"), "--part-size", "5"); err != nil {
		t.Fatalf("second run: %v\n%s", err, stderr)
	}
	checkReleased(t, v.Versity, "inbox", "r/", want)
}

func TestReleaseDryRun(t *testing.T) {
	t.Parallel()
	v := startVersity(t, "inbox")
	src, want := releaseTree(t, 4, 0)
	// No credentials at all: a dry run needs none.
	env := []string{"HOME=" + t.TempDir(), "AWS_EC2_METADATA_DISABLED=true"}
	evs, stderr, err := runRelease(t, env, src, "--to", testpeer.S3URL(v.Addr, "inbox", "r"), "--dry-run")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, stderr)
	}
	plans := eventsOfType(evs, "plan")
	for rel, sum := range want {
		if plans["r/"+rel].SHA256 != sum {
			t.Errorf("plan of %s = %+v", rel, plans["r/"+rel])
		}
	}
	if last := evs[len(evs)-1]; last.Type != "manifest" || !last.DryRun {
		t.Errorf("last event = %+v", last)
	}
	if got := landedFiles(t, filepath.Join(v.Root, "inbox")); len(got) != 0 {
		t.Errorf("a dry run stored %v", got)
	}
}

func TestReleaseRefusesUnsafeNames(t *testing.T) {
	t.Parallel()
	v := startVersity(t, "inbox")
	env := releaseEnv(t, v.Versity)
	for _, bad := range []string{"sub/bad name.csv", "sub/.env", "bell\a.csv", "aux.csv"} {
		t.Run(bad, func(t *testing.T) {
			src, _ := releaseTree(t, 5, 0)
			writeFile(t, filepath.Join(src, filepath.FromSlash(bad)), "x\n")
			evs, stderr, err := runRelease(t, env, src, "--to", testpeer.S3URL(v.Addr, "inbox", "r"))
			var ee *exec.ExitError
			if !errors.As(err, &ee) || !strings.Contains(stderr, "nothing sent") || !strings.Contains(stderr, filepath.Base(bad)[:3]) {
				t.Fatalf("release of %q: %v, stderr %q", bad, err, stderr)
			}
			if len(evs) != 0 {
				t.Errorf("events before the refusal: %+v", evs)
			}
			if got := landedFiles(t, filepath.Join(v.Root, "inbox")); len(got) != 0 {
				t.Errorf("stored despite the refusal: %v", got)
			}
		})
	}
}

// slowParts passes requests to an S3 server, each part of a multipart
// upload 300 ms late, so that a release takes long enough to watch.
func slowParts(t *testing.T, target string) string {
	t.Helper()
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("partNumber") {
			time.Sleep(300 * time.Millisecond)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// On a terminal (a pseudo-terminal from script(1)) the bars are redrawn
// in place as the parts go.
func TestReleaseProgressOnTerminal(t *testing.T) {
	t.Parallel()
	script := testpeer.Require(t, "script")
	v := startVersity(t, "inbox")
	src, want := releaseTree(t, 2, 30<<20)
	to := testpeer.S3URL(slowParts(t, v.Addr), "inbox", "r")
	line := strings.Join([]string{airlockBin, "release", src, "--to", "'" + to + "'", "--part-size", "5", "--parts", "1"}, " ")
	cmd := exec.Command(script, "-q", "-e", "-c", line, "/dev/null")
	cmd.Env = releaseEnv(t, v.Versity)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("release under a terminal: %v\n%q", err, out)
	}
	checkReleased(t, v.Versity, "inbox", "r/", want)
	s := string(out)
	redraws := strings.Count(s, "\x1b[1A\x1b[2K")
	var midway []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "r/big.bin") && strings.Contains(l, "[=") && !strings.Contains(l, "100%") {
			midway = append(midway, l)
		}
	}
	if redraws < 3 || len(midway) < 2 || !strings.Contains(s, "total [") || !strings.Contains(s, "ETA") {
		t.Errorf("%d redraws, %d bars of big.bin part-way; output:\n%q", redraws, len(midway), s)
	}
}
