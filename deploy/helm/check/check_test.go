package check

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const chart = "../airlock"

// helm returns the path of the helm binary: a missing one skips the test,
// and fails it under CI=true, where scripts/install-peers.sh installs it.
func helm(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("helm")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("helm not installed: %v (scripts/install-peers.sh installs it)", err)
		}
		t.Skipf("helm not installed: %v", err)
	}
	return p
}

// render runs helm template with the chart's values for env, and extra
// arguments (--set).
func render(t *testing.T, env string, extra ...string) []Object {
	t.Helper()
	args := append([]string{"template", "airlock", chart, "--namespace", "airlock",
		"-f", filepath.Join(chart, "values-"+env+".yaml")}, extra...)
	cmd := exec.Command(helm(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template (%s): %v\n%s", env, err, stderr.String())
	}
	objs, err := Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("rendered manifests (%s): %v", env, err)
	}
	return objs
}

// TestRenderedManifests: the dev and prod values render objects that pass
// the strict decode, and carry what the chart promises.
func TestRenderedManifests(t *testing.T) {
	t.Parallel()
	for _, env := range []string{"dev", "prod"} {
		t.Run(env, func(t *testing.T) {
			t.Parallel()
			objs := render(t, env)
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.Kind]++
			}
			want := map[string]int{"Deployment": 1, "Service": 2, "ConfigMap": 2, "Job": 1, "PodDisruptionBudget": 1, "NetworkPolicy": 1}
			if env == "prod" {
				want["ServiceMonitor"] = 1
			}
			for k, n := range want {
				if kinds[k] != n {
					t.Errorf("%d %s, want %d (rendered %v)", kinds[k], k, n, kinds)
				}
			}
			for _, o := range objs {
				switch v := o.Value.(type) {
				case *appsv1.Deployment:
					checkDeployment(t, env, v)
				case *corev1.Service:
					checkService(t, env, v)
				case *batchv1.Job:
					checkMigration(t, v)
				case *corev1.ConfigMap:
					checkConfig(t, v)
				}
			}
		})
	}
}

func checkDeployment(t *testing.T, env string, d *appsv1.Deployment) {
	t.Helper()
	replicas := map[string]int32{"dev": 2, "prod": 3}[env]
	if d.Spec.Replicas == nil || *d.Spec.Replicas != replicas {
		t.Errorf("replicas %v, want %d", d.Spec.Replicas, replicas)
	}
	pod := d.Spec.Template.Spec
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("pod does not require a non-root user")
	}
	aa := pod.Affinity.PodAntiAffinity
	switch {
	case env == "prod" && len(aa.RequiredDuringSchedulingIgnoredDuringExecution) != 1:
		t.Error("prod: pods are not required on separate hosts")
	case env == "dev" && len(aa.PreferredDuringSchedulingIgnoredDuringExecution) != 1:
		t.Error("dev: pods are not preferably on separate hosts")
	}
	if d.Spec.Template.Annotations["checksum/config"] == "" {
		t.Error("no checksum/config annotation: a change to airlock.yaml would not roll the pods")
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("container securityContext %+v: want a read-only root, no privilege escalation, every capability dropped", sc)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Error("probes are not /readyz and /healthz")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Error("no resource requests")
	}
	var dbFromSecret bool
	for _, e := range c.Env {
		if e.Name == "AIRLOCK_DATABASE_URL" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			dbFromSecret = true
		}
	}
	if !dbFromSecret {
		t.Error("AIRLOCK_DATABASE_URL is not read from a Secret")
	}
}

func checkService(t *testing.T, env string, s *corev1.Service) {
	t.Helper()
	if !strings.HasSuffix(s.Name, "-sftp") {
		return
	}
	policy := map[string]corev1.ServiceExternalTrafficPolicy{"dev": "Local", "prod": "Cluster"}[env]
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer || s.Spec.ExternalTrafficPolicy != policy {
		t.Errorf("sftp Service: type %s, externalTrafficPolicy %s; want LoadBalancer, %s", s.Spec.Type, s.Spec.ExternalTrafficPolicy, policy)
	}
	if p := s.Spec.Ports[0]; p.TargetPort.StrVal != "sftp" {
		t.Errorf("sftp Service targets %v", p.TargetPort)
	}
}

