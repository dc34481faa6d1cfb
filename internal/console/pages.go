package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
)

// pageSize is how many transfers a page of search results shows.
const pageSize = 50

func (c *Console) routes() {
	c.mux.HandleFunc("GET /static/{file}", serveStatic)
	c.mux.HandleFunc("GET /auth/login", c.signIn)
	c.mux.HandleFunc("GET /auth/callback", c.callback)
	c.mux.HandleFunc("POST /auth/logout", c.withSession(func(w http.ResponseWriter, r *http.Request, s *session) {
		c.signOut(w, r, s)
	}))
	c.page("/{$}", "/api/overview", "overview", c.overview)
	c.page("/transfers", "/api/transfers", "transfers", c.transfers)
	c.page("/transfers/{id}", "/api/transfers/{id}", "transfer", c.transfer)
	c.page("/approvals", "/api/approvals", "approvals", c.approvals)
	c.page("/quarantine", "/api/quarantine", "quarantine", c.quarantine)
	c.page("/audit", "/api/audit", "audit", c.auditEvents)
	c.page("/config", "/api/config", "config", c.tree)
	c.page("/batches", "/api/batches", "batches", c.batches)
	c.page("/batches/{id}", "/api/batches/{id}", "batch", c.batch)
	c.mux.HandleFunc("GET /api/me", c.withRole("", func(w http.ResponseWriter, r *http.Request, s *session) {
		writeJSON(w, http.StatusOK, me{Subject: s.Subject, Email: s.Email, Person: s.Person, Roles: s.Roles, CSRF: s.CSRF})
	}))
	c.actions()
}

// me is who the API caller is, with the token its POSTs must carry.
type me struct {
	Subject string   `json:"subject"`
	Email   string   `json:"email,omitempty"`
	Person  string   `json:"person"`
	Roles   []string `json:"roles"`
	CSRF    string   `json:"csrf_token"`
}

// withSession runs h for a request with a live session; a state-changing
// one must also carry the session's CSRF token.
func (c *Console) withSession(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := c.session(w, r)
		if err != nil {
			c.unauthenticated(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if !checkCSRF(r, s) {
				c.log.Warn("console request without its CSRF token refused", "path", r.URL.Path, "remote_ip", c.clientIP(r))
				c.fail(w, r, http.StatusForbidden, "This request lacks its CSRF token: reload the page and try again.", nil)
				return
			}
		}
		h(w, r, s)
	}
}

// withRole is withSession for people holding role ("": any role).
func (c *Console) withRole(role string, h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return c.withSession(func(w http.ResponseWriter, r *http.Request, s *session) {
		if len(s.Roles) == 0 || role != "" && !s.Has(role) {
			need := "a console role"
			if role != "" {
				need = "the " + role + " role"
			}
			c.fail(w, r, http.StatusForbidden, fmt.Sprintf("This needs %s; you have %s.", need, rolesText(s.Roles)), nil)
			return
		}
		h(w, r, s)
	})
}

func rolesText(roles []string) string {
	if len(roles) == 0 {
		return "none"
	}
	return strings.Join(roles, ", ")
}

// page serves a read-only page at path and its JSON at apiPath.
func (c *Console) page(path, apiPath, tmpl string, load func(*http.Request) (view, error)) {
	h := c.withRole("", func(w http.ResponseWriter, r *http.Request, s *session) {
		v, err := load(r)
		if err != nil {
			c.failWith(w, r, err)
			return
		}
		v.Session = s
		c.render(w, r, http.StatusOK, tmpl, v)
	})
	c.mux.HandleFunc("GET "+path, h)
	c.mux.HandleFunc("GET "+apiPath, h)
}

// overview is what happened today and what waits for someone.
type overview struct {
	Since       time.Time         `json:"since"`
	Counts      []ledger.Count    `json:"counts"`
	NeedsAction []ledger.Transfer `json:"needs_action"`
	Health      []health          `json:"health"`
	// KeysDue are the supplier keys expired or expiring within 30 days.
	KeysDue []dueKey `json:"keys_due"`
}

// health is whether a dependency answered; why not is in the log.
type health struct {
	Name string `json:"name"`
	Up   bool   `json:"up"`
}

type dueKey struct {
	Supplier string `json:"supplier"`
	keyView
}

func (c *Console) overview(r *http.Request) (view, error) {
	since := c.now().UTC().Truncate(24 * time.Hour)
	counts, err := c.led.Counts(r.Context(), since)
	if err != nil {
		return view{}, err
	}
	waiting, err := c.led.List(r.Context(), ledger.Filter{Limit: pageSize,
		States: []ledger.State{ledger.Failed, ledger.Quarantined, ledger.AwaitingApproval}})
	if err != nil {
		return view{}, err
	}
	// A quarantined file deleted for good needs nothing more.
	waiting = slices.DeleteFunc(waiting, func(t ledger.Transfer) bool {
		return t.State == ledger.Quarantined && t.Destination == ""
	})
	return view{Title: "Overview", Data: overview{Since: since, Counts: orEmpty(counts), NeedsAction: orEmpty(waiting),
		Health: c.ping(r.Context()), KeysDue: c.keysDue()}}, nil
}

