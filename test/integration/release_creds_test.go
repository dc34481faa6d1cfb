package integration

import (
	"bytes"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/testpeer"
)

// The release client's credentials: assume-role through STS, the SSO
// device sign-in, and errors that name their fix.

// fakeSTS answers AssumeRole with the S3 server's own keys and no session
// token (versitygw has no STS, and refuses a token it did not issue) and GetCallerIdentity with the assumed role, recording each
// call's action, role and signing key.
type fakeSTS struct {
	URL   string
	calls chan url.Values
}

func startFakeSTS(t *testing.T, v *testpeer.Versity) *fakeSTS {
	t.Helper()
	keys := make(map[string]string)
	for _, kv := range v.Env() {
		k, val, _ := strings.Cut(kv, "=")
		keys[k] = val
	}
	f := &fakeSTS{calls: make(chan url.Values, 16)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		call := r.PostForm
		_, cred, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
		call.Set("signed-by", strings.Split(cred, "/")[0])
		f.calls <- call
		w.Header().Set("Content-Type", "text/xml")
		switch call.Get("Action") {
		case "AssumeRole":
			fmt.Fprintf(w, `<AssumeRoleResponse><AssumeRoleResult><AssumedRoleUser><Arn>arn:aws:sts::111122223333:assumed-role/releaser/%s</Arn><AssumedRoleId>AROAEXAMPLE:%[1]s</AssumedRoleId></AssumedRoleUser>`+
				`<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><SessionToken></SessionToken><Expiration>%s</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>`,
				call.Get("RoleSessionName"), keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"], time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		case "GetCallerIdentity":
			fmt.Fprint(w, `<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:sts::111122223333:assumed-role/releaser/who</Arn><UserId>AROAEXAMPLE:who</UserId><Account>111122223333</Account></GetCallerIdentityResult></GetCallerIdentityResponse>`)
		default:
			http.Error(w, "unknown action", http.StatusBadRequest)
		}
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func TestReleaseAssumesRole(t *testing.T) {
	t.Parallel()
	v := startVersity(t, "inbox")
	sts := startFakeSTS(t, v.Versity)
	// The base credentials are not the S3 server's: only the role's work there.
	env := append(releaseEnv(t, v.Versity), "AWS_ACCESS_KEY_ID=base-key", "AWS_SECRET_ACCESS_KEY=base-secret", "AWS_ENDPOINT_URL_STS="+sts.URL)
	src, want := releaseTree(t, 3, 0)
	role := "arn:aws:iam::111122223333:role/releaser"
	to := testpeer.S3URL(v.Addr, "inbox", "r")

	if _, stderr, err := runRelease(t, env, src, "--to", to); err == nil {
		t.Fatalf("the base credentials were let in: %s", stderr)
	}
	for len(sts.calls) > 0 {
		<-sts.calls // that run's GetCallerIdentity
	}
	evs, stderr, err := runRelease(t, env, src, "--to", to, "--role-arn", role)
	if err != nil {
		t.Fatalf("release as %s: %v\n%s", role, err, stderr)
	}
	m := checkReleased(t, v.Versity, "inbox", "r/", want)
	if len(eventsOfType(evs, "done")) != len(want) {
		t.Errorf("events: %+v", evs)
	}
	assume := <-sts.calls
	if assume.Get("Action") != "AssumeRole" || assume.Get("RoleArn") != role || assume.Get("signed-by") != "base-key" ||
		!strings.HasPrefix(assume.Get("RoleSessionName"), "airlock-release-") {
		t.Errorf("first STS call = %v, want AssumeRole of %s signed with the base key", assume, role)
	}
	if who := <-sts.calls; who.Get("Action") != "GetCallerIdentity" || who.Get("signed-by") == "base-key" {
		t.Errorf("second STS call = %v, want GetCallerIdentity as the role", who)
	}
	if m.Who != "arn:aws:sts::111122223333:assumed-role/releaser/who" {
		t.Errorf("manifest who = %q, want the caller identity", m.Who)
	}
}

func TestReleaseCredentialErrorsNameTheFix(t *testing.T) {
	t.Parallel()
	v := startVersity(t, "inbox")
	src, _ := releaseTree(t, 1, 0)
	dir := t.TempDir()
	config := filepath.Join(dir, "config")
	writeFile(t, config, "[profile team]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Releaser\nregion = eu-west-2\n"+
		"[sso-session corp]\nsso_start_url = http://127.0.0.1:1/start\nsso_region = eu-west-2\n")
	env := []string{"HOME=" + dir, "AWS_CONFIG_FILE=" + config, "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "none"), "AWS_EC2_METADATA_DISABLED=true"}
	for _, tt := range []struct{ profile, want string }{
		{"team", "airlock release login --profile team"},
		{"nobody", "profile nobody is not in the AWS config file"},
	} {
		_, stderr, err := runRelease(t, env, src, "--to", testpeer.S3URL(v.Addr, "inbox", "r"), "--profile", tt.profile)
		if err == nil || !strings.Contains(stderr, tt.want) {
			t.Errorf("--profile %s: %v, stderr %q; want %q", tt.profile, err, stderr, tt.want)
		}
	}
}

// fakeIdentityCenter speaks the SSO OIDC endpoints' JSON (RegisterClient,
// StartDeviceAuthorization, CreateToken: pending once, then a token) and
// the SSO portal's GetRoleCredentials, which answers with the S3
// server's keys for the token it issued.
type fakeIdentityCenter struct {
	URL       string
	pending   atomic.Int32
	roleCalls atomic.Int32
}

func startFakeIdentityCenter(t *testing.T, v *testpeer.Versity) *fakeIdentityCenter {
	t.Helper()
	keys := make(map[string]string)
	for _, kv := range v.Env() {
		k, val, _ := strings.Cut(kv, "=")
		keys[k] = val
	}
	f := &fakeIdentityCenter{}
	reply := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /client/register", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]any{"clientId": "client-1", "clientSecret": "secret-1", "clientIdIssuedAt": time.Now().Unix(), "clientSecretExpiresAt": time.Now().Add(90 * 24 * time.Hour).Unix()})
	})
	mux.HandleFunc("POST /device_authorization", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]any{"deviceCode": "device-1", "userCode": "ABCD-EFGH", "verificationUri": "http://127.0.0.1/device",
			"verificationUriComplete": "http://127.0.0.1/device?user_code=ABCD-EFGH", "expiresIn": 600, "interval": 1})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]string
		_ = json.NewDecoder(r.Body).Decode(&in)
		if in["deviceCode"] != "device-1" || in["clientSecret"] != "secret-1" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if f.pending.Add(1) == 1 {
			w.Header().Set("X-Amzn-Errortype", "AuthorizationPendingException")
			w.WriteHeader(http.StatusBadRequest)
			reply(w, map[string]string{"error": "authorization_pending"})
			return
		}
		reply(w, map[string]any{"accessToken": "access-1", "tokenType": "Bearer", "expiresIn": 3600, "refreshToken": "refresh-1"})
	})
	mux.HandleFunc("GET /federation/credentials", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Sso_bearer_token") != "access-1" || r.URL.Query().Get("role_name") != "Releaser" {
			w.Header().Set("X-Amzn-Errortype", "UnauthorizedException")
			w.WriteHeader(http.StatusUnauthorized)
			reply(w, map[string]string{"message": "session expired"})
			return
		}
		f.roleCalls.Add(1)
		reply(w, map[string]any{"roleCredentials": map[string]any{"accessKeyId": keys["AWS_ACCESS_KEY_ID"], "secretAccessKey": keys["AWS_SECRET_ACCESS_KEY"],
			"sessionToken": "", "expiration": time.Now().Add(time.Hour).UnixMilli()}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// `release login` signs in through the device flow and writes the AWS
// CLI's token cache, which the SDK's unmodified default chain then reads
// for the profile: the release that follows gets the role's credentials.
func TestReleaseLogin(t *testing.T) {
	t.Parallel()
	v := startVersity(t, "inbox")
	idc := startFakeIdentityCenter(t, v.Versity)
	home := t.TempDir()
	config := filepath.Join(home, "config")
	writeFile(t, config, "[profile team]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Releaser\nregion = us-east-1\n"+
		"[sso-session corp]\nsso_start_url = "+idc.URL+"/start\nsso_region = us-east-1\nsso_registration_scopes = sso:account:access\n")
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "AWS_CONFIG_FILE=" + config, "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none"),
		"AWS_EC2_METADATA_DISABLED=true", "AWS_ENDPOINT_URL_SSO_OIDC=" + idc.URL, "AWS_ENDPOINT_URL_SSO=" + idc.URL}
	src, want := releaseTree(t, 2, 0)
	to := testpeer.S3URL(v.Addr, "inbox", "r")

	var out bytes.Buffer
	login := exec.Command(airlockBin, "release", "login", "--profile", "team", "--no-browser")
	login.Env, login.Stdout, login.Stderr = env, &out, &out
	if err := login.Run(); err != nil {
		t.Fatalf("login: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "http://127.0.0.1/device?user_code=ABCD-EFGH") || !strings.Contains(out.String(), "ABCD-EFGH") || idc.pending.Load() < 2 {
		t.Errorf("login printed %q after %d CreateToken calls; want the URL and code, and a wait for the approval", out.String(), idc.pending.Load())
	}
	cache := filepath.Join(home, ".aws", "sso", "cache", fmt.Sprintf("%x.json", sha1.Sum([]byte("corp"))))
	fi, err := os.Stat(cache)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token cache %s: %v %v", cache, fi, err)
	}
	if _, stderr, err := runRelease(t, env, src, "--to", to, "--profile", "team"); err != nil {
		t.Fatalf("release after login: %v\n%s", err, stderr)
	}
	checkReleased(t, v.Versity, "inbox", "r/", want)
	if idc.roleCalls.Load() == 0 {
		t.Error("the release did not take the role's credentials from the SSO portal")
	}
}
