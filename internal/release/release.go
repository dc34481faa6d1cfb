// Package release is the desktop side of a release into the TRE: it plans
// which local files go to which keys, sends them with the S3 transfer
// manager (multipart, parallel parts, resumable), checks what is stored,
// and writes the manifest last. It knows nothing of the command line.
package release

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// MinPartSize is S3's smallest part but the last.
const MinPartSize = 5 << 20

// crc64Algorithm is S3's CRC64NVME, which the transfer manager's types
// do not name (v0.4.3) but pass on as given.
const crc64Algorithm = tmtypes.ChecksumAlgorithm(types.ChecksumAlgorithmCrc64nvme)

// Options say how a release runs.
type Options struct {
	Target   Target
	Files    []File
	Who      string
	PartSize int64 // also the size from which a file is sent in parts
	Parts    int   // parts of one file in flight at once
	Jobs     int   // files in flight at once
	DryRun   bool  // hash and report, send nothing
	Report   Reporter
	Now      func() time.Time
}

// Releaser sends one release.
type Releaser struct {
	client Client // nil for a dry run
	o      Options
	id     string
}

// New returns a Releaser; client may be nil for a dry run.
func New(client Client, o Options) (*Releaser, error) {
	if !o.DryRun && client == nil {
		return nil, errors.New("release: no S3 client")
	}
	if o.PartSize < MinPartSize {
		return nil, fmt.Errorf("part size %d is below S3's minimum of %d bytes", o.PartSize, MinPartSize)
	}
	o.Jobs, o.Parts = max(o.Jobs, 1), max(o.Parts, 1)
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Releaser{client: client, o: o, id: NewReleaseID()}, nil
}

// ID is the release's id, as its manifest will hold it.
func (r *Releaser) ID() string { return r.id }

func (r *Releaser) report(e Event) {
	e.Time = r.o.Now().UTC()
	e.Release = r.id
	r.o.Report.Report(e)
}

// Run sends every file, then the manifest. A file that fails does not
// stop the others (a re-run then has less to do), but no manifest is
// written unless every file is complete.
func (r *Releaser) Run(ctx context.Context) error {
	var total int64
	for _, f := range r.o.Files {
		total += f.Size
	}
	r.report(Event{Type: EvRelease, Files: len(r.o.Files), Size: total, DryRun: r.o.DryRun})
	entries := make([]ManifestEntry, len(r.o.Files))
	sent := make([]bool, len(r.o.Files))
	errs := make([]error, len(r.o.Files))
	sem := make(chan struct{}, r.o.Jobs)
	var wg sync.WaitGroup
	for i, f := range r.o.Files {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = ctx.Err()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			entries[i], sent[i], errs[i] = r.file(ctx, f)
			if errs[i] != nil {
				r.report(Event{Type: EvError, Key: r.o.Target.Key(f.Key), Size: f.Size, Error: errs[i].Error()})
			}
		})
	}
	wg.Wait()
	if err := summarize(errs); err != nil {
		return err
	}
	m := newManifest(r.id, r.o.Who, r.o.Now(), r.o.Target, entries)
	return r.writeManifest(ctx, m, !contains(sent, true))
}

func contains(bs []bool, v bool) bool {
	for _, b := range bs {
		if b == v {
			return true
		}
	}
	return false
}

// summarize is nil when every file is complete, else the first error and
// how many more there were.
func summarize(errs []error) error {
	var first error
	n := 0
	for _, err := range errs {
		if err != nil {
			n++
			first = cmpErr(first, err)
		}
	}
	switch {
	case n == 0:
		return nil
	case errors.Is(first, context.Canceled):
		return errors.New("release interrupted: run the same command again to resume; complete files are skipped and unfinished uploads continue")
	case n == 1:
		return fmt.Errorf("no manifest written: %w", first)
	}
	return fmt.Errorf("no manifest written: %d files failed, the first: %w", n, first)
}

func cmpErr(a, b error) error {
	if a == nil {
		return b
	}
	return a
}

// file sends one file unless it is already complete at its key, and
// returns its manifest entry and whether anything was sent.
func (r *Releaser) file(ctx context.Context, f File) (ManifestEntry, bool, error) {
	if err := ctx.Err(); err != nil {
		return ManifestEntry{}, false, err
	}
	sums, err := sumFile(f.Local)
	if err != nil {
		return ManifestEntry{}, false, err
	}
	entry := ManifestEntry{Key: f.Key, Size: sums.Size, SHA256: sums.SHA256}
	key := r.o.Target.Key(f.Key)
	if r.o.DryRun {
		r.report(Event{Type: EvPlan, Key: key, Size: sums.Size, SHA256: sums.SHA256})
		return entry, false, nil
	}
	remote, err := r.head(ctx, key)
	if err != nil {
		return entry, false, err
	}
	if act, reason := decide(sums, remote); act == Skip {
		r.report(Event{Type: EvSkip, Key: key, Size: sums.Size, SHA256: sums.SHA256, Reason: reason})
		return entry, false, nil
	}
	r.report(Event{Type: EvStart, Key: key, Size: sums.Size, SHA256: sums.SHA256})
	resumed, stored, err := r.send(ctx, f.Local, key, sums, true)
	if errors.Is(err, errStaleMetadata) {
		// The upload resumed was of an earlier version of the file: its
		// bytes are now the file's, its metadata not. Send it afresh.
		resumed, stored, err = r.send(ctx, f.Local, key, sums, false)
	}
	if err != nil {
		return entry, true, err
	}
	r.report(Event{Type: EvDone, Key: key, Size: sums.Size, Bytes: sums.Size, Resumed: resumed, SHA256: sums.SHA256, CRC64NVME: stored.CRC64NVME})
	return entry, true, nil
}

