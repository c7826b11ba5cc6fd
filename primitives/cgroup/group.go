package cgroup

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containers-underneath/lab/primitives/op"
	"golang.org/x/sys/unix"
)

// Unlimited, as a quota or a limit, lifts the cap (v1 writes -1, v2 "max").
const Unlimited = -1

// Group is one named control group (the documents' linux_yuan) on either
// cgroup version. Mutating methods return ops to print and run in order;
// readers re-read the kernel so a lesson can check what it did.
type Group interface {
	Name() string
	Version() int // 1 or 2
	// Dirs are the group's directories: one per v1 hierarchy, one on v2.
	Dirs() []string

	// Create makes the group. v2 first enables the group's controllers in the
	// parent's cgroup.subtree_control, one op each; v1 makes one directory in
	// each hierarchy (cpu, cpuacct when mounted apart, memory).
	Create() []op.Op
	// SetCPU caps the group at quota µs of CPU time per period µs (30000 of
	// 100000 is 30% of one CPU). quota Unlimited lifts the cap; period 0
	// leaves the period as it is, as the documents do.
	SetCPU(quota, period int64) []op.Op
	// AddProc moves pid into the group (v1: every hierarchy of the group).
	AddProc(pid int) []op.Op
	// AddProcFor moves pid into the group for some controllers only: on v1
	// the tasks file of each of their hierarchies, once per hierarchy
	// (membership is per hierarchy there); on v2 the one cgroup.procs.
	AddProcFor(pid int, controllers ...string) []op.Op
	// SetMemory limits memory to limit bytes and memory+swap to swap bytes,
	// as docker's --memory and --memory-swap do. swap 0 leaves swap alone;
	// Unlimited lifts either. The v1 order is decided from the current
	// limit, so build the ops right before running them.
	SetMemory(limit, swap int64) ([]op.Op, error)
	// Destroy kills what is left in the group (only when something is), then
	// removes it. A missing group is success.
	Destroy() []op.Op
	// Kill kills every process in the group and waits until it is empty.
	// Unlike Destroy it decides at Do time, so it can be built before the
	// group holds anything; an empty or missing group is success.
	Kill() op.Op
	// Remove is the documents' `rmdir`, one per directory.
	Remove() []op.Op

	Exists() bool
	// CPULimit reads the cap back from the files that hold it.
	CPULimit() (CPULimit, error)
	// Procs lists the processes the CPU cap applies to (cgroup.procs; on v1
	// of the cpu hierarchy).
	Procs() ([]int, error)
	// Enabled says whether controller applies to the group: on v2 whether
	// the parent's cgroup.subtree_control lists it; on v1 whether the group
	// has a directory in its hierarchy.
	Enabled(controller string) (bool, error)
	Memory() (MemoryStats, error)
	// CPUUsage is the CPU time the group's tasks used, from the group's own
	// accounting (v1 cpuacct.usage, v2 cpu.stat usage_usec).
	CPUUsage() (time.Duration, error)
}

// CPULimit is a CPU cap as read back from the kernel.
type CPULimit struct {
	Quota      int64  // µs per period; Unlimited when uncapped
	Period     int64  // µs
	QuotaFile  string // v1 cpu.cfs_quota_us, v2 cpu.max
	PeriodFile string // v1 cpu.cfs_period_us, v2 cpu.max
}

// Percent is the cap as percent of one CPU; -1 when uncapped.
func (c CPULimit) Percent() float64 {
	if c.Quota < 0 || c.Period <= 0 {
		return -1
	}
	return float64(c.Quota) * 100 / float64(c.Period)
}

// MemoryStats is the memory side of a group as read back from the kernel.
type MemoryStats struct {
	Limit int64 // bytes; Unlimited when uncapped
	// Swap is memory+swap, as docker's --memory-swap (v1 memsw, v2 memory.max
	// plus memory.swap.max); Unlimited when uncapped, 0 without swap accounting.
	Swap     int64
	Usage    uint64 // bytes now
	Peak     uint64 // highest usage (v1 max_usage_in_bytes, v2 memory.peak); 0 if the kernel lacks it
	OOMKills uint64 // processes the OOM killer killed in the group (oom_kill)
}

// ErrNoSwapAccounting marks a missing memsw / memory.swap.max file: the kernel
// does not account swap per group (boot with swapaccount=1, or no swap support).
var ErrNoSwapAccounting = errors.New("swap accounting is off (boot with swapaccount=1)")

