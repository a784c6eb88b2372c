// Package sandbox runs an untrusted bundle's start executable isolated
// from the process that runs it, for the runner's exec function.
//
// # What a sandbox is
//
// On Linux, when the runner is root (as it is in a container), each
// attempt gets its own user, PID, mount, IPC, UTS, cgroup and (unless
// the task asks for network and the runner allows it) network
// namespaces. Its first process is this package's init, re-executed from
// the runner's own binary (/proc/self/exe); the Go runtime never forks a
// hostile program from the runner itself. Init builds a new root: a
// small read-only tmpfs holding read-only binds of /usr, /bin, /lib*,
// /sbin, a short list of harmless /etc files, a minimal /dev, a fresh
// /proc, and one size-capped tmpfs for /work (the work dir, HOME and the
// current directory) and /tmp. It extracts the bundle there, drops to an
// unprivileged user (uid 1000 inside, a dedicated host uid outside, with
// no capabilities and no_new_privs), and runs ./start. When start exits,
// init kills every process left in the namespace, packs result/ and
// reports. The runner kills init (and with it the whole PID namespace)
// when the attempt times out or is cancelled, or if init misbehaves.
// Memory and the number of processes are capped by a cgroup per attempt
// (v2, or v1's memory and pids hierarchies), open files and CPU time by
// rlimits, bytes written by the tmpfs size.
//
// Nothing of the runner is visible: not its files (data dir, bucket,
// other tasks' work dirs), its environment, its processes, nor its
// network unless asked for. docs/security.md has the full table.
//
// # When there is no sandbox
//
// Available reports why isolation is impossible (not Linux, not root,
// namespaces or cgroups unavailable); the runner then refuses exec unless
// DROVER_EXEC_UNSAFE=allow.
package sandbox

import (
	"context"
	"fmt"
	"io"
	"time"
)

// HostUID is the first of the two host user (and group) ids a sandbox
// runs under: HostUID for its init, HostUID+1 for start and everything it
// starts. Neither should own anything on the host. Set it before the
// first Run.
var HostUID = 900_000

// Limits bound what one attempt may use. Zero values take the defaults in
// parentheses.
type Limits struct {
	// Memory caps the memory of all the attempt's processes, including
	// what they write to the work dir and /tmp, which live in memory
	// (512 MiB).
	Memory int64
	// Procs caps the attempt's processes and threads (256).
	Procs int
	// Disk caps the bytes in the work dir and /tmp together, the
	// extracted bundle included (256 MiB).
	Disk int64
	// Files caps each process's open files (1024).
	Files int
	// CPU caps each process's CPU time (10 minutes).
	CPU time.Duration
	// ResultBytes caps the bytes of the files in result/ (64 MiB).
	ResultBytes int64
	// ResultFiles caps the files and directories in result/ (10,000).
	ResultFiles int
	// BundleFiles caps the entries of a bundle (10,000).
	BundleFiles int
}

// DefaultLimits returns the limits that zero values stand for.
func DefaultLimits() Limits {
	return Limits{
		Memory:      512 << 20,
		Procs:       256,
		Disk:        256 << 20,
		Files:       1024,
		CPU:         10 * time.Minute,
		ResultBytes: 64 << 20,
		ResultFiles: 10_000,
		BundleFiles: 10_000,
	}
}

// WithDefaults returns l with zero fields set to their defaults.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	set := func(v *int64, def int64) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.Memory, d.Memory)
	set(&l.Disk, d.Disk)
	set(&l.ResultBytes, d.ResultBytes)
	if l.Procs <= 0 {
		l.Procs = d.Procs
	}
	if l.Files <= 0 {
		l.Files = d.Files
	}
	if l.CPU <= 0 {
		l.CPU = d.CPU
	}
	if l.ResultFiles <= 0 {
		l.ResultFiles = d.ResultFiles
	}
	if l.BundleFiles <= 0 {
		l.BundleFiles = d.BundleFiles
	}
	return l
}

// LimitError says that an attempt hit one of its limits.
type LimitError struct {
	// Limit names the limit: "memory", "processes", "disk", "cpu time",
	// "result/ size", "result/ files".
	Limit string
	// Value is the limit, as documented ("512 MiB", "256").
	Value string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s limit of %s hit", e.Limit, e.Value)
}

// Spec is one attempt to run.
type Spec struct {
	// Bundle is the .tar.gz stream, BundleSize bytes long.
	Bundle     io.Reader
	BundleSize int64
	// Argv are start's arguments (start itself is argv[0]); Env its whole
	// environment.
	Argv, Env []string
	// Network shares the runner's network instead of giving the attempt
	// none.
	Network bool
	Limits  Limits
	// Stdout and Stderr receive start's output.
	Stdout, Stderr io.Writer
	// Result, if set, is called with the packed result/ directory
	// (a .tar.gz stream) when start left one, before Run returns. It
	// must read r to its end or return an error.
	Result func(r io.Reader) error

	probe bool // only check that a sandbox can be built
}

// Outcome is how an attempt ended.
type Outcome struct {
	// Exited is true when start exited, with ExitCode; otherwise it was
	// killed by Signal (or never ran: see Killed and Limit).
	Exited   bool
	ExitCode int
	Signal   string
	// Killed is true when ctx ended the attempt.
	Killed bool
	// Limit is the first limit the attempt hit, if any.
	Limit *LimitError
	// Result is true when Spec.Result was called and returned nil.
	Result bool
	// Usage is what the attempt used at most.
	Usage Usage
}

// Usage is what an attempt used, as far as the runner can tell.
type Usage struct {
	PeakMemory int64 `json:"peak_memory_bytes,omitempty"`
	PeakProcs  int   `json:"peak_procs,omitempty"`
}

// Describe returns a one-line description of how bundles run on this
// machine: "isolated (...)" or the reason they cannot be.
func Describe() string {
	if err := Available(); err != nil {
		return err.Error()
	}
	return "isolated (" + describe() + ")"
}

// Run runs spec in a new sandbox and returns how it ended. Errors are the
// sandbox's or the runner's (a bundle's faults are *BundleError, wrapped)
// except that ctx's error is returned when ctx ended the attempt before
// start could run.
func Run(ctx context.Context, spec *Spec) (*Outcome, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	return run(ctx, spec)
}

// FormatBytes writes n as limits are documented: "256 MiB".
func FormatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
