package flash

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// confirm shows what is about to be overwritten and reads one line from in.
// Only "yes" or the German "ja" (in any letter case) lets the write go ahead.
func confirm(in io.Reader, out io.Writer, t target, imagePath string, imageSize int64) error {
	if in == nil {
		return fmt.Errorf("%w: no input to read a confirmation from and Yes is not set; nothing was written to %s", ErrAborted, t.path)
	}

	model := t.model
	if model == "" {
		model = "unknown"
	}
	fmt.Fprintf(out, "Device: %s\n", t.path)
	if t.resolved != t.path {
		fmt.Fprintf(out, "        (%s)\n", t.resolved)
	}
	fmt.Fprintf(out, "Model:  %s\n", model)
	fmt.Fprintf(out, "Size:   %s (%d bytes)\n", formatBytes(t.size), t.size)
	fmt.Fprintf(out, "Image:  %s (%s)\n", imagePath, formatBytes(imageSize))
	fmt.Fprintf(out, "All data on %s will be overwritten. Type \"yes\" to continue: ", t.path)

	answer, err := bufio.NewReader(in).ReadString('\n')
	if !isTerminal(out) {
		// A terminal has echoed the user's newline already.
		fmt.Fprintln(out)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the confirmation: %w; nothing was written to %s", err, t.path)
	}

	answer = strings.TrimSpace(answer)
	switch strings.ToLower(answer) {
	case "yes", "ja":
		return nil
	case "":
		return fmt.Errorf("%w: no answer, so nothing was written to %s; type \"yes\" to write, or pass --yes to write without the question", ErrAborted, t.path)
	default:
		return fmt.Errorf("%w: the answer %q is not \"yes\"; nothing was written to %s", ErrAborted, answer, t.path)
	}
}
