package flash

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// mount is one line of /proc/self/mountinfo.
type mount struct {
	major, minor uint32
	mountPoint   string
	fsType       string
	source       string
}

// parseMountinfo parses the format of /proc/PID/mountinfo that proc_pid_mountinfo(5)
// describes:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// Fields are mount ID, parent ID, major:minor, root, mount point, options, zero
// or more optional fields, a "-" separator, file system type, source and super
// options.
func parseMountinfo(r io.Reader) ([]mount, error) {
	var mounts []mount
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for line := 1; scanner.Scan(); line++ {
		if strings.TrimSpace(scanner.Text()) == "" {
			continue
		}
		m, err := parseMountinfoLine(scanner.Text())
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w", line, err)
		}
		mounts = append(mounts, m)
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	return mounts, nil
}

func parseMountinfoLine(line string) (mount, error) {
	fields := strings.Fields(line)
	separator := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			separator = i
			break
		}
	}
	if len(fields) < 6 || separator < 0 || separator+2 >= len(fields) {
		return mount{}, fmt.Errorf("invalid line %q: want fields up to the file system source after \" - \"", line)
	}

	major, minor, err := parseMajorMinor(fields[2])
	if err != nil {
		return mount{}, err
	}
	return mount{
		major:      major,
		minor:      minor,
		mountPoint: unescapeOctal(fields[4]),
		fsType:     unescapeOctal(fields[separator+1]),
		source:     unescapeOctal(fields[separator+2]),
	}, nil
}

// parseMajorMinor parses a device number written as "MAJOR:MINOR".
func parseMajorMinor(s string) (major, minor uint32, err error) {
	majorText, minorText, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return 0, 0, fmt.Errorf("invalid device number %q: want MAJOR:MINOR", s)
	}
	major64, err := strconv.ParseUint(majorText, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("invalid major number in %q: %w", s, err)
	}
	minor64, err := strconv.ParseUint(minorText, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("invalid minor number in %q: %w", s, err)
	}
	return uint32(major64), uint32(minor64), nil
}

// unescapeOctal decodes the \NNN octal escapes that the kernel writes for
// space, tab, newline and backslash in mountinfo and /proc/swaps paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOctal(s[i+1:i+4]) {
			if value, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(value))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '7' {
			return false
		}
	}
	return true
}

// parseSwaps returns the file names listed in /proc/swaps, whose first line is
// a header ("Filename Type Size Used Priority").
func parseSwaps(r io.Reader) ([]string, error) {
	var names []string
	scanner := bufio.NewScanner(r)
	for first := true; scanner.Scan(); first = false {
		fields := strings.Fields(scanner.Text())
		if first || len(fields) == 0 {
			continue
		}
		names = append(names, unescapeOctal(fields[0]))
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("reading swaps: %w", err)
	}
	return names, nil
}
