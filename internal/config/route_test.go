package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// routeYAML is a valid route file; tests derive broken ones from it. Its
// lines: 1 name, 2 source, 3 flag, 4 destination.
const routeYAML = `name: cbol_report
source: "s3://src/dataegress/cbol-report/$TODAYS_DATE/?region=eu-west-2"
flag: "pipeline_success.flag"
destination: "s3://dest/cbol/$TODAYS_DATE/?region=eu-west-2"
`

const ageRecipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"

// TestRouteRules checks each route-file rule. files are written next to a
// minimal airlock.yaml (with keys.dks unless noKeys); want lists every
// error in order.
func TestRouteRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		files  map[string]string // below routes/, or at the root when the name has a slash
		noKeys bool
		want   []string
	}{
		{name: "valid", files: map[string]string{"cbol_report.yaml": routeYAML}},
		{name: "every key", files: map[string]string{
			"cbol_report.yaml": routeYAML + "decrypt: true\ncompress: zstd\nencrypt: {age: [\"" + ageRecipient + "\"]}\nkms_key: " + kmsARN +
				"\nrecipient: Data Warehouse\nnotify: [\"dw@example.org\"]\napproval: 2\n",
			"to_dw.yaml": "name: to_dw\nsource: exports/dw\ndestination: \"https://receiver.example:8091/DA/\"\nrewrap: keys/r.pem\n" +
				"tls: {cert: tls/c.pem, key: tls/c.key, ca: tls/ca.pem}\n",
			"/keys/r.pem": "k", "/tls/c.pem": "c", "/tls/c.key": "k", "/tls/ca.pem": "ca",
		}},
		{name: "name and file differ", files: map[string]string{"other.yaml": routeYAML},
			want: []string{`routes/other.yaml:1: name "cbol_report" does not match the file name "other.yaml"`}},
		{name: "missing source and destination", files: map[string]string{"cbol_report.yaml": "name: cbol_report\n"},
			want: []string{`routes/cbol_report.yaml:1: missing required key "source"`, `routes/cbol_report.yaml:1: missing required key "destination"`}},
		{name: "other placeholder", files: map[string]string{"cbol_report.yaml": strings.Replace(routeYAML, "$TODAYS_DATE/?", "$YESTERDAY/?", 1)},
			want: []string{`routes/cbol_report.yaml:2: source: "s3://src/dataegress/cbol-report/$YESTERDAY/?region=eu-west-2": the only placeholder is $TODAYS_DATE`}},
		{name: "flag with a slash", files: map[string]string{"cbol_report.yaml": strings.Replace(routeYAML, `"pipeline_success.flag"`, `"a/b.flag"`, 1)},
			want: []string{`routes/cbol_report.yaml:3: flag: "a/b.flag" must be a file name directly below the source prefix`}},
		{name: "decrypt without keys.dks", noKeys: true, files: map[string]string{"cbol_report.yaml": routeYAML + "decrypt: true\n"},
			want: []string{`routes/cbol_report.yaml:5: decrypt needs the key service that unwraps data keys: add keys.dks to airlock.yaml`}},
		{name: "rewrap with compress", files: map[string]string{"cbol_report.yaml": routeYAML + "rewrap: r.pem\ncompress: gzip\n", "/r.pem": "k"},
			want: []string{`routes/cbol_report.yaml:5: rewrap sends the body still encrypted: it cannot be combined with decrypt, compress or encrypt`}},
		{name: "https without tls", files: map[string]string{"cbol_report.yaml": strings.Replace(routeYAML, `"s3://dest/cbol/$TODAYS_DATE/?region=eu-west-2"`, `"https://r.example/x/"`, 1)},
			want: []string{`routes/cbol_report.yaml:4: an https:// destination needs tls: {cert, key, ca} (mutual TLS)`}},
		{name: "tls for s3", files: map[string]string{"cbol_report.yaml": routeYAML + "tls: {cert: c, key: k, ca: a}\n", "/c": "", "/k": "", "/a": ""},
			want: []string{`routes/cbol_report.yaml:5: tls applies only to an https:// destination`}},
		{name: "missing key file", files: map[string]string{"cbol_report.yaml": routeYAML + "rewrap: nowhere.pem\n"},
			want: []string{`routes/cbol_report.yaml:5: rewrap: "nowhere.pem": no such file or directory`}},
		{name: "encrypt both and bad age", files: map[string]string{"cbol_report.yaml": routeYAML + "encrypt: {age: [age1x], pgp: k.asc}\n", "/k.asc": ""},
			want: []string{`routes/cbol_report.yaml:5: encrypt.age[0]: "age1x" is not an age recipient (age1…)`, `routes/cbol_report.yaml:5: encrypt takes age recipients or one pgp key file, exactly one of them`}},
		{name: "postgres destination", files: map[string]string{"cbol_report.yaml": strings.Replace(routeYAML, `"s3://dest/cbol/$TODAYS_DATE/?region=eu-west-2"`, `"postgres://db/tre"`, 1)},
			want: []string{`routes/cbol_report.yaml:4: destination: "postgres://db/tre": postgres:// destinations are not supported yet`}},
		{name: "release inbox with another flag", files: map[string]string{"cbol_report.yaml": routeYAML + "release: true\n"},
			want: []string{`routes/cbol_report.yaml:3: a release inbox's flag is airlock-manifest.json, the manifest airlock release writes last`}},
		{name: "duplicate name", files: map[string]string{"cbol_report.yaml": routeYAML, "cbol_report.yml": routeYAML},
			want: []string{`routes/cbol_report.yml:1: duplicate route name "cbol_report" (also in routes/cbol_report.yaml:1)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			airlock := "node: test\nkeys:\n  dks: \"base64key://smGbjm71Nxd1Ig5FS0wj9SlbzAIrnolCz9bQQ6uAhl4=\"\n"
			if tt.noKeys {
				airlock = "node: test\n"
			}
			files := map[string]string{"airlock.yaml": airlock, "suppliers/.keep": ""}
			for name, content := range tt.files {
				if root, ok := strings.CutPrefix(name, "/"); ok {
					files[root] = content
				} else {
					files["routes/"+name] = content
				}
			}
			dir := writeTree(t, files)
			_, err := Load(filepath.Join(dir, "airlock.yaml"))
			diffLines(t, messages(t, err, dir), tt.want)
		})
	}
}

// TestRouteValues checks what the loader makes of a route it accepts.
func TestRouteValues(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{
		"airlock.yaml":      "node: test\nroutes_dir: egress\n",
		"suppliers/.keep":   "",
		"egress/each.yaml":  "name: each\nsource: out/each\ndestination: sent\ncompress: none\n",
		"egress/inbox.yaml": "name: inbox\nsource: in\ndestination: tre\nrelease: true\n",
	})
	cfg, err := Load(filepath.Join(dir, "airlock.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r, ok := cfg.Routes.Lookup("each")
	if !ok || r.Source != filepath.Join(dir, "out/each") || r.Destination != filepath.Join(dir, "sent") ||
		r.Compress != "" || r.Flag != "" || r.HTTPS() || r.File != filepath.Join(dir, "egress", "each.yaml") {
		t.Errorf("%+v", r)
	}
	if r, ok := cfg.Routes.Lookup("inbox"); !ok || !r.Release || r.Flag != ReleaseManifest {
		t.Errorf("release inbox: %+v; want release, flagged by its manifest", r)
	}
}

func TestRouteWatch(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ source, location, prefix string }{
		{"s3://src/dataegress/cbol-report/$TODAYS_DATE/?region=eu-west-2", "s3://src/dataegress/cbol-report?region=eu-west-2", "2026-12-07/"},
		{"s3://src/$TODAYS_DATE/out/?region=r", "s3://src?region=r", "2026-12-07/out/"},
		{"s3://src/day-$TODAYS_DATE/", "s3://src", "day-2026-12-07/"},
		{"/srv/out/$TODAYS_DATE/", "/srv/out", "2026-12-07/"},
		{"/srv/out/$TODAYS_DATE", "/srv/out", "2026-12-07/"},
		{"s3://src/all/?region=r", "s3://src/all/?region=r", ""},
	} {
		r := Route{Source: tt.source}
		if loc, prefix := r.Watch("2026-12-07"); loc != tt.location || prefix != tt.prefix {
			t.Errorf("Watch(%q) = %q, %q; want %q, %q", tt.source, loc, prefix, tt.location, tt.prefix)
		}
	}
}
