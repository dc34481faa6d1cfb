package config

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
)

// ARN checks for the values that end up in policy documents: a typo there
// is a policy AWS refuses, or worse, one that grants the wrong principal.

var (
	accountID = regexp.MustCompile(`^[0-9]{12}$`)
	partition = regexp.MustCompile(`^aws(-[a-z]+)*$`)
)

// parseARN splits s and checks the parts every ARN has.
func parseARN(s string) (arn.ARN, error) {
	a, err := arn.Parse(s)
	switch {
	case err != nil:
		return a, fmt.Errorf("%q is not an ARN (arn:partition:service:region:account:resource)", s)
	case !partition.MatchString(a.Partition):
		return a, fmt.Errorf("%q: partition %q is not aws, aws-cn, aws-us-gov…", s, a.Partition)
	case strings.ContainsAny(s, " \t\r\n"):
		return a, fmt.Errorf("%q contains white space", s)
	}
	return a, nil
}

// CheckPrincipalARN accepts the ARN of an IAM principal a bucket or key
// policy can name: an account's root, a user or a role.
func CheckPrincipalARN(s string) error {
	a, err := parseARN(s)
	if err != nil {
		return err
	}
	kind, name, _ := strings.Cut(a.Resource, "/")
	switch {
	case a.Service != "iam":
		return fmt.Errorf("%q is not an IAM ARN (arn:aws:iam::<account>:role/<name>)", s)
	case a.Region != "":
		return fmt.Errorf("%q: IAM ARNs have no region", s)
	case !accountID.MatchString(a.AccountID):
		return fmt.Errorf("%q: account %q must be 12 digits", s, a.AccountID)
	case a.Resource == "root":
	case (kind == "role" || kind == "user") && name != "" && !strings.Contains(name, "*"):
	default:
		return fmt.Errorf("%q must name a role, a user or the account root, without wildcards", s)
	}
	return nil
}

// checkKMSKeyARN accepts the ARN of a KMS key. Not an alias: IAM
// statements naming an alias ARN do not match the key's operations.
func checkKMSKeyARN(s string) error {
	a, err := parseARN(s)
	if err != nil {
		return err
	}
	kind, name, _ := strings.Cut(a.Resource, "/")
	switch {
	case a.Service != "kms":
		return fmt.Errorf("%q is not a KMS ARN (arn:aws:kms:<region>:<account>:key/<id>)", s)
	case a.Region == "":
		return fmt.Errorf("%q has no region", s)
	case !accountID.MatchString(a.AccountID):
		return fmt.Errorf("%q: account %q must be 12 digits", s, a.AccountID)
	case kind == "alias":
		return fmt.Errorf("%q is an alias: policies need the key's own ARN (arn:aws:kms:<region>:<account>:key/<id>)", s)
	case kind != "key" || name == "":
		return fmt.Errorf("%q must name a key (key/<id>)", s)
	}
	return nil
}
