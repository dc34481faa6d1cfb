package integration

import (
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// imageUID is the user the container image runs as (Dockerfile, chart).
const imageUID = 65532

// TestStaticBinaryNonRoot runs airlock as the container image does, short
// of a container runtime (none can run here): a binary built with
// CGO_ENABLED=0 and linked statically, as a user other than root that
// owns nothing but its state directory and its destination, the rest of
// the tree read-only to it, and a host key it can read and not write, as
// a Kubernetes Secret mounts it. An upload is delivered, and the tree is
// left as it was.
func TestStaticBinaryNonRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("running as another user needs root")
	}
	bin := buildStatic(t)

	key := newClientKey(t)
	g := newGateway(t, gatewayOpts{
		sftpExtra: "  host_keys: [keys/ssh_host_ed25519_key]\n",
		suppliers: []supplierSpec{{name: "acme", keys: []clientKey{key}}},
	})
	hostKey := filepath.Join(g.dir, "keys", "ssh_host_ed25519_key")
	mustDo(t, os.Mkdir(filepath.Dir(hostKey), 0o755))
	if out, err := exec.Command(testpeer.Require(t, "ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	// As a Secret volume with defaultMode 0440 and the pod's fsGroup.
	mustDo(t, os.Chown(hostKey, 0, imageUID), os.Chmod(hostKey, 0o440))
	// t.TempDir's directories are its creator's alone.
	mustDo(t, os.Chmod(filepath.Dir(g.dir), 0o755), os.Chmod(g.dir, 0o755))
	writable := []string{filepath.Join(g.dir, "state"), filepath.Join(g.dir, "delivered")}
	for _, d := range writable {
		mustDo(t, os.MkdirAll(d, 0o755), os.Chown(d, imageUID, imageUID))
	}
	before := treeOutside(t, g.dir, writable)

	cmd := exec.Command(bin, "serve", "--config", g.cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: imageUID, Gid: imageUID}}
	// The image's environment: nothing but what the chart sets.
	cmd.Env = []string{"TMPDIR=" + writable[0]}
	g.log = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = g.log, g.log
	g.proc = testpeer.Start(t, cmd)
	for _, addr := range []string{g.sftpAddr, g.httpAddr} {
		if err := testpeer.Listening(addr, g.proc.Exited()); err != nil {
			t.Fatalf("start airlock as uid %d: %v\n%s", imageUID, err, g.log.String())
		}
	}
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(g.proc.Pid()), "status"))
	if err != nil || !strings.Contains(string(status), "\nUid:\t65532\t") {
		t.Fatalf("airlock does not run as uid %d: %v\n%s", imageUID, err, status)
	}

	src := filepath.Join(t.TempDir(), "report.csv")
	mustDo(t, os.WriteFile(src, []byte("id,amount\n1,2\n"), 0o644))
	g.put(t, "acme", key, map[string]string{"/report.csv": src})
	g.waitTransfer(t, "acme", "/report.csv", 60*time.Second, "delivery by the non-root static binary",
		func(tr ledger.Transfer) bool { return tr.State == ledger.Delivered })
	got, err := os.ReadFile(g.destFile("acme", "/report.csv"))
	if err != nil || string(got) != "id,amount\n1,2\n" {
		t.Errorf("delivered file: %q, %v", got, err)
	}
	if after := treeOutside(t, g.dir, writable); !slices.Equal(after, before) {
		t.Errorf("airlock changed the read-only tree:\nbefore %v\nafter  %v", before, after)
	}
}

// buildStatic builds airlock as `make image` does and checks that the
// result needs no dynamic loader, so that it runs on an empty base image.
func buildStatic(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "airlock-static-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	mustDo(t, os.Chmod(dir, 0o755))
	bin := filepath.Join(dir, "airlock")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "../../cmd/airlock")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("%s is dynamically linked (%s): it would not run FROM scratch", bin, p.Type)
		}
	}
	return bin
}

// treeOutside lists every path under root but those under skip, with its
// size and mode.
func treeOutside(t *testing.T, root string, skip []string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if slices.Contains(skip, p) {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		size := fi.Size()
		if fi.IsDir() {
			size = 0 // a directory's size depends on the file system
		}
		out = append(out, rel+" "+fi.Mode().String()+" "+strconv.FormatInt(size, 10))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustDo(t *testing.T, errs ...error) {
	t.Helper()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestChartConfigValidates renders the Helm chart with each environment's
// values and runs `airlock validate` on the configuration tree it mounts,
// with the environment its Deployment gives the container: the chart's
// airlock.yaml, its ${NAME} references and its supplier files pass every
// check, cluster checks included, with no warning.
func TestChartConfigValidates(t *testing.T) {
	t.Parallel()
	helm := testpeer.Require(t, "helm")
	for _, env := range []string{"dev", "prod"} {
		t.Run(env, func(t *testing.T) {
			t.Parallel()
			chart := "../../deploy/helm/airlock"
			out, err := exec.Command(helm, "template", "airlock", chart, "-f", filepath.Join(chart, "values-"+env+".yaml")).Output()
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			root := t.TempDir()
			vars := writeChartTree(t, out, root)
			cmd := exec.Command(airlockBin, "validate", "--config", filepath.Join(root, "config", "airlock.yaml"))
			cmd.Env = vars
			got, err := cmd.CombinedOutput()
			want := filepath.Join(root, "config", "airlock.yaml") + ": ok (1 supplier, 0 warnings)\n"
			if err != nil || string(got) != want {
				t.Errorf("airlock validate of the chart's tree: %v\n%s", err, got)
			}
		})
	}
}

// writeChartTree writes the files the rendered manifests mount under
// /etc/airlock to root instead (the Secrets as stand-ins), and returns
// the airlock container's environment, Secret values made up.
func writeChartTree(t *testing.T, manifests []byte, root string) []string {
	t.Helper()
	var vars []string
	dec := yaml.NewDecoder(bytes.NewReader(manifests))
	for {
		var obj struct {
			Kind     string
			Metadata struct{ Name string }
			Data     map[string]string
			Spec     struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Env []struct {
								Name      string
								Value     string
								ValueFrom map[string]any `yaml:"valueFrom"`
							}
						}
					}
				}
			}
		}
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		switch {
		case obj.Kind == "ConfigMap" && strings.HasSuffix(obj.Metadata.Name, "-config"):
			text := strings.ReplaceAll(obj.Data["airlock.yaml"], "/etc/airlock/", root+"/")
			writeFile(t, filepath.Join(root, "config", "airlock.yaml"), text)
		case obj.Kind == "ConfigMap" && strings.HasSuffix(obj.Metadata.Name, "-suppliers"):
			for name, text := range obj.Data {
				writeFile(t, filepath.Join(root, "suppliers", name), text)
			}
		case obj.Kind == "Deployment":
			for _, e := range obj.Spec.Template.Spec.Containers[0].Env {
				v := e.Value
				switch {
				case e.Name == "AIRLOCK_DATABASE_URL":
					v = "postgres://airlock@db.internal/airlock"
				case e.ValueFrom != nil:
					v = "from-" + strings.ToLower(e.Name)
				}
				vars = append(vars, e.Name+"="+v)
			}
		}
	}
	// The Secrets' files: validate checks that they are there.
	writeFile(t, filepath.Join(root, "keys", "ssh_host_ed25519_key"), "stand-in\n")
	writeFile(t, filepath.Join(root, "audit", "audit_ed25519"), "stand-in\n")
	return vars
}
