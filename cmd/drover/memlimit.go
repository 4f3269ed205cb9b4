package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// A cgroup limit at or above this is the kernel's "no limit" (v1 reports
// the largest page-aligned int64, v2 the word "max").
const unlimitedMemory = int64(1) << 62

// cgroupMemoryShare is the part of the cgroup's hard limit --memory-limit=auto
// gives the Go heap: the rest is for SQLite, the binary and the kernel's
// accounting of this process, so the heap's soft limit is reached before the
// cgroup's hard one kills the process.
const cgroupMemoryShare = 0.9

// errCgroupLimit marks a cgroup limit that could not be read: serve goes on
// without a limit rather than refusing to start.
var errCgroupLimit = errors.New("no memory limit set")

// memoryLimit decides serve's soft memory limit from --memory-limit:
// a size, "off", or "auto" (GOMEMLIMIT if the environment sets it, which the
// runtime has already applied, else 90 % of the cgroup's memory limit). A
// zero limit means none is set; from says where the figure came from.
func memoryLimit(setting, gomemlimit string, readFile func(string) ([]byte, error)) (limit int64, from string, err error) {
	if sizeOff(setting) {
		return 0, "off", nil
	}
	switch strings.ToLower(strings.TrimSpace(setting)) {
	case "auto", "":
		if gomemlimit != "" {
			return 0, "GOMEMLIMIT", nil
		}
		max, file, err := cgroupMemoryMax(readFile)
		if err != nil {
			return 0, "", fmt.Errorf("%w: %w", errCgroupLimit, err)
		}
		if max == 0 {
			return 0, "", nil
		}
		return int64(float64(max) * cgroupMemoryShare), file, nil
	}
	n, err := parseSize(setting)
	if err != nil {
		return 0, "", fmt.Errorf("--memory-limit %q: %w, or auto, or off", setting, err)
	}
	if n < minMemoryLimit {
		return 0, "", fmt.Errorf("--memory-limit %q: %d bytes is too small for a server: give at least 64MiB", setting, n)
	}
	return n, "--memory-limit", nil
}

// minMemoryLimit is the smallest --memory-limit: below it a server would
// spend its time collecting garbage.
const minMemoryLimit = 64 << 20

// cgroupMemoryMax returns the memory limit of the cgroup this process is in
// and the file it was read from, or 0 when it has none. It reads cgroup v2's
// memory.max and v1's memory.limit_in_bytes: first under the process's own
// cgroup path (a systemd unit's MemoryMax=), then at the hierarchy's root (a
// container with its own cgroup namespace).
func cgroupMemoryMax(readFile func(string) ([]byte, error)) (int64, string, error) {
	var candidates []string
	if b, err := readFile("/proc/self/cgroup"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) != 3 || !path.IsAbs(parts[2]) {
				continue
			}
			switch {
			case parts[0] == "0" && parts[1] == "":
				candidates = append(candidates, path.Join("/sys/fs/cgroup", parts[2], "memory.max"))
			case hasController(parts[1], "memory"):
				candidates = append(candidates, path.Join("/sys/fs/cgroup/memory", parts[2], "memory.limit_in_bytes"))
			}
		}
	}
	candidates = append(candidates, "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
	for _, file := range candidates {
		b, err := readFile(file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, "", fmt.Errorf("read cgroup memory limit: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, "", nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, "", fmt.Errorf("read cgroup memory limit %s: %q is not a byte count", file, v)
		}
		if n <= 0 || n >= unlimitedMemory {
			return 0, "", nil
		}
		return n, file, nil
	}
	return 0, "", nil
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}
