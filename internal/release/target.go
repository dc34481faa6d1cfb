package release

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Target is where a release goes: a bucket and a key prefix, and how to
// reach an S3-compatible server. It reads the URLs airlock's stores take
// (s3://bucket/prefix?region=…&endpoint=…&use_path_style=true).
type Target struct {
	Bucket    string
	Prefix    string // "" or ending in "/"
	Region    string // "" leaves it to the AWS environment
	Endpoint  string // "" leaves it to the AWS environment (AWS_ENDPOINT_URL_S3)
	PathStyle bool
	Profile   string // profile= in the URL; --profile wins
}

// ParseTarget reads an s3:// URL. Parameters it does not know are refused,
// as the stores refuse them, rather than ignored.
func ParseTarget(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("--to %q: %w", raw, err)
	}
	if u.Scheme != "s3" {
		return Target{}, fmt.Errorf("--to %q: want s3://bucket/prefix", raw)
	}
	if u.Host == "" {
		return Target{}, fmt.Errorf("--to %q has no bucket: write s3://<bucket>/<prefix>", raw)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Target{}, fmt.Errorf("--to %q: %w", raw, err)
	}
	t := Target{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}
	if t.Prefix != "" {
		t.Prefix += "/"
	}
	for k := range q {
		v := q.Get(k)
		switch k {
		case "region":
			t.Region = v
		case "endpoint":
			t.Endpoint = v
		case "profile":
			t.Profile = v
		case "use_path_style", "s3ForcePathStyle":
			if t.PathStyle, err = strconv.ParseBool(v); err != nil {
				return Target{}, fmt.Errorf("--to: %s=%q: want true or false", k, v)
			}
		case "prefix":
			// As the stores read it: inside the URL's path, verbatim.
			t.Prefix += v
		default:
			return Target{}, fmt.Errorf("--to: unknown parameter %q (known: region, endpoint, use_path_style, profile, prefix)", k)
		}
	}
	return t, nil
}

// Key is the object key of a file's relative key.
func (t Target) Key(rel string) string { return t.Prefix + rel }

// String is the target as s3://bucket/prefix, without parameters.
func (t Target) String() string { return "s3://" + t.Bucket + "/" + t.Prefix }
