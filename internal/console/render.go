package console

import (
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/pipeline"
)

//go:embed templates/*.html static/*
var assets embed.FS

// view is what a page shows: Data is also the page's JSON twin.
type view struct {
	Title   string
	Data    any
	Session *session // nil before sign-in
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	// dict passes several values to a shared template.
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12] + "…"
		}
		return s
	},
}

// pages are the templates by name, each with the layout around it.
var pages = func() map[string]*template.Template {
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		out[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", n))
	}
	return out
}()

func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }

// render answers with the page tmpl, or with v.Data as JSON for the API.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, tmpl string, v view) {
	if isAPI(r) {
		writeJSON(w, status, v.Data)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pages[tmpl].Execute(w, v); err != nil {
		c.log.Error("render console page", "page", tmpl, "err", err)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away
}

// apiError is the JSON of a refusal or failure.
type apiError struct {
	Error string `json:"error"`
}

// fail answers with status and msg (a generic one when empty), logging
// err: its detail is for the log, not the page.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string, err error) {
	if err != nil {
		c.log.Error("console request failed", "path", r.URL.Path, "remote_ip", c.clientIP(r), "err", err)
	}
	if msg == "" {
		msg = "Something went wrong; the details are in airlock's log."
	}
	if isAPI(r) {
		writeJSON(w, status, apiError{msg})
		return
	}
	c.render(w, r, status, "error", view{Title: http.StatusText(status), Data: msg})
}

// failWith answers with the status and message err calls for: the rules
// an action broke are the person's to read; anything else is logged.
func (c *Console) failWith(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		c.fail(w, r, http.StatusNotFound, "No such transfer or batch.", nil)
	case errors.Is(err, ledger.ErrOwnApproval):
		c.fail(w, r, http.StatusForbidden, "You wrote this file: four eyes means someone else must approve it.", nil)
	case errors.Is(err, ledger.ErrOwnRequest):
		c.fail(w, r, http.StatusForbidden, "You asked for this release: four eyes means someone else must approve it.", nil)
	case errors.Is(err, ledger.ErrApprovedBefore):
		c.fail(w, r, http.StatusConflict, "You have approved this transfer already: it needs someone else's approval.", nil)
	case errors.Is(err, pipeline.ErrNotAllowed), errors.Is(err, ledger.ErrStateConflict),
		errors.Is(err, ledger.ErrReleasePending), errors.Is(err, ledger.ErrNoRelease):
		c.fail(w, r, http.StatusConflict, "Not allowed: "+err.Error(), nil)
	default:
		c.fail(w, r, http.StatusInternalServerError, "", err)
	}
}

// unauthenticated sends a browser to sign in, and refuses an API call.
func (c *Console) unauthenticated(w http.ResponseWriter, r *http.Request) {
	if isAPI(r) || r.Method != http.MethodGet {
		c.fail(w, r, http.StatusUnauthorized, "Sign in first.", nil)
		return
	}
	http.Redirect(w, r, "/auth/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
}

func serveStatic(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "max-age=3600")
	http.ServeFileFS(w, r, assets, "static/"+r.PathValue("file"))
}
