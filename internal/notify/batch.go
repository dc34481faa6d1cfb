package notify

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The events a BatchOutcome reports.
const (
	EventBatchDelivered = "batch.delivered"
	EventBatchFailed    = "batch.failed"
)

// BatchOutcome is what happened to one batch of a route: every member
// delivered and the manifest sent, or a member settled undelivered.
type BatchOutcome struct {
	Event     string // EventBatchDelivered or EventBatchFailed
	Batch     string
	Route     string
	Recipient string // who receives the route's files, as configured
	Trigger   string // the flag object that started the batch
	Reruns    string // the batch an earlier version of the flag started, if any
	Files     int    // members
	Delivered int    // members delivered
	Bytes     int64  // the members' bytes, as read
	Manifest  string // where the manifest went (delivered only)
	Failures  []BatchFailure
	At        time.Time
}

// BatchFailure is a member that settled without being delivered.
type BatchFailure struct {
	TransferID string `json:"transfer_id"`
	Path       string `json:"path"`
	State      string `json:"state"` // failed, rejected or quarantined
	Error      string `json:"error"`
}

// BatchMessages returns the email about b to the route's recipients and
// the operators, as they are copied on every notification, each address
// once; none when there is nobody to tell.
func BatchMessages(b BatchOutcome, recipients, operators []string) []Message {
	to := slices.Clone(recipients)
	for _, op := range operators {
		if !slices.Contains(to, op) {
			to = append(to, op)
		}
	}
	if len(to) == 0 {
		return nil
	}
	word := strings.TrimPrefix(b.Event, "batch.")
	subject := oneLine(fmt.Sprintf("airlock: batch of %s %s (%d files)", b.Route, word, b.Files))
	return []Message{{To: to, Subject: subject, Body: batchBody(b)}}
}

func batchBody(b BatchOutcome) string {
	var s strings.Builder
	word := strings.TrimPrefix(b.Event, "batch.")
	fmt.Fprintf(&s, "Batch %s of route %s: %s.\n\n", oneLine(b.Batch), oneLine(b.Route), word)
	rows := [][2]string{
		{"route", b.Route},
		{"recipient", b.Recipient},
		{"batch", b.Batch},
		{"trigger", b.Trigger},
		{"files", strconv.Itoa(b.Files)},
		{"delivered", strconv.Itoa(b.Delivered)},
		{"size", sizeText(b.Bytes)},
	}
	if b.Reruns != "" {
		rows = append(rows, [2]string{"re-runs", b.Reruns})
	}
	if b.Manifest != "" {
		rows = append(rows, [2]string{"manifest", b.Manifest})
	}
	fields(&s, append(rows, [2]string{"at", timeText(b.At)}))
	if len(b.Failures) > 0 {
		fmt.Fprintf(&s, "Not delivered:\n")
		for _, f := range b.Failures {
			fmt.Fprintf(&s, "    %s  %s  %s: %s\n", oneLine(f.TransferID), oneLine(f.Path), oneLine(f.State), oneLine(f.Error))
		}
		fmt.Fprintf(&s, "\nThe batch's manifest is not sent until every file is delivered; an\n"+
			"operator can retry a failed file (airlock transfers retry ID).\n\n")
	}
	fmt.Fprintf(&s, "Details: airlock batches show %s\n", oneLine(b.Batch))
	return s.String()
}
