package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Dataset is what a team shares with the outside, loaded from
// datasets/<name>.yaml. A push dataset (Bucket.URL set) sends what its users
// write under <exports>/<name>/ to Bucket; a pull dataset (PullARNs set)
// has a bucket of its own that the principals in PullARNs read.
type Dataset struct {
	Name      string
	Paperwork string   // https URL of the DPIA or data-sharing agreement
	Users     []string // who may write under <exports>/<name>/ (and, for pull, read-write the bucket)
	// Bucket is the push target: URL as in Target ("" for a pull dataset).
	// Bucket.KMSKey is the dataset's kms_key for either kind: the target's
	// SSE-KMS key, or the key of the pull bucket.
	Bucket    Target
	KeepFiles bool     // push: keep what was sent in the export area
	PullARNs  []string // pull: IAM principals that read the pull bucket
	// PullBucket is the pull bucket as an s3:// URL without a prefix
	// (default s3://mojap-<name with _ as ->); "" for a push dataset.
	PullBucket string
	Retention  time.Duration // pull: objects older than this are deleted; 0 keeps them
	Approval   int           // people, other than the writer, who must approve each batch
	File       string        // absolute path of the dataset file
}

// Push reports whether d is a push dataset (else it is a pull dataset).
func (d *Dataset) Push() bool {
	return len(d.PullARNs) == 0
}

// Datasets is an immutable set of datasets, looked up by name; share it
// freely between goroutines.
type Datasets struct {
	named[Dataset]
}

var (
	// datasetNameSyntax is the exports repo's: lower case and underscores,
	// for dataset names and user names alike.
	datasetNameSyntax = regexp.MustCompile(`^[a-z][a-z0-9_]{1,62}$`)
	// bucketNameSyntax is S3's bucket naming rule, less the rarer limits.
	bucketNameSyntax = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
)

// maxApproval bounds approval: more approvers than a team has would hold
// every batch forever.
const maxApproval = 5

// pullBucketPrefix makes the default pull bucket name, as the exports repo does.
const pullBucketPrefix = "mojap-"

// datasetKeys is every key a dataset file accepts.
var datasetKeys = keySet{
	"name": nil, "paperwork": nil, "users": nil,
	"bucket": nil, "kms_key": nil, "keep_files": nil,
	"pull_arns": nil, "pull_bucket": nil, "retention": nil,
	"approval": nil,
}

// LoadDatasets reads every dir/*.yaml and dir/*.yml except dot files; a
// missing dir is no datasets. root is the directory relative paths resolve
// against (the config root). Errors name files by joining dir, as given,
// with the file name.
func LoadDatasets(dir, root string) (*Datasets, error) {
	set, errs := loadDatasets(dir, root, false)
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	return set, nil
}

// loadDatasets loads the dataset files; a missing dir is an error only when
// mustExist (datasets_dir was written out, so a typo must not pass).
func loadDatasets(dir, root string, mustExist bool) (*Datasets, Errors) {
	absRoot, skip, errs := openDefs(dir, root, mustExist)
	if skip || errs != nil {
		return &Datasets{}, errs
	}
	var parsed []*parsedDataset
	errs, _ = loadDir(dir, "datasets", func(c *checker, f defFile, data []byte) {
		if p := parseDataset(c, data, f.stem, absRoot); p != nil {
			p.File = f.abs
			parsed = append(parsed, p)
		}
	})
	errs = append(errs, crossCheckDatasets(parsed)...)
	if len(errs) > 0 {
		return nil, errs
	}
	ds := make([]*Dataset, len(parsed))
	for i, p := range parsed {
		ds[i] = p.Dataset
	}
	return &Datasets{named: newNamed(ds, func(d *Dataset) string { return d.Name })}, nil
}

// parsedDataset is a dataset as read from its file, with the lines the
// cross-file checks need.
type parsedDataset struct {
	*Dataset
	shown                string
	nameLine, bucketLine int
}

