package web

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Process is the memory use of one of the box's programs.
type Process struct {
	Name     string `json:"name"`
	PID      int    `json:"pid"`
	RSSBytes int64  `json:"rss_bytes"`
}

// watchedPrograms are the processes the health report measures.
var watchedPrograms = map[string]bool{"heimwolke": true, "heimwolke-agent": true}

// programMemory returns the resident memory of the watched programs, read
// from /proc (Linux only; elsewhere the list is empty).
func programMemory() []Process {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var procs []Process
	for _, dir := range dirs {
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil {
			continue
		}
		name := strings.TrimSpace(string(comm))
		if !watchedPrograms[name] {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(dir))
		rss, ok := statusRSS(filepath.Join(dir, "status"))
		if !ok {
			continue
		}
		procs = append(procs, Process{Name: name, PID: pid, RSSBytes: rss})
	}
	return procs
}

// statusRSS returns VmRSS from a /proc/PID/status file, in bytes.
func statusRSS(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest) // "12345 kB"
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, false
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		return kb * 1024, err == nil
	}
	return 0, false
}
