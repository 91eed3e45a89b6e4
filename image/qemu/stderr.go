package qemu

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
)

// maxStderrTail bounds the QEMU error output that exit errors contain.
const maxStderrTail = 4 << 10

// stderrLog logs each line that QEMU writes to its standard error and keeps
// the last few KiB for the exit error.
type stderrLog struct {
	logger *slog.Logger

	mu      sync.Mutex
	partial []byte
	last    []byte
}

func (s *stderrLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	s.last = append(s.last, p...)
	if len(s.last) > maxStderrTail {
		s.last = append(s.last[:0], s.last[len(s.last)-maxStderrTail:]...)
	}

	s.partial = append(s.partial, p...)
	for {
		line, rest, ok := bytes.Cut(s.partial, []byte("\n"))
		if !ok {
			break
		}
		s.log(line)
		s.partial = append(s.partial[:0], rest...)
	}
	return len(p), nil
}

func (s *stderrLog) log(line []byte) {
	line = bytes.TrimSpace(line)
	switch {
	case len(line) == 0:
	case bytes.Contains(line, []byte("terminating on signal")):
		// QEMU's reply to SIGTERM from Stop or a canceled context.
		s.logger.Info("qemu error output", "line", string(line))
	default:
		s.logger.Warn("qemu error output", "line", string(line))
	}
}

// tail returns the last lines of QEMU's error output, joined by "; ".
func (s *stderrLog) tail() string {
	s.mu.Lock()
	defer s.mu.Unlock()

	var lines []string
	for line := range bytes.Lines(s.last) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			lines = append(lines, string(line))
		}
	}
	return strings.Join(lines, "; ")
}
