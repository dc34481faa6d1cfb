package console

import (
	"net/http"
	"net/url"
	"time"

	"github.com/airlock-gw/airlock/internal/config"
)

// Tree is the configuration in force, for the read-only pages; a nil
// field shows nothing of its kind.
type Tree struct {
	Suppliers func() *config.Suppliers
	Datasets  func() *config.Datasets
	Routes    *config.Routes
}

// keyNotice is how soon an expiry counts as soon, as `airlock keys list`
// has it.
const keyNotice = 30 * 24 * time.Hour

// treeView is what the configuration page shows: no secrets, and no
// credentials or parameters of a URL.
type treeView struct {
	Suppliers []supplierView `json:"suppliers"`
	Datasets  []datasetView  `json:"datasets"`
	Routes    []routeView    `json:"routes"`
}

type supplierView struct {
	Name        string    `json:"name"`
	Email       string    `json:"email"`
	AllowedIPs  []string  `json:"allowed_ips"`
	Destination string    `json:"destination"`
	Egress      string    `json:"egress,omitempty"`
	Keys        []keyView `json:"keys"`
}

type keyView struct {
	Type        string `json:"type"`
	Fingerprint string `json:"fingerprint"`
	Comment     string `json:"comment"`
	ExpiryDate  string `json:"expiry_date,omitempty"` // last day accepted
	Status      string `json:"status"`                // ok, expiring or expired
}

type datasetView struct {
	Name      string   `json:"name"`
	Kind      string   `json:"kind"` // push or pull
	Paperwork string   `json:"paperwork"`
	Users     []string `json:"users"`
	Target    string   `json:"target"`
	Approval  int      `json:"approval"`
}

type routeView struct {
	Name        string `json:"name"`
	Source      string `json:"source"`
	Flag        string `json:"flag,omitempty"`
	Destination string `json:"destination"`
	Recipient   string `json:"recipient,omitempty"`
	Approval    int    `json:"approval"`
}

func (c *Console) tree(*http.Request) (view, error) {
	v := treeView{Suppliers: []supplierView{}, Datasets: []datasetView{}, Routes: []routeView{}}
	now := c.now()
	if c.conf.Suppliers != nil {
		for _, s := range c.conf.Suppliers().All() {
			sv := supplierView{Name: s.Name, Email: s.Email, AllowedIPs: []string{}, Destination: bare(s.Destination.URL), Keys: []keyView{}}
			for _, p := range s.AllowedIPs {
				sv.AllowedIPs = append(sv.AllowedIPs, p.String())
			}
			if s.Egress != nil {
				sv.Egress = bare(s.Egress.URL)
			}
			for _, k := range s.SSHKeys {
				sv.Keys = append(sv.Keys, keyView{Type: k.Type, Fingerprint: k.Fingerprint, Comment: k.Comment,
					ExpiryDate: k.ExpiryDate(), Status: string(k.StatusAt(now, keyNotice))})
			}
			v.Suppliers = append(v.Suppliers, sv)
		}
	}
	if c.conf.Datasets != nil {
		for _, d := range c.conf.Datasets().All() {
			dv := datasetView{Name: d.Name, Kind: "push", Paperwork: d.Paperwork, Users: d.Users, Target: bare(d.Bucket.URL), Approval: d.Approval}
			if !d.Push() {
				dv.Kind, dv.Target = "pull", bare(d.PullBucket)
			}
			v.Datasets = append(v.Datasets, dv)
		}
	}
	if c.conf.Routes != nil {
		for _, r := range c.conf.Routes.All() {
			v.Routes = append(v.Routes, routeView{Name: r.Name, Source: bare(r.Source), Flag: r.Flag,
				Destination: bare(r.Destination), Recipient: r.Recipient, Approval: r.Approval})
		}
	}
	return view{Title: "Configuration", Data: v}, nil
}

// bare is a location without what its URL may carry besides where it is:
// a password (postgres://user:pw@…) or parameters (…?access_key=…).
func bare(loc string) string {
	u, err := url.Parse(loc)
	if err != nil || u.Scheme == "" {
		if err != nil {
			return "(not shown)"
		}
		return loc // a path
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment = nil, "", false, ""
	return u.String()
}