var errStaleMetadata = errors.New("the resumed upload's sha256 metadata is not the file's")

// send uploads the file through the transfer manager and checks the
// object stored: its size, its sha256 metadata and, where the server
// keeps one, its full-object CRC64NVME.
func (r *Releaser) send(ctx context.Context, local, key string, sums Sums, resume bool) (int64, *Remote, error) {
	fh, err := os.Open(local)
	if err != nil {
		return 0, nil, fmt.Errorf("send: %w", err)
	}
	defer fh.Close()
	rc := &resumingClient{Client: r.client, resume: resume}
	tm := transfermanager.New(rc, func(o *transfermanager.Options) {
		o.PartSizeBytes, o.MultipartUploadThreshold = r.o.PartSize, r.o.PartSize
		o.Concurrency = r.o.Parts
		o.ChecksumAlgorithm = crc64Algorithm
		o.ObjectProgressListeners.Register(progressListener{r: r, key: key, size: sums.Size})
	})
	_, err = tm.UploadObject(ctx, &transfermanager.UploadObjectInput{
		Bucket:            aws.String(r.o.Target.Bucket),
		Key:               aws.String(key),
		Body:              fh,
		Metadata:          map[string]string{"sha256": sums.SHA256},
		ChecksumAlgorithm: crc64Algorithm,
		ChecksumType:      tmtypes.ChecksumTypeFullObject,
		ChecksumCRC64NVME: aws.String(sums.CRC64NVME),
	})
	if err != nil {
		return 0, nil, fmt.Errorf("send %s: %w", key, unwrapMultipart(err))
	}
	stored, err := r.head(ctx, key)
	switch {
	case err != nil:
		return 0, nil, err
	case stored == nil:
		return 0, nil, fmt.Errorf("check %s: not found after upload", key)
	case stored.Size != sums.Size:
		return 0, nil, fmt.Errorf("check %s: %d bytes stored, the file has %d", key, stored.Size, sums.Size)
	case stored.CRC64NVME != "" && stored.CRC64NVME != sums.CRC64NVME:
		return 0, nil, fmt.Errorf("check %s: the stored CRC64NVME %s is not the file's %s", key, stored.CRC64NVME, sums.CRC64NVME)
	case stored.SHA256 != sums.SHA256 && resume && rc.resumed.Load() > 0:
		return 0, nil, errStaleMetadata
	case stored.SHA256 != sums.SHA256:
		return 0, nil, fmt.Errorf("check %s: the stored sha256 metadata %q is not the file's %s", key, stored.SHA256, sums.SHA256)
	}
	return rc.resumed.Load(), stored, nil
}

// unwrapMultipart drops the transfer manager's wrapper, whose message
// (an upload id) tells a person nothing.
func unwrapMultipart(err error) error {
	var mpe transfermanager.MultipartUploadError
	if errors.As(err, &mpe) && errors.Unwrap(mpe) != nil {
		return errors.Unwrap(mpe)
	}
	return err
}

// head is what is at key, or nil when nothing is.
func (r *Releaser) head(ctx context.Context, key string) (*Remote, error) {
	out, err := r.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(r.o.Target.Bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled,
	})
	if isNotFound(err) {
		return nil, nil
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == 403 {
		return nil, fmt.Errorf("look up %s: access denied: the credentials need s3:GetObject on the prefix, to skip complete files and check what is stored: %w", key, err)
	}
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", key, err)
	}
	return &Remote{Size: aws.ToInt64(out.ContentLength), SHA256: out.Metadata["sha256"], CRC64NVME: aws.ToString(out.ChecksumCRC64NVME)}, nil
}

func isNotFound(err error) bool {
	var nf *types.NotFound
	var nsk *types.NoSuchKey
	var re *awshttp.ResponseError
	return errors.As(err, &nf) || errors.As(err, &nsk) || errors.As(err, &re) && re.HTTPStatusCode() == 404
}

type progressListener struct {
	r    *Releaser
	key  string
	size int64
}

func (l progressListener) OnObjectBytesTransferred(_ context.Context, e *transfermanager.ObjectBytesTransferredEvent) {
	l.r.report(Event{Type: EvProgress, Key: l.key, Size: l.size, Bytes: e.BytesTransferred})
}
