package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// keySet is the set of keys a mapping accepts; a non-nil value is the key
// set of a nested mapping. The loader and the JSON schema test share it, so
// the two cannot drift apart.
type keySet map[string]keySet

// checker walks the yaml.Node tree of one file and collects every problem
// with its line, rather than stopping at the first as yaml.Unmarshal does.
type checker struct {
	file  string
	errs  Errors
	warns Errors
	// unexpanded are the lines whose ${NAME} could not be expanded: the
	// one error there says why, and what the value's checks would add
	// about the unexpanded text is left out.
	unexpanded map[int]bool
}

func (c *checker) errorf(line int, format string, args ...any) {
	if c.unexpanded[line] {
		return
	}
	c.errs = append(c.errs, Error{File: c.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// warnf records a risky but legal setting, which `airlock validate` shows
// without failing.
func (c *checker) warnf(line int, format string, args ...any) {
	c.warns = append(c.warns, Error{File: c.file, Line: line, Msg: fmt.Sprintf(format, args...), Warning: true})
}

// yamlLine matches the position prefix of yaml.v3 syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// parse returns the top-level mapping of a single-document YAML file, with
// ${NAME} in its values expanded (see expandEnv), or nil after reporting why
// there is none.
func (c *checker) parse(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			c.errorf(1, "file is empty")
		} else {
			c.syntaxError(err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		c.syntaxError(err)
		return nil
	default:
		c.errorf(next.Line, "only one YAML document is allowed per file")
		return nil
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		c.errorf(1, "file is empty")
		return nil
	}
	top := resolve(doc.Content[0])
	if top.Kind != yaml.MappingNode {
		c.errorf(top.Line, "expected a mapping at the top level, got %s", describe(top))
		return nil
	}
	c.expandEnv(top, "")
	return top
}

// yamlParserProblems start the messages of yaml.v3's parser (as opposed to
// scanner) errors, whose line it reports 0-based (go-yaml/yaml#205).
var yamlParserProblems = []string{
	"did not find expected <",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or",
	"found duplicate %",
	"found incompatible YAML document",
	"found undefined tag handle",
}

func (c *checker) syntaxError(err error) {
	msg, line := err.Error(), 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
		if slices.ContainsFunc(yamlParserProblems, func(p string) bool { return strings.HasPrefix(msg, p) }) {
			line++
		}
	}
	c.errorf(max(line, 1), "YAML syntax error: %s", strings.TrimPrefix(msg, "yaml: "))
}

// field is one key/value pair of a mapping; a zero field stands for an
// absent key.
type field struct {
	key, val *yaml.Node
	path     string // dotted path for messages, e.g. "sftp.listen"
}

func (f field) present() bool { return f.val != nil && !isNull(f.val) }

// mapping checks that f holds a mapping with only known, unique keys and
// returns its fields by key. An absent or null value is an empty mapping,
// so that "sftp:" with nothing under it means all defaults. The result is
// nil after a type error, which tells need not to pile on more errors.
func (c *checker) mapping(f field, known keySet) map[string]field {
	if !f.present() {
		return map[string]field{}
	}
	n := resolve(f.val)
	if n.Kind != yaml.MappingNode {
		c.errorf(n.Line, "%s: expected a mapping, got %s", f.path, describe(n))
		return nil
	}
	prefix := ""
	if f.path != "" {
		prefix = f.path + "."
	}
	fields := map[string]field{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			c.errorf(k.Line, "keys must be strings, got %s", describe(k))
			continue
		}
		if _, ok := known[k.Value]; !ok {
			c.errorf(k.Line, "unknown key %q%s", k.Value, suggest(k.Value, known))
			continue
		}
		if prev, dup := fields[k.Value]; dup {
			c.errorf(k.Line, "duplicate key %q (first at line %d)", k.Value, prev.key.Line)
			continue
		}
		fields[k.Value] = field{key: k, val: v, path: prefix + k.Value}
	}
	return fields
}

// need returns the field for a key that must be present and not null.
// parent is the mapping's own field; its line is reported when key is absent.
func (c *checker) need(parent field, fields map[string]field, key string) (field, bool) {
	if fields == nil {
		return field{}, false
	}
	f, ok := fields[key]
	if !ok {
		c.errorf(resolve(parent.val).Line, "missing required key %q", key)
		return f, false
	}
	if !f.present() {
		c.errorf(f.key.Line, "%s must not be empty", f.path)
		return f, false
	}
	return f, true
}

// str returns the string in f; null, "" and an absent key all give "", which
// callers treat as "not set". ok is false after a type error was reported.
func (c *checker) str(f field) (s string, ok bool) {
	if !f.present() {
		return "", true
	}
	n := resolve(f.val)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		c.errorf(n.Line, "%s: expected a string, got %s", f.path, describe(n))
		return "", false
	}
	return n.Value, true
}