// pingTimeout bounds each health check, so that one dependency down does
// not hold the page.
const pingTimeout = 2 * time.Second

// ping checks the dependencies at once.
func (c *Console) ping(ctx context.Context) []health {
	hs := make([]health, len(c.health))
	var wg sync.WaitGroup
	for i, ch := range c.health {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, pingTimeout)
			defer cancel()
			err := ch.Ping(ctx)
			if err != nil {
				c.log.Warn("console health check failed", "check", ch.Name, "err", err)
			}
			hs[i] = health{Name: ch.Name, Up: err == nil}
		})
	}
	wg.Wait()
	return hs
}

// keysDue lists the supplier keys expired or expiring soon.
func (c *Console) keysDue() []dueKey {
	due := []dueKey{}
	if c.conf.Suppliers == nil {
		return due
	}
	now := c.now()
	for _, s := range c.conf.Suppliers().All() {
		for _, k := range s.SSHKeys {
			if st := k.StatusAt(now, keyNotice); st != config.KeyOK {
				due = append(due, dueKey{Supplier: s.Name, keyView: keyView{Type: k.Type, Fingerprint: k.Fingerprint,
					Comment: k.Comment, ExpiryDate: k.ExpiryDate(), Status: string(st)}})
			}
		}
	}
	return due
}

// search is a page of transfers found, with the query that found them.
type search struct {
	Query     url.Values        `json:"query"`
	Transfers []ledger.Transfer `json:"transfers"`
	// Next is the query of the next page; "" on the last.
	Next string `json:"next,omitempty"`
	// Problem says what of the query was not understood.
	Problem string `json:"problem,omitempty"`
}

func (c *Console) transfers(r *http.Request) (view, error) {
	q := r.URL.Query()
	res := search{Query: q}
	f, err := parseSearch(q)
	if err != nil {
		res.Problem = err.Error()
		return view{Title: "Transfers", Data: res}, nil
	}
	f.Limit = pageSize + 1
	trs, err := c.led.List(r.Context(), f)
	if err != nil {
		return view{}, err
	}
	if len(trs) > pageSize {
		trs = trs[:pageSize]
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		last := trs[len(trs)-1]
		next.Set("after", last.CreatedAt.Format(time.RFC3339Nano)+"_"+last.ID)
		res.Next = next.Encode()
	}
	res.Transfers = orEmpty(trs)
	return view{Title: "Transfers", Data: res}, nil
}

// parseSearch reads the transfers page's query: supplier, route, state,
// direction, from and to (dates, inclusive), name, sha256, after.
func parseSearch(q url.Values) (ledger.Filter, error) {
	f := ledger.Filter{Supplier: q.Get("supplier"), Route: q.Get("route")}
	f.NameContains, f.SHA256 = q.Get("name"), strings.ToLower(q.Get("sha256"))
	if s := q.Get("state"); s != "" {
		st, err := ledger.ParseState(s)
		if err != nil {
			return f, err
		}
		f.States = []ledger.State{st}
	}
	if d := q.Get("direction"); d != "" {
		dir, err := ledger.ParseDirection(d)
		if err != nil {
			return f, err
		}
		f.Direction = dir
	}
	for _, d := range []struct {
		key   string
		into  *time.Time
		delta time.Duration
	}{{"from", &f.CreatedFrom, 0}, {"to", &f.CreatedBefore, 24 * time.Hour}} {
		if s := q.Get(d.key); s != "" {
			day, err := time.Parse(time.DateOnly, s)
			if err != nil {
				return f, fmt.Errorf("%s: %q is not a date (yyyy-mm-dd)", d.key, s)
			}
			*d.into = day.Add(d.delta)
		}
	}
	if s := q.Get("after"); s != "" {
		at, id, ok := strings.Cut(s, "_")
		t, err := time.Parse(time.RFC3339Nano, at)
		if !ok || err != nil {
			return f, fmt.Errorf("after: %q is not a page of these results", s)
		}
		f.After = &ledger.Cursor{CreatedAt: t, ID: id}
	}
	return f, nil
}

// detail is one transfer, its audit trail, and who approved it.
type detail struct {
	ledger.Transfer
	Events    []ledger.Event `json:"events"`
	Approvers []string       `json:"approvers"`
}

func (c *Console) transfer(r *http.Request) (view, error) {
	t, err := c.led.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return view{}, err
	}
	evs, err := c.led.Events(r.Context(), t.ID, 0)
	if err != nil {
		return view{}, err
	}
	who, err := c.led.Approvers(r.Context(), t.ID)
	if err != nil {
		return view{}, err
	}
	return view{Title: "Transfer " + t.ID, Data: detail{Transfer: t, Events: orEmpty(evs), Approvers: orEmpty(who)}}, nil
}

