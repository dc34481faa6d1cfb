package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ssocreds"
	"github.com/aws/aws-sdk-go-v2/service/ssooidc"
	"github.com/aws/aws-sdk-go-v2/service/ssooidc/types"
)

// Login signs in to IAM Identity Center for an SSO profile with the
// device authorization flow (RegisterClient, StartDeviceAuthorization,
// then CreateToken until the person approves), and writes the token where
// the AWS CLI and the SDK's SSO credentials read it, so either tool can
// use the session. open, when not nil, shows the URL in a browser.
func Login(ctx context.Context, profile string, out io.Writer, open func(url string) error) error {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithSharedConfigProfile(profile))
	if err != nil {
		return explain(err, profile, "", "")
	}
	sso, err := ssoSettings(cfg, profile)
	if err != nil {
		return err
	}
	cfg.Region = sso.region
	client := ssooidc.NewFromConfig(cfg)
	reg, err := client.RegisterClient(ctx, &ssooidc.RegisterClientInput{
		ClientName: aws.String("airlock-release"), ClientType: aws.String("public"),
		Scopes: []string{"sso:account:access"},
	})
	if err != nil {
		return fmt.Errorf("sign in: register with IAM Identity Center (%s): %w", sso.region, err)
	}
	dev, err := client.StartDeviceAuthorization(ctx, &ssooidc.StartDeviceAuthorizationInput{
		ClientId: reg.ClientId, ClientSecret: reg.ClientSecret, StartUrl: aws.String(sso.startURL),
	})
	if err != nil {
		return fmt.Errorf("sign in: start device authorization at %s: %w", sso.startURL, err)
	}
	link := cmpOr(aws.ToString(dev.VerificationUriComplete), aws.ToString(dev.VerificationUri))
	fmt.Fprintf(out, "To sign in, open %s\nand check that it shows the code %s\n", link, aws.ToString(dev.UserCode))
	if open != nil && open(link) == nil {
		fmt.Fprintln(out, "(opened in your browser)")
	}
	tok, err := awaitToken(ctx, client, reg, dev)
	if err != nil {
		return err
	}
	path, err := writeToken(sso.cacheKey, reg, tok, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Signed in; the session of profile %s is in %s\n", profile, path)
	return nil
}

type ssoProfile struct{ region, startURL, cacheKey string }

// ssoSettings reads the profile's sso-session (or its older sso_start_url
// settings); the token cache is keyed as the SDK looks it up.
func ssoSettings(cfg aws.Config, profile string) (ssoProfile, error) {
	for _, src := range cfg.ConfigSources {
		sc, ok := src.(config.SharedConfig)
		if !ok {
			continue
		}
		if s := sc.SSOSession; s != nil {
			return ssoProfile{region: s.SSORegion, startURL: s.SSOStartURL, cacheKey: s.Name}, nil
		}
		if sc.SSOStartURL != "" {
			return ssoProfile{region: sc.SSORegion, startURL: sc.SSOStartURL, cacheKey: sc.SSOStartURL}, nil
		}
	}
	return ssoProfile{}, fmt.Errorf("profile %s has no IAM Identity Center settings: give it sso_session (and an [sso-session] with sso_start_url and sso_region), as `aws configure sso` writes", profile)
}

// awaitToken polls CreateToken at the interval the service asks for,
// slower when told to, until the person approves, refuses or the code
// expires.
func awaitToken(ctx context.Context, c *ssooidc.Client, reg *ssooidc.RegisterClientOutput, dev *ssooidc.StartDeviceAuthorizationOutput) (*ssooidc.CreateTokenOutput, error) {
	interval := time.Duration(max(dev.Interval, 1)) * time.Second
	for {
		tok, err := c.CreateToken(ctx, &ssooidc.CreateTokenInput{
			ClientId: reg.ClientId, ClientSecret: reg.ClientSecret, DeviceCode: dev.DeviceCode,
			GrantType: aws.String("urn:ietf:params:oauth:grant-type:device_code"),
		})
		var pending *types.AuthorizationPendingException
		var slow *types.SlowDownException
		switch {
		case err == nil:
			return tok, nil
		case errors.As(err, &slow):
			interval += 5 * time.Second
		case !errors.As(err, &pending):
			return nil, fmt.Errorf("sign in: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(interval):
		}
	}
}

// cachedToken is the AWS CLI's SSO token cache file.
type cachedToken struct {
	AccessToken           string `json:"accessToken"`
	ExpiresAt             string `json:"expiresAt"`
	RefreshToken          string `json:"refreshToken,omitempty"`
	ClientID              string `json:"clientId"`
	ClientSecret          string `json:"clientSecret"`
	RegistrationExpiresAt string `json:"registrationExpiresAt,omitempty"`
}

func writeToken(key string, reg *ssooidc.RegisterClientOutput, tok *ssooidc.CreateTokenOutput, now time.Time) (string, error) {
	path, err := ssocreds.StandardCachedTokenFilepath(key)
	if err != nil {
		return "", fmt.Errorf("sign in: %w", err)
	}
	ct := cachedToken{
		AccessToken:  aws.ToString(tok.AccessToken),
		ExpiresAt:    now.Add(time.Duration(tok.ExpiresIn) * time.Second).UTC().Format(time.RFC3339),
		RefreshToken: aws.ToString(tok.RefreshToken),
		ClientID:     aws.ToString(reg.ClientId), ClientSecret: aws.ToString(reg.ClientSecret),
	}
	if reg.ClientSecretExpiresAt > 0 {
		ct.RegistrationExpiresAt = time.Unix(reg.ClientSecretExpiresAt, 0).UTC().Format(time.RFC3339)
	}
	b, err := json.Marshal(ct)
	if err != nil {
		return "", fmt.Errorf("sign in: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("sign in: %w", err)
	}
	// Written whole, then renamed: a reader never sees half a token.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return "", fmt.Errorf("sign in: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("sign in: %w", err)
	}
	return path, nil
}
