package config

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Values anywhere in the tree may name environment variables as ${NAME},
// so that one tree (supplier files included) serves every environment
// with its accounts, buckets and host names set per deployment. Expansion
// is strict: an unset variable is an error, never an empty string, and $$
// is a literal $. Only values are expanded, after parsing, so a variable
// cannot add keys or change the structure of a file, and comments are left
// alone.

// expandEnv replaces ${NAME} in every scalar value under n (mapping keys
// excepted) by the variable's value, reporting each problem at its line. A
// plain (unquoted) scalar that contained a reference is re-typed from its
// expanded text, so that "max_file_size: ${MAX}" or "workers: ${N}" reads
// like the value written out.
func (c *checker) expandEnv(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		prefix := ""
		if path != "" {
			prefix = path + "."
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.expandEnv(n.Content[i+1], prefix+n.Content[i].Value)
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			c.expandEnv(e, fmt.Sprintf("%s[%d]", path, i))
		}
	case yaml.ScalarNode:
		if n.Tag != "!!str" || !strings.Contains(n.Value, "$") {
			return
		}
		v, err := expand(n.Value, os.LookupEnv)
		if err != nil {
			c.errorf(n.Line, "%s: %v", path, err)
			if c.unexpanded == nil {
				c.unexpanded = map[int]bool{}
			}
			c.unexpanded[n.Line] = true
			return
		}
		if n.Style == 0 && v != n.Value {
			n.Tag = plainTag(v)
		}
		n.Value = v
	}
}

// expand replaces ${NAME} in s using lookup and $$ by $; any other $ is
// kept as written. Every variable of s that is unset is named at once.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	var unset []string
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 || i == len(s)-1 {
			b.WriteString(s)
			switch len(unset) {
			case 0:
				return b.String(), nil
			case 1:
				return "", fmt.Errorf("environment variable %s is not set (write $$ for a literal $)", unset[0])
			}
			return "", fmt.Errorf("environment variables %s are not set (write $$ for a literal $)", strings.Join(unset, ", "))
		}
		b.WriteString(s[:i])
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			s = s[i+2:]
		case '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("%q: ${ without a closing } (write $$ for a literal $)", s[i:])
			}
			name := s[i+2 : i+end]
			if err := checkEnvName(name); err != nil {
				return "", fmt.Errorf("${%s}: %w", name, err)
			}
			v, ok := lookup(name)
			if !ok && !slices.Contains(unset, name) {
				unset = append(unset, name)
			}
			b.WriteString(v)
			s = s[i+end+1:]
		default:
			b.WriteByte('$')
			s = s[i+1:]
		}
	}
}

// plainTag is the tag YAML gives v written as a plain scalar: !!int for
// "4", !!str for "4GB". Text that would not be a single scalar stays a
// string.
func plainTag(v string) string {
	var doc yaml.Node
	if yaml.Unmarshal([]byte(v), &doc) != nil || len(doc.Content) != 1 {
		return "!!str"
	}
	if n := doc.Content[0]; n.Kind == yaml.ScalarNode && n.Style == 0 {
		return n.Tag
	}
	return "!!str"
}