// held is a transfer awaiting approval, or a quarantined one whose
// release is requested (Release), with who approved it so far.
type held struct {
	ledger.Transfer
	Approvers []string               `json:"approvers"`
	Release   *ledger.ReleaseRequest `json:"release,omitempty"`
}

func (c *Console) approvals(r *http.Request) (view, error) {
	trs, err := c.led.List(r.Context(), ledger.Filter{States: []ledger.State{ledger.AwaitingApproval}, Limit: 500})
	if err != nil {
		return view{}, err
	}
	ids := make([]string, len(trs))
	for i, t := range trs {
		ids[i] = t.ID
	}
	who, err := c.led.ApproversOf(r.Context(), ids)
	if err != nil {
		return view{}, err
	}
	hs := make([]held, len(trs))
	for i, t := range trs {
		hs[i] = held{Transfer: t, Approvers: orEmpty(who[t.ID])}
	}
	reqs, err := c.led.ReleaseRequests(r.Context())
	if err != nil {
		return view{}, err
	}
	for _, req := range reqs {
		t, err := c.led.Get(r.Context(), req.TransferID)
		if err != nil {
			return view{}, err
		}
		req.Approvers = orEmpty(req.Approvers)
		hs = append(hs, held{Transfer: t, Approvers: req.Approvers, Release: &req})
	}
	return view{Title: "Approvals", Data: hs}, nil
}

// auditSearch is a page of audit events found, newest first.
type auditSearch struct {
	Query  url.Values     `json:"query"`
	Events []ledger.Event `json:"events"`
	// Next is the query of the next (older) page; "" on the last.
	Next    string `json:"next,omitempty"`
	Problem string `json:"problem,omitempty"`
}

// auditEvents searches the audit log by kind (a prefix), actor and
// transfer, pageSize events a page.
func (c *Console) auditEvents(r *http.Request) (view, error) {
	q := r.URL.Query()
	res := auditSearch{Query: q}
	f := ledger.EventFilter{Kind: q.Get("kind"), Actor: q.Get("actor"), TransferID: q.Get("transfer"), Limit: pageSize + 1}
	if s := q.Get("before"); s != "" {
		seq, err := strconv.ParseInt(s, 10, 64)
		if err != nil || seq <= 0 {
			res.Problem = fmt.Sprintf("before: %q is not an event seq", s)
			return view{Title: "Audit", Data: res}, nil
		}
		f.Before = seq
	}
	evs, err := c.led.SearchEvents(r.Context(), f)
	if err != nil {
		return view{}, err
	}
	if len(evs) > pageSize {
		evs = evs[:pageSize]
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("before", strconv.FormatInt(evs[len(evs)-1].Seq, 10))
		res.Next = next.Encode()
	}
	res.Events = orEmpty(evs)
	return view{Title: "Audit", Data: res}, nil
}

// quarantinedFile is a file held in quarantine, with the release
// requested of it, if any.
type quarantinedFile struct {
	ledger.Transfer
	Release *ledger.ReleaseRequest `json:"release,omitempty"`
}

// quarantine lists the quarantined files still held, newest first.
func (c *Console) quarantine(r *http.Request) (view, error) {
	trs, err := c.led.List(r.Context(), ledger.Filter{States: []ledger.State{ledger.Quarantined}, Limit: 500})
	if err != nil {
		return view{}, err
	}
	reqs, err := c.led.ReleaseRequests(r.Context())
	if err != nil {
		return view{}, err
	}
	requested := make(map[string]*ledger.ReleaseRequest, len(reqs))
	for i := range reqs {
		requested[reqs[i].TransferID] = &reqs[i]
	}
	trs = slices.DeleteFunc(trs, func(t ledger.Transfer) bool { return t.Destination == "" })
	files := make([]quarantinedFile, len(trs))
	for i, t := range trs {
		files[i] = quarantinedFile{Transfer: t, Release: requested[t.ID]}
	}
	return view{Title: "Quarantine", Data: files}, nil
}

func (c *Console) batches(r *http.Request) (view, error) {
	bs, err := c.led.Batches(r.Context(), ledger.BatchFilter{Route: r.URL.Query().Get("route"), Limit: 200})
	if err != nil {
		return view{}, err
	}
	return view{Title: "Batches", Data: orEmpty(bs)}, nil
}

// batchView is a batch with its members: its manifest.
type batchView struct {
	ledger.Batch
	Members []ledger.Transfer `json:"members"`
}

func (c *Console) batch(r *http.Request) (view, error) {
	b, err := c.led.GetBatch(r.Context(), r.PathValue("id"))
	if err != nil {
		return view{}, err
	}
	members, err := c.led.List(r.Context(), ledger.Filter{Batch: b.ID})
	if err != nil {
		return view{}, err
	}
	return view{Title: "Batch " + b.ID, Data: batchView{Batch: b, Members: orEmpty(members)}}, nil
}

// orEmpty makes an empty list [] in JSON rather than null.
func orEmpty[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}
