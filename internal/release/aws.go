package release

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ssocreds"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Credentials say which of the AWS chain's credentials a release uses.
// With none set, the default chain decides: environment variables,
// AWS_PROFILE, SSO and credential_process profiles, and so on.
type Credentials struct {
	Profile   string
	RoleARN   string                 // assume this role from the credentials the chain gives
	MFASerial string                 // with RoleARN: the MFA device whose code the role wants
	MFACode   func() (string, error) // asks for the code, on the terminal
	// Login is the sign-in command errors name ("airlock-release login");
	// default "airlock release login".
	Login string
}

// LoadConfig resolves the AWS configuration and credentials for t, and
// retrieves the credentials at once, so that a missing or expired sign-in
// is reported, with its fix, before any file is read.
func LoadConfig(ctx context.Context, t Target, c Credentials) (aws.Config, error) {
	profile := cmpOr(c.Profile, t.Profile)
	var opts []func(*config.LoadOptions) error
	if profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(profile))
	}
	if t.Region != "" {
		opts = append(opts, config.WithRegion(t.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, explain(err, profile, c.RoleARN, c.Login)
	}
	if cfg.Region == "" {
		if t.Endpoint == "" {
			return aws.Config{}, errors.New("no AWS region: add ?region=… to --to, set AWS_REGION, or set region in the profile")
		}
		cfg.Region = "us-east-1" // an S3-compatible server's usual answer
	}
	if c.RoleARN != "" {
		stsc := sts.NewFromConfig(cfg, stsEndpoint(t))
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsc, c.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = sessionName()
			if c.MFASerial != "" {
				o.SerialNumber = aws.String(c.MFASerial)
				o.TokenProvider = c.MFACode
			}
		}))
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return aws.Config{}, explain(err, profile, c.RoleARN, c.Login)
	}
	return cfg, nil
}

// NewS3Client is the client for t: the endpoint in the URL wins over
// AWS_ENDPOINT_URL_S3 and the profile's, which win over AWS's own.
func NewS3Client(cfg aws.Config, t Target) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if t.Endpoint != "" {
			o.BaseEndpoint = aws.String(t.Endpoint)
		}
		o.UsePathStyle = o.UsePathStyle || t.PathStyle
	})
}

// stsEndpoint sends STS calls to the S3-compatible server named in the
// URL (MinIO serves STS there) unless AWS_ENDPOINT_URL_STS or the profile
// names one.
func stsEndpoint(t Target) func(*sts.Options) {
	return func(o *sts.Options) {
		if o.BaseEndpoint == nil && t.Endpoint != "" {
			o.BaseEndpoint = aws.String(t.Endpoint)
		}
	}
}

// Who is the caller as STS names it (an ARN), or else the OS user: the
// manifest's "who". A server without STS costs one short, unretried try.
func Who(ctx context.Context, cfg aws.Config, t Target) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := sts.NewFromConfig(cfg, stsEndpoint(t), func(o *sts.Options) {
		o.Retryer = retry.AddWithMaxAttempts(o.Retryer, 1)
	}).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err == nil && aws.ToString(out.Arn) != "" {
		return aws.ToString(out.Arn)
	}
	return OSUser()
}

// OSUser is the signed-in user of this machine.
func OSUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return cmpOr(os.Getenv("USER"), os.Getenv("USERNAME"))
}

var unsafeSession = regexp.MustCompile(`[^\w+=,.@-]`)

// sessionName names the assumed-role session after the OS user, so that
// CloudTrail shows who released.
func sessionName() string {
	name := unsafeSession.ReplaceAllString("airlock-release-"+OSUser(), "_")
	return name[:min(len(name), 64)]
}

// explain turns the AWS chain's errors into what to do about them.
func explain(err error, profile, role, login string) error {
	p, login := cmpOr(profile, "default"), cmpOr(login, "airlock release login")
	var sso *ssocreds.InvalidTokenError
	var noProfile config.SharedConfigProfileNotExistError
	switch {
	case errors.As(err, &sso) || strings.Contains(err.Error(), "SSO token"):
		return fmt.Errorf("the SSO session of profile %s has expired or was never started: run `%s --profile %s` (or `aws sso login`), then again: %w", p, login, p, err)
	case errors.As(err, &noProfile):
		return fmt.Errorf("profile %s is not in the AWS config file (~/.aws/config, or AWS_CONFIG_FILE): add it, or name another with --profile: %w", p, err)
	case role != "" && strings.Contains(err.Error(), "AssumeRole"):
		return fmt.Errorf("assuming %s failed: check that the role's trust policy lets your credentials (profile %s) assume it, and pass --mfa SERIAL if it wants MFA: %w", role, p, err)
	case strings.Contains(err.Error(), "credential_process") || strings.Contains(err.Error(), "ProcessProvider"):
		return fmt.Errorf("the credential_process of profile %s failed (for IAM Roles Anywhere: is aws_signing_helper installed, and the certificate valid?): %w", p, err)
	case strings.Contains(err.Error(), "IMDS") || strings.Contains(err.Error(), "no valid providers"):
		return fmt.Errorf("no AWS credentials found: sign in with `%s --profile P` and pass --profile P, or set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: %w", login, err)
	}
	return fmt.Errorf("AWS credentials: %w", err)
}