// New returns the group called name under the layout's controllers: v2 when
// the host is unified, v1 when the cpu controller lives on a v1 hierarchy
// (hybrid hosts included).
func New(l *Layout, name string) (Group, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("invalid cgroup name %q: one path element expected", name)
	}
	cpu, ok := l.Where("cpu")
	if !ok {
		return nil, fmt.Errorf("the cpu controller is not available under %s: on v2 it must be listed in cgroup.controllers", l.Root)
	}
	if cpu.Version == 2 {
		g := &v2Group{root: cpu.Dir, name: name, controllers: []string{"cpu"}}
		if m, ok := l.Where("memory"); ok && m.Version == 2 {
			g.controllers = append(g.controllers, "memory")
		}
		return g, nil
	}
	g := &v1Group{name: name, cpu: cpu.Dir}
	if a, ok := l.Where("cpuacct"); ok && a.Version == 1 {
		g.cpuacct = a.Dir
		g.cpuacctApart = a.Mount != cpu.Mount
	}
	if m, ok := l.Where("memory"); ok && m.Version == 1 {
		g.memory = m.Dir
	}
	return g, nil
}

// CheckCPU re-reads the kernel and reports, one joined error per problem,
// how the group differs from a cap of quota/period holding pids (or at least
// one process when pids is empty). These are the mistakes a hand-made group
// shows: the group missing, the controller not enabled (v2), the quota in
// the wrong file, a period that is not the one meant, nothing moved in.
func CheckCPU(g Group, quota, period int64, pids ...int) error {
	dir := g.Dirs()[0]
	if !g.Exists() {
		return fmt.Errorf("cgroup %q does not exist: mkdir %s", g.Name(), dir)
	}
	var errs []error
	if on, err := g.Enabled("cpu"); err != nil {
		errs = append(errs, err)
	} else if !on {
		parent := filepath.Dir(dir)
		return fmt.Errorf("the cpu controller is not enabled for %q: echo +cpu > %s",
			g.Name(), filepath.Join(parent, "cgroup.subtree_control"))
	}
	lim, err := g.CPULimit()
	if err != nil {
		errs = append(errs, err)
	} else {
		if lim.Quota != quota {
			e := fmt.Errorf("cpu quota of %q is %s in %s, want %s", g.Name(), quotaString(lim.Quota), lim.QuotaFile, quotaString(quota))
			if lim.Quota == Unlimited {
				e = fmt.Errorf("%w: was it written to another file?", e)
			}
			errs = append(errs, e)
		}
		if lim.Period != period {
			e := fmt.Errorf("cpu period of %q is %d in %s, want %d", g.Name(), lim.Period, lim.PeriodFile, period)
			if lim.Period == quota && lim.PeriodFile != lim.QuotaFile {
				e = fmt.Errorf("%w: the quota was written to %s", e, filepath.Base(lim.PeriodFile))
			}
			errs = append(errs, e)
		}
	}
	procs, err := g.Procs()
	switch {
	case err != nil:
		errs = append(errs, err)
	case len(pids) == 0 && len(procs) == 0:
		errs = append(errs, fmt.Errorf("no process is in %q: the cap applies to nothing", g.Name()))
	}
	for _, pid := range pids {
		if err == nil && !slices.Contains(procs, pid) {
			errs = append(errs, fmt.Errorf("process %d is not in %q", pid, g.Name()))
		}
	}
	return errors.Join(errs...)
}

func quotaString(q int64) string {
	if q < 0 {
		return "unlimited"
	}
	return strconv.FormatInt(q, 10)
}

