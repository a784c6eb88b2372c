package sandbox

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The runner re-executes its own binary as the sandbox's init: argv[0] is
// initName and initEnv is set, which no user starts a program with by
// chance. Init's file descriptors: 0 /dev/null, 1 and 2 start's output,
// 3 the control pipe (config, then the bundle, then nothing until the
// runner closes it: init then kills everything), 4 the result/ stream,
// 5 the status.
const (
	initName = "drover-sandbox-init"
	initEnv  = "DROVER_SANDBOX_INIT"
	fdCtl    = 3
	fdResult = 4
	fdStatus = 5
)

// Inside the sandbox: init is uid 0, start uid and gid 1000.
const (
	innerUID = 1000
	workDir  = "/work"
)

// initConfig is what the runner sends init first, as one JSON line.
type initConfig struct {
	Probe      bool     `json:"probe,omitempty"`
	Argv       []string `json:"argv"`
	Env        []string `json:"env"`
	BundleSize int64    `json:"bundle_size"`
	Limits     Limits   `json:"limits"`
}

// initStatus is init's last word, on fdStatus.
type initStatus struct {
	Started  bool        `json:"started"`
	Exited   bool        `json:"exited"`
	ExitCode int         `json:"exit_code"`
	Signal   string      `json:"signal,omitempty"`
	Limit    *LimitError `json:"limit,omitempty"`
	Bundle   string      `json:"bundle_error,omitempty"`
	Error    string      `json:"error,omitempty"`
	Result   bool        `json:"result,omitempty"`
}

func init() {
	if len(os.Args) == 1 && os.Args[0] == initName && os.Getenv(initEnv) == "1" {
		os.Exit(initMain())
	}
}

// initMain is the sandbox's PID 1.
func initMain() int {
	status := os.NewFile(fdStatus, "status")
	st := runInit()
	b, _ := json.Marshal(st)
	status.Write(append(b, '\n'))
	status.Close()
	return 0
}

