package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procsWith returns the pids of live processes with the argument tok.
func procsWith(tok string) []int {
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmdline, err := os.ReadFile(d + "/cmdline")
		if err != nil || !slices.Contains(strings.Split(string(cmdline), "\x00"), tok) {
			continue
		}
		stat, err := os.ReadFile(d + "/stat")
		if i := bytes.LastIndexByte(stat, ')'); err != nil || i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		pids = append(pids, pid)
	}
	return pids
}

// TestRunnerCrash kills a runner (this test run again, as a child) with
// SIGKILL while its bundle runs: the bundle's processes die with it, and
// the next runner sweeps the cgroups it left.
func TestRunnerCrash(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("SKIP: this machine cannot build the sandbox: %v", err)
	}
	const child = "DROVER_TEST_CRASH_CHILD"
	if tok := os.Getenv(child); tok != "" {
		b := tgz(t, map[string]string{"start": "#!/bin/sh\nsetsid sleep " + tok + " &\nexec sleep " + tok + "\n"})
		Run(context.Background(), &Spec{Bundle: bytes.NewReader(b), BundleSize: int64(len(b)),
			Env: []string{"PATH=/usr/bin:/bin"}, Stdout: io.Discard, Stderr: io.Discard})
		t.Fatal("the runner was to be killed")
	}
	tok := strconv.Itoa(1_000_000 + rand.IntN(8_000_000))
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunnerCrash$", "-test.count=1")
	cmd.Env = append(os.Environ(), child+"="+tok)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); len(procsWith(tok)) < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the child's bundle never ran")
		}
	}
	cmd.Process.Kill()
	cmd.Wait()

	for deadline := time.Now().Add(10 * time.Second); len(procsWith(tok)) > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("bundle processes %v outlived their runner", procsWith(tok))
		}
	}
	set, err := findCgroups()
	if err != nil {
		t.Fatal(err)
	}
	if err := set.acquire(); err != nil { // as during an attempt of ours
		t.Fatal(err)
	}
	defer set.release()
	stale := make([]string, len(set.parents))
	for i, p := range set.parents {
		stale[i] = filepath.Join(filepath.Dir(p), fmt.Sprintf("drover-exec-%d", cmd.Process.Pid))
		if _, err := os.Stat(stale[i]); err != nil {
			t.Fatalf("the crashed runner left no cgroup to sweep: %v", err)
		}
		sweep(filepath.Dir(p), false) // what the next runner does first
		if _, err := os.Stat(stale[i]); !os.IsNotExist(err) {
			t.Errorf("cgroup %s not swept: %v", stale[i], err)
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("sweeping removed this runner's own cgroup %s: %v", p, err)
		}
	}
}

// leftCgroups fails t if this process's cgroups outlived its attempts.
func leftCgroups(t *testing.T) {
	t.Helper()
	set, err := findCgroups()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range set.parents {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			ents, _ := os.ReadDir(p)
			t.Errorf("cgroup %s left after the attempts: %v %v", p, err, ents)
		}
	}
}
