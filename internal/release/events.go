package release

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Event types, one JSON object per line with --json.
const (
	EvRelease  = "release"  // first: the run's id, file count and bytes
	EvPlan     = "plan"     // --dry-run: a file that would be sent
	EvStart    = "start"    // a file's upload begins
	EvProgress = "progress" // bytes of a file sent so far
	EvDone     = "done"     // a file is stored and checked
	EvSkip     = "skip"     // a file is already complete at its key
	EvError    = "error"    // a file (or the run) failed
	EvManifest = "manifest" // the manifest is written (or skipped: Reason)
)

// Event is one thing a release reports, to a terminal, a log or another
// program.
type Event struct {
	Type      string    `json:"type"`
	Time      time.Time `json:"time"`
	Release   string    `json:"release,omitempty"`
	Key       string    `json:"key,omitempty"` // the object key, prefix included
	Size      int64     `json:"size"`
	Bytes     int64     `json:"bytes,omitempty"`   // sent so far (progress, done)
	Resumed   int64     `json:"resumed,omitempty"` // bytes kept from an earlier run's upload
	SHA256    string    `json:"sha256,omitempty"`
	CRC64NVME string    `json:"crc64nvme,omitempty"` // the server's full-object checksum, once checked
	Files     int       `json:"files,omitempty"`     // release: how many
	DryRun    bool      `json:"dry_run,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Error     string    `json:"error,omitempty"`
}

// Reporter receives a release's events; calls may come from several
// goroutines at once.
type Reporter interface {
	Report(Event)
}

// JSONReporter writes one event per line.
type JSONReporter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func NewJSONReporter(w io.Writer) *JSONReporter { return &JSONReporter{enc: json.NewEncoder(w)} }

func (r *JSONReporter) Report(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = r.enc.Encode(e) // a closed pipe must not stop the release
}