func runInit() (st initStatus) {
	fail := func(format string, a ...any) initStatus {
		st.Error = fmt.Sprintf(format, a...)
		return st
	}
	for _, fd := range []int{fdCtl, fdResult, fdStatus} {
		syscall.CloseOnExec(fd)
	}
	// The runner's umask (077 in drover dev) would hide the new root's
	// directories from start.
	syscall.Umask(0o022)
	// Nothing in the sandbox may read or trace init.
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	ctl := bufio.NewReaderSize(os.NewFile(fdCtl, "ctl"), 64<<10)
	line, err := ctl.ReadBytes('\n')
	if err != nil {
		return fail("read config: %v", err)
	}
	var cfg initConfig
	if err := json.Unmarshal(line, &cfg); err != nil {
		return fail("decode config: %v", err)
	}
	lim := cfg.Limits
	if err := buildRoot(lim); err != nil {
		return fail("build root: %v", err)
	}
	if cfg.Probe {
		return st
	}

	root, err := os.OpenRoot(workDir)
	if err != nil {
		return fail("%v", err)
	}
	err = Extract(io.LimitReader(ctl, cfg.BundleSize), root, lim.BundleFiles, lim.Disk)
	root.Close()
	if be := (*BundleError)(nil); errors.As(err, &be) {
		st.Bundle = be.Msg
		if strings.Contains(be.Msg, "work dir is full") {
			st.Limit = &LimitError{Limit: "disk", Value: FormatBytes(lim.Disk)}
		}
		return st
	}
	if err != nil {
		return fail("extract bundle: %v", err)
	}
	for _, d := range []string{workDir, "/tmp"} {
		if err := chownTree(d); err != nil {
			return fail("%v", err)
		}
	}
	os.Chmod("/tmp", 0o1777)

	killed := make(chan struct{})
	go func() {
		// The runner closes the control pipe (or dies): stop.
		io.Copy(io.Discard, ctl)
		close(killed)
		syscall.Kill(-1, syscall.SIGKILL)
	}()

	for _, rl := range []struct {
		res int
		max uint64
	}{
		{unix.RLIMIT_NOFILE, uint64(lim.Files)},
		{unix.RLIMIT_CPU, uint64(max(1, lim.CPU.Seconds()))},
		{unix.RLIMIT_CORE, 0},
		{unix.RLIMIT_FSIZE, uint64(lim.Disk)},
	} {
		hard := rl.max
		if rl.res == unix.RLIMIT_CPU {
			hard++ // SIGXCPU at the soft limit says why; SIGKILL a second later
		}
		if err := unix.Setrlimit(rl.res, &unix.Rlimit{Cur: rl.max, Max: hard}); err != nil {
			return fail("setrlimit %d: %v", rl.res, err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fail("no_new_privs: %v", err)
	}

	argv := append([]string{"./start"}, cfg.Argv...)
	attr := &syscall.ProcAttr{
		Dir:   workDir,
		Env:   cfg.Env,
		Files: []uintptr{0, 1, 2},
		Sys: &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: innerUID, Gid: innerUID, Groups: []uint32{}},
			Setsid:     true,
			Pdeathsig:  syscall.SIGKILL,
		},
	}
	var pid int
	for try := 0; ; try++ {
		pid, err = syscall.ForkExec(workDir+"/start", argv, attr)
		if !errors.Is(err, syscall.ETXTBSY) || try == 5 {
			break
		}
	}
	if errors.Is(err, syscall.ENOEXEC) || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EACCES) {
		st.Bundle = fmt.Sprintf("start is not executable: %v", err)
		return st
	}
	if err != nil {
		return fail("run start: %v", err)
	}
	st.Started = true

	// Reap everything (orphans are ours as PID 1) until start is gone.
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return fail("wait: %v", err)
		}
		if got == pid {
			st.Exited, st.ExitCode = ws.Exited(), ws.ExitStatus()
			if ws.Signaled() {
				st.ExitCode = -1
				st.Signal = unix.SignalName(ws.Signal())
				if ws.Signal() == syscall.SIGXCPU {
					st.Limit = &LimitError{Limit: "cpu time", Value: lim.CPU.String()}
				}
			}
			break
		}
	}
	// No child outlives start: kill the rest and reap them.
	for {
		syscall.Kill(-1, syscall.SIGKILL)
		_, err := syscall.Wait4(-1, nil, 0, nil)
		if errors.Is(err, syscall.ECHILD) {
			break
		}
	}
	select {
	case <-killed:
		return st
	default:
	}

	var fs unix.Statfs_t
	if unix.Statfs(workDir, &fs) == nil && fs.Bavail == 0 && st.Limit == nil {
		st.Limit = &LimitError{Limit: "disk", Value: FormatBytes(lim.Disk)}
	}
	if err := packResult(lim, &st); err != nil {
		return fail("pack result/: %v", err)
	}
	return st
}