// crossCheckDatasets finds names and pull buckets used in more than one
// file (two datasets owning one bucket would overwrite each other's policy);
// the later file gets the error.
func crossCheckDatasets(parsed []*parsedDataset) Errors {
	var errs Errors
	names, buckets := firstSeen{}, firstSeen{}
	for _, p := range parsed {
		if p.Name == "" {
			continue // the name is broken, and reported
		}
		if first, dup := names.seen(p.Name, place{p.shown, p.nameLine}); dup {
			errs = append(errs, Error{File: p.shown, Line: p.nameLine, Msg: fmt.Sprintf(
				"duplicate dataset name %q (also in %s:%d)", p.Name, first.file, first.line)})
		}
		if p.PullBucket == "" {
			continue
		}
		b := BucketName(p.PullBucket)
		if first, dup := buckets.seen(b, place{p.shown, p.bucketLine}); dup {
			errs = append(errs, Error{File: p.shown, Line: p.bucketLine, Msg: fmt.Sprintf(
				"pull bucket %q is also the pull bucket of %s:%d", b, first.file, first.line)})
		}
	}
	return errs
}

// BucketName is the bucket of an s3:// URL.
func BucketName(s3URL string) string {
	u, err := url.Parse(s3URL)
	if err != nil {
		return ""
	}
	return u.Host
}

// parseDataset validates one dataset file whose name without extension is
// stem; nil means nothing could be read.
func parseDataset(c *checker, data []byte, stem, root string) *parsedDataset {
	top := c.parse(data)
	if top == nil {
		return nil
	}
	p := &parsedDataset{Dataset: &Dataset{}, shown: c.file}
	self := field{val: top}
	doc := c.mapping(self, datasetKeys)

	if name, ok := c.required(self, doc, "name"); ok {
		line := valLine(doc["name"])
		switch {
		case !datasetNameSyntax.MatchString(name):
			c.errorf(line, "name %q must match %s (a lowercase letter, then 1-62 of a-z, 0-9 and _)", name, datasetNameSyntax)
		case name != stem:
			c.errorf(line, "name %q does not match the file name %q", name, filepath.Base(c.file))
		default:
			p.Name, p.nameLine = name, line
		}
	}
	if s, ok := c.required(self, doc, "paperwork"); ok {
		if err := checkPaperwork(s); err != nil {
			c.errorf(valLine(doc["paperwork"]), "paperwork: %v", err)
		}
		p.Paperwork = s
	}
	p.Users = c.names(self, doc, "users", checkUserName)
	p.Bucket.KMSKey = c.checked(doc["kms_key"], checkKMSKeyARN)
	p.Approval = c.integer(doc["approval"], 0, 0, maxApproval)

	bucket, pull := doc["bucket"], doc["pull_arns"]
	switch {
	case bucket.present() && pull.present():
		c.errorf(pull.key.Line, "bucket (line %d) and pull_arns are exclusive: a dataset is either pushed to a bucket or pulled from its own", bucket.key.Line)
	case bucket.present():
		parsePush(c, p.Dataset, doc, root)
	case pull.present():
		p.bucketLine = parsePull(c, p.Dataset, doc)
	default:
		c.errorf(top.Line, "missing bucket (a push dataset) or pull_arns (a pull dataset)")
	}
	return p
}

// parsePush reads the keys of a push dataset.
func parsePush(c *checker, d *Dataset, doc map[string]field, root string) {
	d.Bucket.URL = c.value(doc["bucket"], "", root, parseBucket)
	d.KeepFiles = c.boolean(doc["keep_files"], false)
	for _, k := range []string{"pull_bucket", "retention"} {
		if f := doc[k]; f.present() {
			c.errorf(f.key.Line, "%s applies only to pull datasets (pull_arns), not to one with a bucket", k)
		}
	}
}

