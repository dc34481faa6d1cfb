package notify

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"
)

// The events an Outcome reports.
const (
	EventDelivered   = "transfer.delivered"
	EventQuarantined = "transfer.quarantined"
	EventFailed      = "transfer.failed"
)

// Outcome is what happened to one transfer, as told to people and systems.
type Outcome struct {
	Event      string // EventDelivered, EventQuarantined or EventFailed
	TransferID string
	Supplier   string
	Path       string // as the supplier uploaded it, e.g. "/2026/data.csv"
	Size       int64
	SHA256     string // lowercase hex
	ScanResult string // e.g. "clean (clamd ClamAV 1.4.6)", "infected: Eicar-Test-Signature (builtin)"
	// Destination is where the file went (delivered) or the quarantine
	// location. It is for the operators and the webhook only: suppliers
	// are not told where things are kept.
	Destination string
	Error       string    // for failed: the last error; operators and webhook only
	At          time.Time // when the outcome was reached
}

// OutcomeMessages returns the emails about o: one to the supplier at
// supplierEmail (none when it is "") and one to the operators (none when
// there are none). The supplier's tells what happened and what to do next
// without internal details: no destination, no error text, no scanner
// engine. The operators' has everything.
func OutcomeMessages(o Outcome, supplierEmail string, operators []string) []Message {
	var msgs []Message
	subject := oneLine(fmt.Sprintf("airlock: %s %s (%s)", path.Base(o.Path), outcomeWord(o.Event), o.Supplier))
	if supplierEmail != "" {
		msgs = append(msgs, Message{To: []string{supplierEmail}, Subject: subject, Body: supplierBody(o)})
	}
	if len(operators) > 0 {
		msgs = append(msgs, Message{To: slices.Clone(operators), Subject: subject, Body: operatorBody(o)})
	}
	return msgs
}

// outcomeWord is the event in one word, for subjects and summaries.
func outcomeWord(event string) string {
	return strings.TrimPrefix(event, "transfer.")
}

func supplierBody(o Outcome) string {
	var b strings.Builder
	name := oneLine(path.Base(o.Path))
	fmt.Fprintf(&b, "Hello,\n\n")
	switch o.Event {
	case EventDelivered:
		fmt.Fprintf(&b, "airlock received your file %s and delivered it.\n\n", name)
	case EventQuarantined:
		fmt.Fprintf(&b, "airlock received your file %s but did not deliver it: it is held\nin quarantine.\n\n", name)
	default:
		fmt.Fprintf(&b, "airlock received your file %s but could not deliver it.\n\n", name)
	}
	fields(&b, [][2]string{
		{"file", o.Path},
		{"size", sizeText(o.Size)},
		{"sha256", o.SHA256},
		{"transfer id", o.TransferID},
		{"outcome", outcomeWord(o.Event)},
		{"scan", scanVerdict(o.ScanResult)},
		{"at", timeText(o.At)},
	})
	id := oneLine(o.TransferID)
	switch o.Event {
	case EventDelivered:
		fmt.Fprintf(&b, "There is nothing more to do. The sha256 above lets you check that\nthe file delivered is the one you sent.\n\n")
	case EventQuarantined:
		fmt.Fprintf(&b, "The file will not be delivered unless the operators release it.\n")
		fmt.Fprintf(&b, "The operators have been told; if you contact them, quote the\ntransfer id %s.\n\n", id)
	default:
		fmt.Fprintf(&b, "Please contact the airlock operators, quoting the transfer id %s;\nthey can tell you whether to send the file again.\n\n", id)
	}
	fmt.Fprintf(&b, "This is an automatic message from airlock.\n")
	return b.String()
}

func operatorBody(o Outcome) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Transfer %s from %s: %s.\n\n", oneLine(o.TransferID), oneLine(o.Supplier), oneLine(outcomeWord(o.Event)))
	rows := [][2]string{
		{"supplier", o.Supplier},
		{"file", o.Path},
		{"size", sizeText(o.Size)},
		{"sha256", o.SHA256},
		{"transfer id", o.TransferID},
		{"outcome", outcomeWord(o.Event)},
		{"scan", o.ScanResult},
		{"destination", o.Destination},
	}
	if o.Error != "" {
		rows = append(rows, [2]string{"error", o.Error})
	}
	fields(&b, append(rows, [2]string{"at", timeText(o.At)}))
	fmt.Fprintf(&b, "Details: airlock transfers show %s\n", oneLine(o.TransferID))
	return b.String()
}

// fields writes an indented, aligned list of label: value lines.
func fields(b *strings.Builder, rows [][2]string) {
	for _, r := range rows {
		fmt.Fprintf(b, "    %-12s %s\n", r[0]+":", oneLine(r[1]))
	}
	b.WriteString("\n")
}

// scanVerdict drops every parenthesised part of a scan result, where the
// scanner engine and version go: suppliers need the verdict, not which
// scanner runs here.
func scanVerdict(result string) string {
	var out []byte
	depth := 0
	for i := 0; i < len(result); i++ {
		switch c := result[i]; {
		case c == '(':
			if depth == 0 {
				out = bytes.TrimRight(out, " ")
			}
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth == 0:
			out = append(out, c)
		}
	}
	if v := strings.TrimSpace(string(out)); v != "" {
		return v
	}
	return "not available"
}

// sizeText gives the exact byte count, and a rounded SI size when large.
func sizeText(n int64) string {
	if n == 1 {
		return "1 byte"
	}
	s := fmt.Sprintf("%d bytes", n)
	units := []string{"KB", "MB", "GB", "TB", "PB", "EB"}
	v, i := float64(n), -1
	for v >= 999.95 && i < len(units)-1 {
		v /= 1000
		i++
	}
	if i < 0 {
		return s
	}
	return fmt.Sprintf("%s (%.1f %s)", s, v, units[i])
}

func timeText(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05 MST")
}

// oneLine replaces control characters, so that no value (a file name, an
// error) can break a subject, which the Mailer would refuse, or forge
// lines in a body.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}
