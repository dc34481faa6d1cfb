package notify

import (
	"mime"
	"net/mail"
	"reflect"
	"strings"
	"testing"

	"github.com/airlock-gw/airlock/internal/config"
)

// TestOutcomeMessages sends the messages for each outcome through a real
// Mailer and SMTP server: the supplier's tells what happened and what to
// do without internal details; the operators' has them.
func TestOutcomeMessages(t *testing.T) {
	t.Parallel()
	quarantined := delivered
	quarantined.Event = EventQuarantined
	quarantined.ScanResult = "infected: Eicar-Test-Signature (builtin)"
	quarantined.Destination = "s3://airlock-quarantine/acme_health/tr_01J9ZK"
	failed := delivered
	failed.Event = EventFailed
	failed.Error = "copy to s3://mojap-land/acme: AccessDenied: not authorized to perform kms:GenerateDataKey"

	common := []string{"/2026/data.csv", "1234567 bytes (1.2 MB)", strings.Repeat("ab", 32), "tr_01J9ZK", "2026-03-01 12:00:05 UTC"}
	tests := []struct {
		name       string
		o          Outcome
		subject    string
		supplier   []string // in the supplier's body, besides common
		operators  []string // in the operators' body, besides common
		hiddenFrom []string // never in the supplier's body
	}{
		{
			name:       "delivered",
			o:          delivered,
			subject:    "airlock: data.csv delivered (acme_health)",
			supplier:   []string{"delivered it", "outcome:     delivered", "scan:        clean\n", "nothing more to do"},
			operators:  []string{"clean (clamd ClamAV 1.4.6)", "destination: s3://mojap-land/acme/2026/data.csv", "airlock transfers show tr_01J9ZK"},
			hiddenFrom: []string{"mojap-land", "clamd", "ClamAV"},
		},
		{
			name:       "quarantined",
			o:          quarantined,
			subject:    "airlock: data.csv quarantined (acme_health)",
			supplier:   []string{"quarantine", "scan:        infected: Eicar-Test-Signature\n", "The operators have been told; if you contact them, quote the\ntransfer id tr_01J9ZK."},
			operators:  []string{"infected: Eicar-Test-Signature (builtin)", "destination: s3://airlock-quarantine/acme_health/tr_01J9ZK"},
			hiddenFrom: []string{"airlock-quarantine", "builtin"},
		},
		{
			name:       "failed",
			o:          failed,
			subject:    "airlock: data.csv failed (acme_health)",
			supplier:   []string{"could not deliver it", "Please contact the airlock operators, quoting the transfer id tr_01J9ZK"},
			operators:  []string{"error:       " + failed.Error, "destination: s3://mojap-land/acme/2026/data.csv"},
			hiddenFrom: []string{"mojap-land", "AccessDenied", "kms", "error"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, serverOpts{tls: "none"})
			m := newTestMailer(t, srv, config.SMTP{TLS: "none"}, nil)
			for _, msg := range OutcomeMessages(tt.o, "Acme Data <data@acme.example>", []string{"ops@example.org", "oncall@example.org"}) {
				if err := m.Send(t.Context(), msg); err != nil {
					t.Fatal(err)
				}
			}
			got := srv.messages()
			if len(got) != 2 {
				t.Fatalf("server got %d messages, want 2", len(got))
			}
			for i, want := range [][]string{{"data@acme.example"}, {"ops@example.org", "oncall@example.org"}} {
				if !reflect.DeepEqual(got[i].To, want) {
					t.Errorf("message %d went to %q, want %q", i, got[i].To, want)
				}
				if s := subject(t, got[i].Data); s != tt.subject {
					t.Errorf("message %d: subject %q, want %q", i, s, tt.subject)
				}
			}
			toSupplier, toOperators := decodedBody(t, got[0].Data), decodedBody(t, got[1].Data)
			for _, s := range append(common, tt.supplier...) {
				if !strings.Contains(toSupplier, crlf(s)) {
					t.Errorf("the supplier's message lacks %q:\n%s", s, toSupplier)
				}
			}
			for _, s := range append(tt.hiddenFrom, tt.o.Destination) {
				if strings.Contains(toSupplier, s) {
					t.Errorf("the supplier's message shows %q:\n%s", s, toSupplier)
				}
			}
			if tt.o.Error != "" && strings.Contains(toSupplier, tt.o.Error) {
				t.Errorf("the supplier's message shows the error:\n%s", toSupplier)
			}
			for _, s := range append(append(common, "supplier:    acme_health"), tt.operators...) {
				if !strings.Contains(toOperators, crlf(s)) {
					t.Errorf("the operators' message lacks %q:\n%s", s, toOperators)
				}
			}
		})
	}
}