// writeFile is the one write helper: `echo value > path` (or >> with appendTo),
// newline included as echo sends it. No O_CREAT: cgroup files exist or the
// kernel does not offer them, and a fake tree must not grow files silently.
func writeFile(path, value string, appendTo bool) error {
	flag := os.O_WRONLY | os.O_TRUNC
	if appendTo {
		flag = os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(path, flag, 0)
	if err == nil {
		_, err = f.WriteString(value + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is in the message already
	}
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("failed to write %q to %s: %w (run as root)", value, path, err)
	}
	return fmt.Errorf("failed to write %q to %s: %w", value, path, err)
}

// echo is the op for writeFile. A value with spaces is double-quoted as
// people type it: echo "30000 100000" > cpu.max.
func echo(value, path string, appendTo bool) op.Op {
	redir := ">"
	if appendTo {
		redir = ">>"
	}
	shown := op.Quote(value)
	if bare := strings.ReplaceAll(value, " ", ""); bare != value && bare != "" && op.Quote(bare) == bare {
		shown = `"` + value + `"`
	}
	return op.Op{
		Cmd: "echo " + shown + " " + redir + " " + op.Quote(path),
		Do:  func(io.Writer) error { return writeFile(path, value, appendTo) },
	}
}

// mkdirOp: `mkdir dir`; an existing group is success.
func mkdirOp(dir string) op.Op {
	return op.Op{Cmd: op.Join("mkdir", dir), Do: func(io.Writer) error {
		err := os.Mkdir(dir, 0o755)
		if err == nil || errors.Is(err, fs.ErrExist) {
			return nil
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("failed to create cgroup %s: %w (run as root)", dir, err)
		}
		return fmt.Errorf("failed to create cgroup %s: %w", dir, err)
	}}
}

// rmdirOp: `rmdir dir`; a missing group is success. rmdir of a cgroup with
// files in it is fine (they are the kernel's); with tasks in it, EBUSY. A
// task that was just killed may hold the group for a moment, so EBUSY is
// retried briefly.
func rmdirOp(dir string) op.Op {
	return op.Op{Cmd: op.Join("rmdir", dir), Do: func(io.Writer) error {
		deadline := time.Now().Add(2 * time.Second)
		for {
			err := unix.Rmdir(dir)
			switch {
			case err == nil || errors.Is(err, unix.ENOENT):
				return nil
			case errors.Is(err, unix.EBUSY) && time.Now().Before(deadline):
				time.Sleep(20 * time.Millisecond)
				continue
			case errors.Is(err, unix.EBUSY):
				return fmt.Errorf("failed to remove cgroup %s: %w (processes are still in it)", dir, err)
			}
			return fmt.Errorf("failed to remove cgroup %s: %w", dir, err)
		}
	}}
}

// killOp: `kill -9 $(cat dir/cgroup.procs ...)`, then wait until the group
// is empty.
func killOp(dirs []string, procs func() ([]int, error)) op.Op {
	files := make([]string, len(dirs))
	for i, d := range dirs {
		files[i] = op.Quote(filepath.Join(d, "cgroup.procs"))
	}
	return op.Op{Cmd: "kill -9 $(cat " + strings.Join(files, " ") + ")", Do: func(io.Writer) error {
		pids, err := notSelf(dirs[0], procs)
		if err != nil {
			return err
		}
		for _, pid := range pids {
			if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("failed to kill %d in %s: %w", pid, dirs[0], err)
			}
		}
		return waitEmpty(dirs[0], procs)
	}}
}

// cgroupKillOp: `echo 1 > dir/cgroup.kill` (v2, Linux 5.14) kills every
// process in the group at once; then wait until it is empty. A missing
// group is success.
func cgroupKillOp(dir, path string, procs func() ([]int, error)) op.Op {
	o := echo("1", path, false)
	do := o.Do
	o.Do = func(out io.Writer) error {
		if !exists(dir) {
			return nil
		}
		if _, err := notSelf(dir, procs); err != nil {
			return err
		}
		if err := do(out); err != nil {
			return err
		}
		return waitEmpty(dir, procs)
	}
	return o
}

// kernelAtLeast reports whether the running kernel is major.minor or newer.
func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	var ma, mi int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// notSelf refuses to empty a group that holds the lab itself.
func notSelf(dir string, procs func() ([]int, error)) ([]int, error) {
	pids, err := procs()
	if err == nil && slices.Contains(pids, os.Getpid()) {
		err = fmt.Errorf("failed to empty cgroup %s: the lab itself (pid %d) is in it", dir, os.Getpid())
	}
	return pids, err
}

// waitEmpty waits for killed tasks to leave the group (exit is asynchronous).
func waitEmpty(dir string, procs func() ([]int, error)) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids, err := procs()
		if err != nil || len(pids) == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("failed to empty cgroup %s: %v still in it", dir, pids)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readProcs reads a cgroup.procs or tasks file; a missing group has none.
func readProcs(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("failed to parse %s: %w", path, err)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

func readString(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("failed to read %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// readInt reads a number; "max" reads as Unlimited.
func readInt(path string) (int64, error) {
	s, err := readString(path)
	if err != nil {
		return 0, err
	}
	if s == "max" {
		return Unlimited, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("failed to parse %s: %w", path, err)
	}
	return n, nil
}

// readKey reads "key value" from a flat-keyed file (cpu.stat, memory.events,
// memory.oom_control).
func readKey(path, key string) (uint64, error) {
	s, err := readString(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("failed to parse %s in %s: %w", key, path, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("no %s in %s: %w", key, path, syscall.ENOENT)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
