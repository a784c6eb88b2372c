package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// cgroupRoot is where cgroup file systems are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroups is the machine's cgroup setup, found once.
type cgroups struct {
	v2 bool
	// parents are the directories attempt cgroups are made in, one for
	// v2, the memory and pids ones for v1; each is a drover-exec-PID
	// directory under the runner's own cgroup.
	parents []string
	seq     atomic.Int64

	mu     sync.Mutex
	active int // attempts with a cgroup: the parents exist while > 0
}

// acquire makes sure the parents exist for one more attempt.
func (set *cgroups) acquire() error {
	set.mu.Lock()
	defer set.mu.Unlock()
	if set.active == 0 {
		for _, p := range set.parents {
			if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("cgroup: %w", err)
			}
			if set.v2 {
				if err := os.WriteFile(filepath.Join(p, "cgroup.subtree_control"), []byte("+memory +pids"), 0); err != nil {
					return fmt.Errorf("cgroup v2: enable memory and pids in %s: %w", p, err)
				}
			}
		}
	}
	set.active++
	return nil
}

// release removes the parents when the last attempt is done, so that a
// runner that exits leaves nothing behind (one that crashes leaves them to
// its successor's sweep).
func (set *cgroups) release() {
	set.mu.Lock()
	defer set.mu.Unlock()
	if set.active--; set.active == 0 {
		for _, p := range set.parents {
			syscall.Rmdir(p)
		}
	}
}

var (
	cgOnce sync.Once
	cgSet  *cgroups
	cgErr  error
)

// findCgroups finds where attempt cgroups can be made, sweeping those a
// crashed runner left behind.
func findCgroups() (*cgroups, error) {
	cgOnce.Do(func() { cgSet, cgErr = setUpCgroups() })
	return cgSet, cgErr
}

func setUpCgroups() (*cgroups, error) {
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	paths := map[string]string{} // controller ("" for v2) -> path
	for line := range strings.Lines(string(own)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for c := range strings.SplitSeq(parts[1], ",") {
			paths[c] = parts[2]
		}
	}
	name := fmt.Sprintf("drover-exec-%d", os.Getpid())
	cg := &cgroups{}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		// Pure v2: the runner's cgroup must delegate memory and pids.
		base := filepath.Join(cgroupRoot, paths[""])
		if err := enableControllers(base); err != nil {
			return nil, err
		}
		cg.v2 = true
		cg.parents = []string{filepath.Join(base, name)}
	} else {
		for _, c := range []string{"memory", "pids"} {
			p, ok := paths[c]
			if !ok {
				return nil, fmt.Errorf("cgroup v1: no %s controller", c)
			}
			cg.parents = append(cg.parents, filepath.Join(cgroupRoot, c, p, name))
		}
	}
	for _, p := range cg.parents {
		sweep(filepath.Dir(p), true)
	}
	// Check that attempts' cgroups can be made.
	if err := cg.acquire(); err != nil {
		return nil, err
	}
	cg.release()
	return cg, nil
}

