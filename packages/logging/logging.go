// Package logging sets up the log/slog logger that every Heimwolke program
// uses: text lines on standard error, optionally copied to the system console
// so that a box's serial console shows what its programs do.
package logging

import (
	"io"
	"log/slog"
	"os"
)

// Setup installs and returns the default logger for program. With toConsole
// set, lines also go to /dev/console when it can be opened.
func Setup(program string, level slog.Level, toConsole bool) *slog.Logger {
	var w io.Writer = os.Stderr
	var consoleErr error
	if toConsole {
		console, err := os.OpenFile("/dev/console", os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			w = io.MultiWriter(os.Stderr, console)
		}
		consoleErr = err
	}
	logger := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})).With("program", program)
	slog.SetDefault(logger)
	if consoleErr != nil {
		logger.Warn("logging to the console failed", "err", consoleErr)
	}
	return logger
}
