package release

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// Progress renders events for a person: on a terminal, a bar per file in
// flight and a total line, redrawn in place; elsewhere (a pipe, a log),
// a line per file and a total line every so often, with no control
// characters.
type Progress struct {
	mu     sync.Mutex
	w      io.Writer
	tty    bool
	start  time.Time
	files  int   // in the release
	total  int64 // bytes in the release
	done   int   // files complete or skipped
	bytes  int64 // bytes of those files
	sent   int64 // bytes sent by this run, for the rate
	active []*bar
	drawn  int // lines of bars on the terminal now

	stop chan struct{}
	wg   sync.WaitGroup
}

type bar struct {
	key         string
	size, bytes int64
}

// NewProgress starts a renderer: redrawn every 200 ms on a terminal,
// a total line every `every` otherwise. Close it to draw the last state.
func NewProgress(w io.Writer, tty bool, every time.Duration) *Progress {
	p := &Progress{w: w, tty: tty, start: time.Now(), stop: make(chan struct{})}
	if tty {
		every = 200 * time.Millisecond
	}
	p.wg.Add(1)
	go p.tick(every)
	return p
}

func (p *Progress) tick(every time.Duration) {
	defer p.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			if p.tty {
				p.redraw()
			} else if p.files > 0 {
				fmt.Fprintln(p.w, p.totalLine())
			}
			p.mu.Unlock()
		}
	}
}

// Close stops the renderer and leaves the final total on the screen.
func (p *Progress) Close() {
	close(p.stop)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	if p.files > 0 {
		fmt.Fprintln(p.w, p.totalLine())
	}
}

func (p *Progress) Report(e Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Type {
	case EvRelease:
		p.files, p.total = e.Files, e.Size
	case EvStart:
		p.active = append(p.active, &bar{key: e.Key, size: e.Size})
	case EvProgress:
		if b := p.find(e.Key); b != nil {
			b.bytes = e.Bytes
		}
	case EvDone:
		p.finish(e)
		p.sent += e.Bytes - e.Resumed
		p.println(fmt.Sprintf("sent     %s (%s%s)", e.Key, human(e.Size), resumedNote(e.Resumed)))
	case EvSkip:
		p.finish(e)
		p.println(fmt.Sprintf("skipped  %s: %s", e.Key, e.Reason))
	case EvError:
		p.removeBar(e.Key)
		p.println(fmt.Sprintf("error    %s: %s", e.Key, e.Error))
	case EvPlan:
		p.println(fmt.Sprintf("would send %s (%s, sha256 %s)", e.Key, human(e.Size), e.SHA256))
	case EvManifest:
		p.println(fmt.Sprintf("manifest %s: %s", e.Key, cmpOr(e.Reason, "written")))
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func resumedNote(n int64) string {
	if n == 0 {
		return ""
	}
	return ", " + human(n) + " resumed"
}

func (p *Progress) find(key string) *bar {
	for _, b := range p.active {
		if b.key == key {
			return b
		}
	}
	return nil
}

func (p *Progress) removeBar(key string) {
	p.active = slices.DeleteFunc(p.active, func(b *bar) bool { return b.key == key })
}

func (p *Progress) finish(e Event) {
	p.removeBar(e.Key)
	p.done++
	p.bytes += e.Size
}

// println prints a line above the bars.
func (p *Progress) println(s string) {
	p.clear()
	fmt.Fprintln(p.w, s)
	if p.tty {
		p.redraw()
	}
}

// maxBars bounds the bars drawn at once; the total counts every file.
const maxBars = 8

func (p *Progress) redraw() {
	p.clear()
	var b strings.Builder
	n := 0
	for _, a := range p.active[:min(len(p.active), maxBars)] {
		fmt.Fprintf(&b, "%-32s %s %3d%% %s\n", tail(a.key, 32), meter(a.bytes, a.size, 20), pct(a.bytes, a.size), human(a.bytes))
		n++
	}
	b.WriteString(p.totalLine() + "\n")
	fmt.Fprint(p.w, b.String())
	p.drawn = n + 1
}

// clear erases the bars drawn last, moving the cursor back over them.
func (p *Progress) clear() {
	if !p.tty || p.drawn == 0 {
		return
	}
	fmt.Fprint(p.w, strings.Repeat("\x1b[1A\x1b[2K", p.drawn))
	p.drawn = 0
}

func (p *Progress) totalLine() string {
	inflight := int64(0)
	for _, a := range p.active {
		inflight += a.bytes
	}
	doneBytes := p.bytes + inflight
	elapsed := time.Since(p.start).Seconds()
	rate := float64(p.sent+inflight) / max(elapsed, 0.001)
	eta := "-"
	if rate > 0 && doneBytes < p.total {
		eta = (time.Duration(float64(p.total-doneBytes)/rate) * time.Second).Round(time.Second).String()
	}
	return fmt.Sprintf("total %s %3d%% %d/%d files  %s of %s  %s/s  ETA %s",
		meter(doneBytes, p.total, 20), pct(doneBytes, p.total), p.done, p.files,
		human(doneBytes), human(p.total), human(int64(rate)), eta)
}

func meter(n, of int64, width int) string {
	fill := width
	if of > 0 {
		fill = int(min(n, of) * int64(width) / of)
	}
	return "[" + strings.Repeat("=", fill) + strings.Repeat(" ", width-fill) + "]"
}

func pct(n, of int64) int {
	if of <= 0 {
		return 100
	}
	return int(min(n, of) * 100 / of)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n+1:]
}

// human is a byte count in IEC units.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