func checkMigration(t *testing.T, j *batchv1.Job) {
	t.Helper()
	if got := j.Annotations["helm.sh/hook"]; got != "pre-install,pre-upgrade" {
		t.Errorf("migration Job hook %q", got)
	}
	if args := strings.Join(j.Spec.Template.Spec.Containers[0].Args, " "); args != "migrate --database-env AIRLOCK_DATABASE_URL" {
		t.Errorf("migration Job runs %q", args)
	}
	if _, ok := j.Spec.Template.Labels["app.kubernetes.io/name"]; !ok || j.Spec.Template.Labels["app.kubernetes.io/name"] == "airlock" {
		t.Error("the migration pod has the gateway's labels: its Service and budget would select it")
	}
}

// checkConfig: airlock.yaml has the settings the pod's layout needs.
func checkConfig(t *testing.T, cm *corev1.ConfigMap) {
	t.Helper()
	text, ok := cm.Data["airlock.yaml"]
	if !ok {
		return
	}
	var cfg struct {
		Node     string `json:"node"`
		Database string `json:"database"`
		SFTP     struct {
			Listen   string   `json:"listen"`
			HostKeys []string `json:"host_keys"`
		} `json:"sftp"`
		HTTP struct {
			Listen string `json:"listen"`
		} `json:"http"`
		SuppliersDir string `json:"suppliers_dir"`
	}
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatalf("airlock.yaml: %v", err)
	}
	if cfg.Node != "${POD_NAME}" || cfg.Database != "${AIRLOCK_DATABASE_URL}" || cfg.SFTP.Listen != ":2222" ||
		cfg.HTTP.Listen != ":8080" || cfg.SuppliersDir != "/etc/airlock/suppliers" ||
		len(cfg.SFTP.HostKeys) != 1 || cfg.SFTP.HostKeys[0] != "/etc/airlock/keys/ssh_host_ed25519_key" {
		t.Errorf("airlock.yaml does not fit the pod:\n%s", text)
	}
}

// TestDecodeIsStrict: the check fails on a misspelt field, at the top or
// deep in a pod template, on a duplicate key and on an unknown kind.
func TestDecodeIsStrict(t *testing.T) {
	t.Parallel()
	tests := []struct{ file, want string }{
		{"testdata/ok.yaml", ""},
		{"testdata/misspelt-top.yaml", `unknown field "spec.replica"`},
		{"testdata/misspelt-deep.yaml", `unknown field "spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem"`},
		{"testdata/misspelt-servicemonitor.yaml", `unknown field "spec.endpoints[0].intervall"`},
		{"testdata/wrong-type.yaml", "cannot unmarshal"},
		{"testdata/duplicate-key.yaml", `key "replicas" already set`},
		{"testdata/unknown-kind.yaml", `unknown apiVersion "apps/v1beta1" and kind "Deployment"`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			f, err := os.Open(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			_, err = Decode(f)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Decode: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Decode: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// TestConfigChecksum: a change to airlock.yaml changes the pod template
// (so the pods roll: airlock reads it only at start), and a change to a
// supplier file does not (airlock reloads those in place, keeping its
// sessions).
func TestConfigChecksum(t *testing.T) {
	t.Parallel()
	sum := func(extra ...string) string {
		for _, o := range render(t, "dev", extra...) {
			if d, ok := o.Value.(*appsv1.Deployment); ok {
				return d.Spec.Template.Annotations["checksum/config"]
			}
		}
		t.Fatal("no Deployment rendered")
		return ""
	}
	base := sum()
	if got := sum("--set", "airlock.pipeline.workers=8"); got == base {
		t.Error("changing airlock.yaml leaves the pod template as it was: the pods would not restart")
	}
	if got := sum("--set", "suppliers.acme.email=ops@acme.example"); got != base {
		t.Error("changing a supplier file changes the pod template: every supplier edit would restart the pods")
	}
}
