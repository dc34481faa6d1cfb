// Package policy writes the bucket, KMS key and IAM policy documents that
// the owners of airlock's buckets and keys apply: for a supplier's
// destination, a push dataset's export prefix and target, and a pull
// dataset's own bucket. Everything here is a pure function of the
// configuration; `airlock policy` prints the documents and may put a
// bucket policy that airlock owns.
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/airlock-gw/airlock/internal/config"
)

// Set is every document the owners of one supplier's, dataset's or
// route's buckets and keys must apply.
type Set struct {
	Subject   string     `json:"subject"` // "supplier acme", "dataset new_project"
	Documents []Document `json:"documents"`
	// Notes say why a document one might expect is not there (a target
	// that is a directory needs no bucket policy).
	Notes []string `json:"notes,omitempty"`
}

// Kind says what a Document is and who applies it.
type Kind string

// The kinds of Document.
const (
	// BucketPolicy is a bucket's whole policy, which airlock owns: a pull
	// bucket's. `airlock policy --apply` puts it.
	BucketPolicy Kind = "bucket-policy"
	// BucketStatements are statements for the owner of a bucket to add
	// to its policy.
	BucketStatements Kind = "bucket-policy-statements"
	// KeyStatements are statements for the owner of a KMS key to add to
	// its key policy.
	KeyStatements Kind = "key-policy-statements"
	// RolePolicy is an identity policy to attach to one of airlock's roles.
	RolePolicy Kind = "iam-role-policy"
)

// Document is one policy and what it applies to.
type Document struct {
	Kind   Kind   `json:"kind"`
	Target string `json:"target"` // the bucket name, key ARN or role ARN
	Policy Policy `json:"policy"`
	// Location is the store URL of the bucket of a BucketPolicy, which
	// --apply opens; it may hold an endpoint, and is not printed.
	Location string `json:"-"`
}

// Policy is an AWS policy document.
type Policy struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// version is the current policy language.
const version = "2012-10-17"

// Statement is one statement of a Policy. Principal is nil in identity
// policies.
type Statement struct {
	Sid       string     `json:"Sid"`
	Effect    string     `json:"Effect"`
	Principal *Principal `json:"Principal,omitempty"`
	Action    []string   `json:"Action"`
	Resource  []string   `json:"Resource"`
	// Condition maps an operator to its keys and values; encoding/json
	// sorts map keys, so the output is stable.
	Condition map[string]map[string]string `json:"Condition,omitempty"`
}

// Principal is who a statement applies to: the IAM principals in AWS, or
// everyone ("*") when Everyone.
type Principal struct {
	AWS      []string
	Everyone bool
}

// MarshalJSON writes "*" for everyone, {"AWS": [...]} otherwise.
func (p Principal) MarshalJSON() ([]byte, error) {
	if p.Everyone {
		return []byte(`"*"`), nil
	}
	return json.Marshal(struct {
		AWS []string `json:"AWS"`
	}{p.AWS})
}

// JSON is v as indented JSON, with "&" and "<" as written: these documents
// are read and pasted by people.
func JSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ErrNotConfigured is wrapped by the errors about a policy setting of
// airlock.yaml that a document needs and that is not set.
var ErrNotConfigured = errors.New("not set in airlock.yaml")

// need returns an error naming the policy key when value is empty.
func need(value, key string) error {
	if value == "" {
		return fmt.Errorf("policy.%s is %w", key, ErrNotConfigured)
	}
	return nil
}

// check refuses a document AWS would refuse, or one that grants nobody:
// a statement without principals, actions or resources, or naming a
// principal that is not an IAM ARN.
func (d Document) check() error {
	for _, st := range d.Policy.Statement {
		switch {
		case len(st.Action) == 0 || len(st.Resource) == 0:
			return fmt.Errorf("%s %s: statement %s has no action or no resource", d.Kind, d.Target, st.Sid)
		case st.Principal == nil && d.Kind != RolePolicy:
			return fmt.Errorf("%s %s: statement %s has no principal", d.Kind, d.Target, st.Sid)
		case st.Principal == nil || st.Principal.Everyone:
			continue
		case len(st.Principal.AWS) == 0:
			return fmt.Errorf("%s %s: statement %s has an empty principal list", d.Kind, d.Target, st.Sid)
		}
		for _, p := range st.Principal.AWS {
			if err := config.CheckPrincipalARN(p); err != nil {
				return fmt.Errorf("%s %s: statement %s: %w", d.Kind, d.Target, st.Sid, err)
			}
		}
	}
	return nil
}

// finish checks every document of s.
func (s *Set) finish() (*Set, error) {
	for _, d := range s.Documents {
		if err := d.check(); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Subject, err)
		}
	}
	return s, nil
}

// Check writes the documents of every supplier and dataset of cfg and
// returns what is wrong with them, by file, for `airlock validate`.
// Documents needing a setting of the policy section that is not there are
// left out: only `airlock policy` needs them.
func Check(cfg *config.Config) config.Errors {
	var errs config.Errors
	add := func(file string, err error) {
		if err != nil && !errors.Is(err, ErrNotConfigured) {
			errs = append(errs, config.Error{File: file, Msg: err.Error()})
		}
	}
	for _, s := range cfg.Suppliers.All() {
		_, err := Supplier(cfg.Policy, s)
		add(s.File, err)
	}
	for _, d := range cfg.Datasets.All() {
		_, err := Dataset(cfg.Policy, d, cfg.Exports)
		add(d.File, err)
	}
	return errs
}
