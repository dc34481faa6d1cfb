package sftpd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadHostKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "state", "keys", "ssh_host_ed25519_key")

	first, err := LoadHostKeys([]string{p})
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	if len(first) != 1 || first[0].PublicKey().Type() != "ssh-ed25519" {
		t.Fatalf("generated %v", first)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("key file mode %o, want 600", mode)
	}
	again, err := LoadHostKeys([]string{p})
	if err != nil {
		t.Fatalf("second start: %v", err)
	}
	if !bytes.Equal(again[0].PublicKey().Marshal(), first[0].PublicKey().Marshal()) {
		t.Error("the host key changed between starts")
	}

	p2 := filepath.Join(dir, "second_key")
	two, err := LoadHostKeys([]string{p, p2})
	if err != nil || len(two) != 2 {
		t.Fatalf("two keys: %v, %v", two, err)
	}
	if bytes.Equal(two[0].PublicKey().Marshal(), two[1].PublicKey().Marshal()) {
		t.Error("two generated keys are equal")
	}
}

func TestLoadHostKeysErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	writeFile(t, garbage, "not a key")
	blocked := filepath.Join(dir, "file", "key") // parent is a file
	writeFile(t, filepath.Join(dir, "file"), "")
	tests := []struct {
		name  string
		paths []string
		want  string
	}{
		{"none", nil, "no host keys configured"},
		{"garbage", []string{garbage}, garbage},
		{"unwritable", []string{blocked}, blocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadHostKeys(tt.paths)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to name %q", err, tt.want)
			}
		})
	}
}

// TestLoadHostKeysConcurrentFirstStart: nodes starting at once on shared
// storage must end up with the same key, and none may fail.
func TestLoadHostKeysConcurrentFirstStart(t *testing.T) {
	t.Parallel()
	for round := range 20 {
		p := filepath.Join(t.TempDir(), "ssh_host_ed25519_key")
		const nodes = 8
		keys := make([][]byte, nodes)
		errs := make([]error, nodes)
		var wg sync.WaitGroup
		for i := range nodes {
			wg.Go(func() {
				signers, err := LoadHostKeys([]string{p})
				errs[i] = err
				if err == nil {
					keys[i] = signers[0].PublicKey().Marshal()
				}
			})
		}
		wg.Wait()
		for i := range nodes {
			if errs[i] != nil {
				t.Fatalf("round %d node %d: %v", round, i, errs[i])
			}
			if !bytes.Equal(keys[i], keys[0]) {
				t.Fatalf("round %d: nodes started with different host keys", round)
			}
		}
	}
}