// enableControllers makes sure that base's children get memory and pids.
func enableControllers(base string) error {
	have, err := os.ReadFile(filepath.Join(base, "cgroup.subtree_control"))
	if err != nil {
		return fmt.Errorf("cgroup v2: %w", err)
	}
	f := strings.Fields(string(have))
	if contains(f, "memory") && contains(f, "pids") {
		return nil
	}
	err = os.WriteFile(filepath.Join(base, "cgroup.subtree_control"), []byte("+memory +pids"), 0)
	if errors.Is(err, syscall.EBUSY) {
		// A cgroup with processes cannot give its children controllers:
		// the runner moves itself into a leaf (in a container it is
		// often alone in its cgroup), then tries again.
		leaf := filepath.Join(base, fmt.Sprintf("drover-runner-%d", os.Getpid()))
		if merr := os.Mkdir(leaf, 0o700); merr == nil || errors.Is(merr, os.ErrExist) {
			if os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0) == nil {
				err = os.WriteFile(filepath.Join(base, "cgroup.subtree_control"), []byte("+memory +pids"), 0)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("cgroup v2: memory and pids are not delegated to the runner's cgroup %s "+
			"(run it in a cgroup of its own with both in cgroup.subtree_control): %w", base, err)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// sweep removes drover-exec-PID cgroups under dir whose runner is gone,
// killing what is left in them. With own, it removes this process's too:
// before it made its own, one there is a predecessor's (a restarted
// runner in a container often gets the same PID).
func sweep(dir string, own bool) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		// The leaf a dead runner moved itself into (never this one's).
		if pid, ok := strings.CutPrefix(e.Name(), "drover-runner-"); ok && e.IsDir() {
			if n, err := strconv.Atoi(pid); err == nil && n != os.Getpid() && errors.Is(syscall.Kill(n, 0), syscall.ESRCH) {
				syscall.Rmdir(filepath.Join(dir, e.Name()))
			}
			continue
		}
		pid, ok := strings.CutPrefix(e.Name(), "drover-exec-")
		n, err := strconv.Atoi(pid)
		if !ok || err != nil || !e.IsDir() {
			continue
		}
		if n == os.Getpid() && !own || n != os.Getpid() && syscall.Kill(n, 0) == nil {
			continue
		}
		p := filepath.Join(dir, e.Name())
		subs, _ := os.ReadDir(p)
		for _, s := range subs {
			if s.IsDir() {
				removeCgroup(filepath.Join(p, s.Name()))
			}
		}
		removeCgroup(p)
	}
}

// cgroup is one attempt's cgroup: one directory for v2, two for v1.
type cgroup struct {
	v2   bool
	dirs []string
	set  *cgroups
	once sync.Once
}

// newCgroup makes a cgroup for one attempt with lim's memory and process
// caps.
func newCgroup(lim Limits) (*cgroup, error) {
	set, err := findCgroups()
	if err != nil {
		return nil, err
	}
	if err := set.acquire(); err != nil {
		return nil, err
	}
	name := strconv.FormatInt(set.seq.Add(1), 10)
	cg := &cgroup{v2: set.v2, set: set}
	for _, p := range set.parents {
		d := filepath.Join(p, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			cg.remove()
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		cg.dirs = append(cg.dirs, d)
	}
	mem := strconv.FormatInt(lim.Memory, 10)
	procs := strconv.Itoa(lim.Procs)
	var writes [][2]string
	if cg.v2 {
		writes = [][2]string{{"memory.max", mem}, {"memory.swap.max", "0"}, {"pids.max", procs}}
	} else {
		writes = [][2]string{{"memory.limit_in_bytes", mem}, {"pids.max", procs}}
	}
	for _, w := range writes {
		if err := cg.write(w[0], w[1]); err != nil {
			cg.remove()
			return nil, err
		}
	}
	if !cg.v2 {
		// Without swap accounting the file is missing: nothing to cap.
		cg.write("memory.memsw.limit_in_bytes", mem)
	}
	return cg, nil
}

// file returns the path of a control file, in the v1 hierarchy it belongs
// to.
func (cg *cgroup) file(name string) string {
	if !cg.v2 && strings.HasPrefix(name, "pids.") {
		return filepath.Join(cg.dirs[1], name)
	}
	return filepath.Join(cg.dirs[0], name)
}

func (cg *cgroup) write(name, value string) error {
	if err := os.WriteFile(cg.file(name), []byte(value), 0); err != nil {
		return fmt.Errorf("cgroup: set %s: %w", name, err)
	}
	return nil
}

// add moves process pid (and all its threads) into the cgroup.
func (cg *cgroup) add(pid int) error {
	for _, d := range cg.dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("cgroup: add %d: %w", pid, err)
		}
	}
	return nil
}

// fd opens the v2 directory for clone3's CLONE_INTO_CGROUP.
func (cg *cgroup) fd() (*os.File, error) { return os.Open(cg.dirs[0]) }

// counter returns the value of key in a flat-keyed file, or 0.
func (cg *cgroup) counter(file, key string) int64 {
	b, err := os.ReadFile(cg.file(file))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == key {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// value returns the number in file, or 0.
func (cg *cgroup) value(file string) int64 {
	b, err := os.ReadFile(cg.file(file))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// oomKills counts the processes the memory cap killed.
func (cg *cgroup) oomKills() int64 {
	if cg.v2 {
		return cg.counter("memory.events", "oom_kill")
	}
	return cg.counter("memory.oom_control", "oom_kill")
}

// procsHit counts the forks the process cap refused.
func (cg *cgroup) procsHit() int64 { return cg.counter("pids.events", "max") }

// usage returns the peaks the kernel kept.
func (cg *cgroup) usage() Usage {
	u := Usage{PeakProcs: int(cg.value("pids.peak"))}
	if cg.v2 {
		u.PeakMemory = cg.value("memory.peak")
	} else {
		u.PeakMemory = cg.value("memory.max_usage_in_bytes")
	}
	return u
}

// kill kills every process in the cgroup.
func (cg *cgroup) kill() {
	if cg.v2 && os.WriteFile(filepath.Join(cg.dirs[0], "cgroup.kill"), []byte("1"), 0) == nil {
		return
	}
	for _, d := range cg.dirs {
		killAllIn(d)
	}
}

// remove kills what is left in the cgroup and removes it.
func (cg *cgroup) remove() {
	cg.once.Do(func() {
		for _, d := range cg.dirs {
			removeCgroup(d)
		}
		cg.set.release()
	})
}

// killAllIn kills the processes listed in dir/cgroup.procs.
func killAllIn(dir string) (left bool) {
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	for f := range strings.FieldsSeq(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
			left = true
		}
	}
	return left
}

// removeCgroup kills what is in dir and removes it, waiting (a bounded
// time) for killed processes to leave.
func removeCgroup(dir string) {
	os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	for try := 0; ; try++ {
		killAllIn(dir)
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) || try == 200 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
