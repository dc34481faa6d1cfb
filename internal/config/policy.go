package config

import (
	"fmt"
	"regexp"
	"strings"
)

// Policy is what `airlock policy` needs to write the documents that bucket
// and key owners apply: the ARNs of this environment, never hard-coded.
type Policy struct {
	Partition string // the ARN partition, "aws" unless set
	AccountID string // the account airlock runs in; "" when not set
	// IngestionRoleARN is the role airlock delivers uploads with; a
	// supplier's destination bucket and key must let it write.
	IngestionRoleARN string
	// MoverRoleARN is the role airlock sends push datasets with; their
	// target buckets and keys must let it write.
	MoverRoleARN string
	// UserARNTemplate maps a dataset user to an IAM principal: {user} is
	// the user name, {account} AccountID.
	UserARNTemplate string
	// DenyTLSBelow is the lowest TLS version a pull bucket accepts
	// ("1.2"); "" leaves out the s3:TlsVersion statement, for a server
	// that cannot evaluate that key.
	DenyTLSBelow string
}

// UserARN is the principal of a dataset user.
func (p Policy) UserARN(user string) string {
	return strings.NewReplacer("{user}", user, "{account}", p.AccountID).Replace(p.UserARNTemplate)
}

const (
	defaultPartition    = "aws"
	defaultDenyTLSBelow = "1.2"
)

var policyKeys = keySet{
	"partition": nil, "account_id": nil, "ingestion_role_arn": nil, "mover_role_arn": nil,
	"user_arn_template": nil, "deny_tls_below": nil,
}

// placeholder matches the {name} parts of user_arn_template.
var placeholder = regexp.MustCompile(`\{[^}]*\}`)

// parsePolicy reads the policy section.
func parsePolicy(c *checker, f field) Policy {
	m := c.mapping(f, policyKeys)
	p := Policy{
		Partition:        defaultPartition,
		IngestionRoleARN: c.checked(m["ingestion_role_arn"], CheckPrincipalARN),
		MoverRoleARN:     c.checked(m["mover_role_arn"], CheckPrincipalARN),
	}
	if s, _ := c.str(m["partition"]); s != "" {
		if partition.MatchString(s) {
			p.Partition = s
		} else {
			c.errorf(valLine(m["partition"]), "policy.partition: %q is not aws, aws-cn, aws-us-gov…", s)
		}
	}
	p.AccountID = c.checked(m["account_id"], func(s string) error {
		if !accountID.MatchString(s) {
			return fmt.Errorf("%q must be 12 digits (quote it, as YAML drops leading zeros from numbers)", s)
		}
		return nil
	})
	p.UserARNTemplate = c.checked(m["user_arn_template"], func(s string) error {
		return checkUserARNTemplate(s, p.AccountID, m["account_id"].present())
	})
	switch v := c.oneOf(m["deny_tls_below"], defaultDenyTLSBelow, "1.2", "1.3", "none"); v {
	case "none":
		c.warnf(valLine(m["deny_tls_below"]), "policy.deny_tls_below: none: pull bucket policies do not deny TLS below 1.2; only for a server whose listener refuses it and that cannot evaluate s3:TlsVersion")
	default:
		p.DenyTLSBelow = v
	}
	return p
}

// checkUserARNTemplate checks that the template names each user by an
// IAM principal ARN of its own.
func checkUserARNTemplate(s, account string, accountSet bool) error {
	for _, ph := range placeholder.FindAllString(s, -1) {
		if ph != "{user}" && ph != "{account}" {
			return fmt.Errorf("%q: unknown placeholder %s (use {user} and {account})", s, ph)
		}
	}
	switch {
	case !strings.Contains(s, "{user}"):
		return fmt.Errorf("%q must contain {user}, or every user would be one principal", s)
	case strings.Contains(s, "{account}") && !accountSet:
		return fmt.Errorf("%q uses {account}, but policy.account_id is not set", s)
	case strings.Contains(s, "{account}") && account == "":
		return nil // account_id is broken, and reported
	}
	return CheckPrincipalARN(Policy{AccountID: account, UserARNTemplate: s}.UserARN("a_user"))
}