// parsePull reads the keys of a pull dataset and returns the line that
// names its bucket.
func parsePull(c *checker, d *Dataset, doc map[string]field) int {
	d.PullARNs = c.names(field{}, doc, "pull_arns", CheckPrincipalARN)
	d.Retention = c.duration(doc["retention"], 0, false)
	if f := doc["keep_files"]; f.present() && c.boolean(f, false) {
		c.errorf(f.key.Line, "keep_files applies only to push datasets (bucket): a pull dataset keeps its files in its own bucket")
	}
	f := doc["pull_bucket"]
	if f.present() {
		d.PullBucket = c.value(f, "", "", func(s, _ string) (string, error) { return parsePullBucket(s) })
		return valLine(f)
	}
	def := pullBucketPrefix + strings.ReplaceAll(d.Name, "_", "-")
	line := valLine(doc["pull_arns"])
	if d.Name == "" {
		return line
	}
	if !bucketNameSyntax.MatchString(def) {
		c.errorf(line, "the default pull bucket %q is not a valid bucket name (at most 63 characters): set pull_bucket", def)
		return line
	}
	d.PullBucket = "s3://" + def
	return line
}

// parseBucket reads a push target: a store URL, a bare bucket name (an S3
// bucket), or a path, which must then contain a slash ("./out").
func parseBucket(s, root string) (string, error) {
	if !urlScheme.MatchString(s) && !strings.Contains(s, "/") {
		if !bucketNameSyntax.MatchString(s) {
			return "", fmt.Errorf("%q is neither a bucket name (3-63 of a-z, 0-9, . and -), a store URL nor a path (write ./%s for a directory)", s, s)
		}
		return "s3://" + s, nil
	}
	return parseStore(s, root)
}

// parsePullBucket reads pull_bucket: a bucket name, or an s3:// URL of a
// whole bucket whose query says how to reach it (region=, endpoint=).
func parsePullBucket(s string) (string, error) {
	if !urlScheme.MatchString(s) {
		if !bucketNameSyntax.MatchString(s) {
			return "", fmt.Errorf("%q is not a bucket name (3-63 of a-z, 0-9, . and -) or an s3:// URL", s)
		}
		return "s3://" + s, nil
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("invalid URL: %w", err)
	case u.Scheme != "s3":
		return "", fmt.Errorf("%q: a pull bucket is an S3 bucket: write its name or s3://<bucket>", s)
	case !bucketNameSyntax.MatchString(u.Host):
		return "", fmt.Errorf("%q: %q is not a bucket name (3-63 of a-z, 0-9, . and -)", s, u.Host)
	case strings.Trim(u.Path, "/") != "" || u.Query().Has("prefix"):
		return "", fmt.Errorf("%q: a pull bucket is a whole bucket, without a prefix", s)
	}
	return s, nil
}

// checkPaperwork accepts an https URL with a host.
func checkPaperwork(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q must be the https:// URL of the DPIA or data-sharing agreement", s)
	}
	return nil
}

// checkUserName accepts a dataset user: the exports repo's names, like
// dataset names.
func checkUserName(s string) error {
	if !datasetNameSyntax.MatchString(s) {
		return fmt.Errorf("%q must match %s (lower case and underscores)", s, datasetNameSyntax)
	}
	return nil
}

// names reads a required, non-empty list of unique strings, each passing
// check.
func (c *checker) names(parent field, fields map[string]field, key string, check func(string) error) []string {
	var out []string
	for _, it := range c.nonEmptyList(parent, fields, key) {
		switch err := check(it.val); {
		case err != nil:
			c.errorf(it.line, "%s: %v", it.path, err)
		case slices.Contains(out, it.val):
			c.errorf(it.line, "%s: %q is listed twice", it.path, it.val)
		default:
			out = append(out, it.val)
		}
	}
	return out
}

// checked returns the string in f ("" when unset), reporting check's error.
func (c *checker) checked(f field, check func(string) error) string {
	s, _ := c.str(f)
	if s == "" {
		return ""
	}
	if err := check(s); err != nil {
		c.errorf(valLine(f), "%s: %v", f.path, err)
		return ""
	}
	return s
}
