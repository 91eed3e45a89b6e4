package build

import (
	"fmt"
	"io"
	"time"
)

// progress prints numbered steps with the time since the build started.
type progress struct {
	w     io.Writer
	total int
	n     int
	start time.Time
}

func newProgress(w io.Writer, total int) *progress {
	if w == nil {
		w = io.Discard
	}
	return &progress{w: w, total: total, start: time.Now()}
}

func (p *progress) step(format string, args ...any) {
	p.n++
	fmt.Fprintf(p.w, "[%d/%d %5.1fs] %s\n", p.n, p.total, time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

func (p *progress) printf(format string, args ...any) {
	fmt.Fprintf(p.w, "           %s\n", fmt.Sprintf(format, args...))
}

func (p *progress) done(format string, args ...any) {
	fmt.Fprintf(p.w, "[done %5.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}