// packResult streams result/ to fdResult, if start left one within the
// limits.
func packResult(lim Limits, st *initStatus) error {
	out := os.NewFile(fdResult, "result")
	defer out.Close()
	dir := filepath.Join(workDir, "result")
	if info, err := os.Lstat(dir); err != nil || !info.IsDir() {
		return nil
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	entries, bytes, err := ResultSize(root, lim.ResultFiles, lim.ResultBytes)
	switch {
	case err != nil:
		return err
	case entries > lim.ResultFiles:
		st.Limit = &LimitError{Limit: "result/ files", Value: fmt.Sprint(lim.ResultFiles)}
		return nil
	case bytes > lim.ResultBytes:
		st.Limit = &LimitError{Limit: "result/ size", Value: FormatBytes(lim.ResultBytes)}
		return nil
	}
	if err := Pack(root, out); err != nil {
		return err
	}
	st.Result = true
	return nil
}

// chownTree gives dir and everything in it to start's user.
func chownTree(dir string) error {
	return filepath.WalkDir(dir, func(name string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(name, innerUID, innerUID)
	})
}

// etcFiles are the /etc entries start sees (read-only), where the host
// has them: what the dynamic loader, name resolution, TLS and common
// tools need, and no secrets.
var etcFiles = []string{
	"alternatives", "ca-certificates", "ca-certificates.conf", "host.conf", "hosts",
	"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "mime.types",
	"nsswitch.conf", "os-release", "protocols", "resolv.conf", "services", "ssl", "timezone",
}

// systemDirs are bound read-only (or recreated, when they are symlinks).
var systemDirs = []string{"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"}

// devices are bound from the host's /dev.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// buildRoot makes the sandbox's file system and pivots into it.
func buildRoot(lim Limits) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	newRoot := "/tmp"
	if _, err := os.Stat(newRoot); err != nil {
		newRoot = "/mnt"
	}
	if err := unix.Mount("tmpfs", newRoot, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m,mode=0755"); err != nil {
		return fmt.Errorf("mount root tmpfs: %w", err)
	}
	at := func(p string) string { return filepath.Join(newRoot, p) }

	for _, d := range systemDirs {
		if err := bindOrLink("/"+d, at(d)); err != nil {
			return err
		}
	}
	if err := os.Mkdir(at("etc"), 0o755); err != nil {
		return err
	}
	for _, f := range etcFiles {
		if err := bindOrLink("/etc/"+f, at("etc/"+f)); err != nil {
			return err
		}
	}
	for name, body := range map[string]string{
		"passwd":   "root:x:0:0:root:/:/usr/sbin/nologin\ndrover:x:1000:1000:drover:/work:/bin/sh\nnobody:x:65534:65534:nobody:/:/usr/sbin/nologin\n",
		"group":    "root:x:0:\ndrover:x:1000:\nnogroup:x:65534:\n",
		"hostname": "drover\n",
	} {
		if err := os.WriteFile(at("etc/"+name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	unix.Sethostname([]byte("drover"))

	if err := os.Mkdir(at("dev"), 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", at("dev"), "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "size=64k,mode=0755"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, d := range devices {
		if err := bindOrLink("/dev/"+d, at("dev/"+d)); err != nil {
			return err
		}
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, at("dev/"+name)); err != nil {
			return err
		}
	}
	if err := os.Mkdir(at("proc"), 0o555); err != nil {
		return err
	}
	if err := unix.Mount("proc", at("proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}

	// One size-capped tmpfs holds both /work and /tmp.
	rw := at(".rw")
	for _, d := range []string{".rw", "work", "tmp", ".old"} {
		if err := os.Mkdir(at(d), 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount("tmpfs", rw, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0755", lim.Disk)); err != nil {
		return fmt.Errorf("mount work tmpfs: %w", err)
	}
	for _, d := range []string{"work", "tmp"} {
		if err := os.Mkdir(filepath.Join(rw, d), 0o755); err != nil {
			return err
		}
		if err := unix.Mount(filepath.Join(rw, d), at(d), "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", d, err)
		}
	}
	if err := unix.Unmount(rw, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount %s: %w", rw, err)
	}

	if err := unix.PivotRoot(newRoot, at(".old")); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Unmount("/.old", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the old root: %w", err)
	}
	for _, d := range []string{"/.old", "/.rw"} {
		if err := os.Remove(d); err != nil {
			return err
		}
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("make / read-only: %w", err)
	}
	// No nested user namespaces: they would give start capabilities
	// (inside, but still kernel surface).
	os.WriteFile("/proc/sys/user/max_user_namespaces", []byte("0"), 0)
	return nil
}

// bindOrLink makes dst like src: the same symlink, or a read-only bind
// mount of the file or directory. A missing src is skipped.
func bindOrLink(src, dst string) error {
	info, err := os.Lstat(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	}
	if info.IsDir() {
		err = os.Mkdir(dst, 0o755)
	} else {
		err = os.WriteFile(dst, nil, 0o644)
	}
	if err != nil {
		return err
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	// A bind remount must keep the flags the kernel locked on src's mount.
	var fs unix.Statfs_t
	if err := unix.Statfs(dst, &fs); err != nil {
		return err
	}
	keep := uintptr(fs.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	flags := unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | keep
	if !strings.HasPrefix(src, "/dev/") {
		flags |= unix.MS_NODEV
	}
	if err := unix.Mount("", dst, "", flags, ""); err != nil {
		return fmt.Errorf("make %s read-only: %w", src, err)
	}
	return nil
}