// TestOutcomeMessagesRecipients: no address, no message.
func TestOutcomeMessagesRecipients(t *testing.T) {
	t.Parallel()
	ops := []string{"ops@example.org"}
	tests := []struct {
		name     string
		supplier string
		ops      []string
		want     [][]string
	}{
		{"both", "data@acme.example", ops, [][]string{{"data@acme.example"}, ops}},
		{"no supplier email", "", ops, [][]string{ops}},
		{"no operators", "data@acme.example", nil, [][]string{{"data@acme.example"}}},
		{"nobody", "", []string{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got [][]string
			for _, m := range OutcomeMessages(delivered, tt.supplier, tt.ops) {
				got = append(got, m.To)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("recipients %q, want %q", got, tt.want)
			}
		})
	}
}

// TestOutcomeMessagesOneLine: a value with line breaks cannot break the
// subject (which the Mailer would refuse) or add lines to a body.
func TestOutcomeMessagesOneLine(t *testing.T) {
	t.Parallel()
	o := delivered
	o.Path = "/2026/data\r\nBcc: evil@example.net.csv"
	o.Event = EventFailed
	o.Error = "refused\n\nPlease send your password to evil@example.net"
	for _, m := range OutcomeMessages(o, "data@acme.example", []string{"ops@example.org"}) {
		if strings.ContainsAny(m.Subject, "\r\n") {
			t.Errorf("subject %q has a line break", m.Subject)
		}
		for _, line := range strings.Split(m.Body, "\n") {
			if strings.HasPrefix(line, "Bcc:") || strings.HasPrefix(line, "Please send") {
				t.Errorf("a value made its own line %q in:\n%s", line, m.Body)
			}
		}
	}
}

func TestSizeText(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{
		0:             "0 bytes",
		1:             "1 byte",
		999:           "999 bytes",
		1000:          "1000 bytes (1.0 KB)",
		999_949:       "999949 bytes (999.9 KB)",
		999_950:       "999950 bytes (1.0 MB)",
		5_000_000_000: "5000000000 bytes (5.0 GB)",
	} {
		if got := sizeText(n); got != want {
			t.Errorf("sizeText(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestScanVerdict(t *testing.T) {
	t.Parallel()
	for result, want := range map[string]string{
		"clean (clamd ClamAV 1.4.6)":                                                                              "clean",
		"infected: Eicar-Test-Signature (builtin)":                                                                "infected: Eicar-Test-Signature",
		"infected: Eicar-Test-Signature (builtin); released without a rescan":                                     "infected: Eicar-Test-Signature; released without a rescan",
		"checksum-mismatch: 3 bytes with sha256 aa, uploaded 4 bytes with sha256 bb (clean (clamd ClamAV 1.4.6))": "checksum-mismatch: 3 bytes with sha256 aa, uploaded 4 bytes with sha256 bb",
		"too-large (clamd ClamAV 1.4.6":                                                                           "too-large",
		"clean":                                                                                                   "clean",
		"(clamd)":                                                                                                 "not available",
		"":                                                                                                        "not available",
	} {
		if got := scanVerdict(result); got != want {
			t.Errorf("scanVerdict(%q) = %q, want %q", result, got, want)
		}
	}
}

// subject returns the decoded Subject of a message as sent.
func subject(t *testing.T, data string) string {
	t.Helper()
	p, err := mail.ReadMessage(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	s, err := new(mime.WordDecoder).DecodeHeader(p.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// crlf turns s into the CRLF lines a decoded message has.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
