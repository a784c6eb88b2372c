package runner

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/droverhq/drover/pkg/task"
)

// DetectTraits returns the traits every runner has: os and arch (Go's
// names: linux, amd64), cpus (usable CPUs) and memory (MiB of RAM, where
// the system tells it).
func DetectTraits() task.Traits {
	t := task.Traits{
		"os": runtime.GOOS, "arch": runtime.GOARCH, "cpus": strconv.Itoa(runtime.NumCPU()),
	}
	if mib := memoryMiB(); mib > 0 {
		t["memory"] = strconv.FormatInt(mib, 10)
	}
	return t
}

// memoryMiB reads MemTotal from /proc/meminfo (0 where there is none).
func memoryMiB() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0
		}
		return kb / 1024
	}
	return 0
}
