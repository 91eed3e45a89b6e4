package flash

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progressInterval is the minimum time between two progress lines, so the
// output changes at most four times a second.
const progressInterval = 250 * time.Millisecond

// progress prints how far a write or verify pass has come. On a terminal each
// line overwrites the previous one after a carriage return. Elsewhere (a log
// file, a pipe) every line ends with a newline.
type progress struct {
	out      io.Writer
	terminal bool
	action   string
	total    int64
	now      func() time.Time

	start   time.Time
	printed time.Time
}

func newProgress(out io.Writer, action string, total int64) *progress {
	p := &progress{
		out:      out,
		terminal: isTerminal(out),
		action:   action,
		total:    total,
		now:      time.Now,
	}
	p.start = p.now()
	return p
}

// update prints done unless a line was printed less than progressInterval ago.
// The first call always prints.
func (p *progress) update(done int64) {
	now := p.now()
	if !p.printed.IsZero() && now.Sub(p.printed) < progressInterval {
		return
	}
	p.printed = now
	p.print(done, now)
}

// finish prints done and ends the line on a terminal.
func (p *progress) finish(done int64) {
	now := p.now()
	p.printed = now
	p.print(done, now)
	if p.terminal {
		fmt.Fprintln(p.out)
	}
}

func (p *progress) print(done int64, now time.Time) {
	line := fmt.Sprintf("%s %s of %s (%d%%)", p.action, formatBytes(done), formatBytes(p.total), percent(done, p.total))
	if elapsed := now.Sub(p.start).Seconds(); done > 0 && elapsed > 0 {
		line += fmt.Sprintf(", %s/s", formatBytes(int64(float64(done)/elapsed)))
	}

	if p.terminal {
		// ESC [ K (ANSI "erase in line") clears what a longer previous line left.
		fmt.Fprintf(p.out, "\r%s\x1b[K", line)
		return
	}
	fmt.Fprintln(p.out, line)
}

func percent(done, total int64) int64 {
	if total <= 0 {
		return 100
	}
	return done * 100 / total
}

// isTerminal reports whether out is a character device such as a terminal.
// NOTE: /dev/null is a character device too; a carriage return sent there is harmless.
func isTerminal(out io.Writer) bool {
	f, ok := out.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	if err != nil {
		return false
	}
	return info.Mode()&os.ModeCharDevice != 0
}

// formatBytes formats n with a binary unit, such as "64.0 MiB".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	value := float64(n)
	prefixes := "KMGTPE"
	i := -1
	for value >= unit && i < len(prefixes)-1 {
		value /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", value, prefixes[i])
}
