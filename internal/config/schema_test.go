package config

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// schema is the part of a JSON Schema this test reads.
type schema struct {
	Ref                  string             `json:"$ref"`
	Defs                 map[string]*schema `json:"$defs"`
	Type                 any                `json:"type"`
	Properties           map[string]*schema `json:"properties"`
	AdditionalProperties *bool              `json:"additionalProperties"`
	// PatternProperties: a mapping of names the user chooses (keys:).
	PatternProperties map[string]*schema `json:"patternProperties"`
	Pattern           string             `json:"pattern"`
	Description       string             `json:"description"`
	Items             *schema            `json:"items"`
	OneOf             []*schema          `json:"oneOf"`
}

// TestSchemaMatchesLoader fails when a key the loader accepts is missing
// from the published JSON Schema, or the other way round, at any depth.
func TestSchemaMatchesLoader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file     string
		known    keySet
		patterns map[string]string // top-level key: the loader's regexp
	}{
		{"../../docs/schema/airlock.schema.json", airlockKeys, nil},
		{"../../docs/schema/supplier.schema.json", supplierKeys, map[string]string{"name": nameSyntax.String()}},
		{"../../docs/schema/dataset.schema.json", datasetKeys, map[string]string{"name": datasetNameSyntax.String()}},
		{"../../docs/schema/route.schema.json", routeKeys, map[string]string{"name": routeNameSyntax.String()}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			var root schema
			if err := json.Unmarshal(data, &root); err != nil {
				t.Fatal(err)
			}
			compareKeys(t, &root, &root, "", tt.known)
			for key, want := range tt.patterns {
				if got := root.Properties[key].Pattern; got != want {
					t.Errorf("%s: pattern %q, the loader uses %q", key, got, want)
				}
			}
		})
	}
}

// TestSchemaSSHKeyMapping: the mapping form of an ssh_keys entry has the
// keys the loader accepts.
func TestSchemaSSHKeyMapping(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../docs/schema/supplier.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var root schema
	if err := json.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	items := root.Properties["ssh_keys"].Items
	if items == nil {
		t.Fatal("ssh_keys has no items schema")
	}
	var found bool
	for _, alt := range items.OneOf {
		if slices.Contains(schemaTypes(alt), "object") {
			found = true
			compareKeys(t, &root, alt, "ssh_keys[].", sshKeyKeys)
		}
	}
	if !found {
		t.Error("ssh_keys items: no mapping form in oneOf")
	}
}

// compareKeys checks that s (an object schema, possibly a local $ref) has
// exactly the keys in known, recursively, and is closed and documented.
func compareKeys(t *testing.T, root, s *schema, path string, known keySet) {
	t.Helper()
	if ref, ok := strings.CutPrefix(s.Ref, "#/$defs/"); ok {
		s = root.Defs[ref]
		if s == nil {
			t.Fatalf("%s: dangling $ref %q", path, ref)
		}
	}
	if s.AdditionalProperties == nil || *s.AdditionalProperties {
		t.Errorf("%s: additionalProperties must be false", orRoot(path))
	}
	for key, sub := range known {
		prop := s.Properties[key]
		if prop == nil {
			t.Errorf("%s%s: accepted by the loader, missing from the schema", path, key)
			continue
		}
		if prop.Description == "" {
			t.Errorf("%s%s: no description", path, key)
		}
		if sub != nil {
			compareKeys(t, root, prop, path+key+".", sub)
		}
	}
	for key, prop := range s.Properties {
		if _, ok := known[key]; !ok {
			t.Errorf("%s%s: in the schema, unknown to the loader", path, key)
		} else if known[key] == nil && slices.Contains(schemaTypes(prop), "object") && prop.PatternProperties == nil {
			t.Errorf("%s%s: an object in the schema, a scalar or list in the loader", path, key)
		}
	}
}

func schemaTypes(s *schema) []string {
	switch v := s.Type.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, t := range v {
			out = append(out, t.(string))
		}
		return out
	}
	return nil
}

func orRoot(path string) string {
	if path == "" {
		return "(top level)"
	}
	return strings.TrimSuffix(path, ".")
}