// required is str for a key that must be set to a non-empty string.
func (c *checker) required(parent field, fields map[string]field, key string) (string, bool) {
	f, ok := c.need(parent, fields, key)
	if !ok {
		return "", false
	}
	s, ok := c.str(f)
	if ok && s == "" {
		c.errorf(f.key.Line, "%s must not be empty", f.path)
		return "", false
	}
	return s, ok
}

// item is one string element of a list.
type item struct {
	val  string
	line int
	path string // e.g. "allowed_ips[2]"
}

// list returns the string elements of a list. set is false when the key is
// absent or null, so that callers can tell "default" from an explicit [],
// and after a type error, which is reported here.
func (c *checker) list(f field) (items []item, set bool) {
	if !f.present() {
		return nil, false
	}
	n := resolve(f.val)
	if n.Kind != yaml.SequenceNode {
		c.errorf(n.Line, "%s: expected a list, got %s", f.path, describe(n))
		return nil, false
	}
	items = []item{}
	for i, e := range n.Content {
		e = resolve(e)
		path := fmt.Sprintf("%s[%d]", f.path, i)
		if e.Kind != yaml.ScalarNode || e.Tag != "!!str" {
			c.errorf(e.Line, "%s: expected a string, got %s", path, describe(e))
			continue
		}
		items = append(items, item{val: e.Value, line: e.Line, path: path})
	}
	return items, true
}

// oneOf returns the string in f, or def when f is unset, and reports a value
// other than those allowed.
func (c *checker) oneOf(f field, def string, allowed ...string) string {
	s, ok := c.str(f)
	switch {
	case !ok:
	case s == "":
		return def
	case slices.Contains(allowed, s):
		return s
	default:
		last := len(allowed) - 1
		c.errorf(valLine(f), "%s: %q must be %s or %s", f.path, s, strings.Join(allowed[:last], ", "), allowed[last])
	}
	return def
}

// boolean returns the true or false in f, or def when f is absent or null.
func (c *checker) boolean(f field, def bool) bool {
	if !f.present() {
		return def
	}
	n := resolve(f.val)
	var v bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&v) != nil {
		c.errorf(n.Line, "%s: expected true or false, got %s", f.path, describe(n))
		return def
	}
	return v
}

// integer returns the integer in f, or def when f is absent or null, and
// reports a value outside [lo, hi] (hi < lo: no upper bound).
func (c *checker) integer(f field, def, lo, hi int) int {
	if !f.present() {
		return def
	}
	n := resolve(f.val)
	var v int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		c.errorf(n.Line, "%s: expected a whole number, got %s", f.path, describe(n))
		return def
	}
	switch {
	case hi >= lo && (v < lo || v > hi):
		c.errorf(n.Line, "%s must be from %d to %d, got %d", f.path, lo, hi, v)
	case v < lo:
		c.errorf(n.Line, "%s must be at least %d, got %d", f.path, lo, v)
	default:
		return v
	}
	return def
}

// duration returns the duration in f (see ParseDuration), or def when f is
// absent or null. Zero is an error unless zeroOK.
func (c *checker) duration(f field, def time.Duration, zeroOK bool) time.Duration {
	if !f.present() {
		return def
	}
	n := resolve(f.val)
	// A bare 0 is an !!int; other bare numbers fail below for want of a unit.
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" && n.Tag != "!!int" {
		c.errorf(n.Line, "%s: %v, got %s", f.path, errNotDuration, describe(n))
		return def
	}
	d, err := ParseDuration(n.Value)
	switch {
	case err != nil:
		c.errorf(n.Line, "%s: %v", f.path, err)
	case d == 0 && !zeroOK:
		c.errorf(n.Line, "%s must be greater than 0", f.path)
	default:
		return d
	}
	return def
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describe names the YAML type of n for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return "a string"
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "nothing"
		}
		return "a value tagged " + n.Tag
	}
	return "an unsupported YAML node"
}

// suggest returns ` (did you mean "x"?)` when key looks like a typo of a
// known key, and "" otherwise.
func suggest(key string, known keySet) string {
	key = strings.ToLower(key)
	best, bestDist := "", 0
	for k := range known {
		d := editDistance(key, k)
		if len(key) >= 3 && strings.HasPrefix(k, key) {
			d = 1 // a truncated key, like "kms" for "kms_key"
		}
		if best == "" || d < bestDist || d == bestDist && k < best {
			best, bestDist = k, d
		}
	}
	// Two edits catch the usual slips (a dropped letter, swapped letters)
	// without suggesting unrelated short keys.
	if best == "" || bestDist > 2 || bestDist >= len(best) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the optimal string alignment distance: Levenshtein plus
// transposition of adjacent characters, the most common typo.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
