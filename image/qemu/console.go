package qemu

import (
	"bytes"
	"io"
	"log/slog"
	"sync"
	"time"
)

// maxConsoleHistory bounds the console output that WaitConsole searches. The
// gokrazy kernels print about 20 KiB from boot to the root mount.
const maxConsoleHistory = 8 << 20

// console passes the guest's console output on to a writer and keeps it for
// WaitConsole.
type console struct {
	out    io.Writer
	logger *slog.Logger
	start  time.Time

	mu      sync.Mutex
	history []byte
	// dropped is the number of bytes removed from the front of history.
	dropped int64
	// changed is closed and replaced on every write.
	changed  chan struct{}
	firstAt  time.Duration
	outError error
}

func newConsole(out io.Writer, logger *slog.Logger) *console {
	return &console{
		out:     out,
		logger:  logger,
		start:   time.Now(),
		changed: make(chan struct{}),
	}
}

// Write returns no error even when the outer writer fails, because an error
// would stop the copying from QEMU that WaitConsole depends on. It logs the
// outer writer's first error and then stops writing to it.
func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()

	if c.outError == nil {
		if _, err := c.out.Write(p); err != nil {
			c.outError = err
			c.logger.Error("qemu console writer failed, later output is only kept for WaitConsole", "err", err)
		}
	}

	if c.firstAt == 0 && len(p) > 0 {
		c.firstAt = time.Since(c.start)
	}
	c.history = append(c.history, p...)
	if len(c.history) > maxConsoleHistory {
		drop := len(c.history) - maxConsoleHistory/2
		c.history = append(c.history[:0], c.history[drop:]...)
		c.dropped += int64(drop)
	}

	close(c.changed)
	c.changed = make(chan struct{})
	return len(p), nil
}

// find searches the history from the absolute offset from on. It returns
// whether substr occurs, the offset to continue the next search from and a
// channel that is closed on the next write.
func (c *console) find(substr []byte, from int64) (found bool, next int64, changed <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()

	start := max(from-c.dropped, 0)
	if bytes.Contains(c.history[start:], substr) {
		return true, 0, nil
	}

	// A match may begin in the last len(substr)-1 bytes searched.
	next = max(c.dropped+int64(len(c.history)-len(substr)+1), from)
	return false, next, c.changed
}

func (c *console) output() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.history)
}

func (c *console) firstOutput() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.firstAt
}

// lastLine returns the last non-empty console line, for error messages.
func (c *console) lastLine() string {
	c.mu.Lock()
	defer c.mu.Unlock()

	text := bytes.TrimRight(c.history, "\r\n")
	line := text[bytes.LastIndexByte(text, '\n')+1:]
	return string(bytes.TrimSpace(line))
}
