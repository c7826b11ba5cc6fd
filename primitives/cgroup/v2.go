package cgroup

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containers-underneath/lab/primitives/op"
	"golang.org/x/sys/unix"
)

// v2Group is a child of the unified tree's root. Its controllers work only
// if the parent lists them in cgroup.subtree_control.
type v2Group struct {
	root        string // parent: the cgroup2 mount
	name        string
	controllers []string // enabled in the parent by Create: cpu, memory
}

func (g *v2Group) Name() string         { return g.name }
func (g *v2Group) Version() int         { return 2 }
func (g *v2Group) dir() string          { return filepath.Join(g.root, g.name) }
func (g *v2Group) Dirs() []string       { return []string{g.dir()} }
func (g *v2Group) file(f string) string { return filepath.Join(g.root, g.name, f) }

// Create enables each controller for the parent's children, then makes the
// group. Trap, the "no internal processes" rule: a non-root v2 group that
// holds processes cannot enable controllers for its children (EBUSY), which
// is what happens inside a container whose /sys/fs/cgroup is its own group.
func (g *v2Group) Create() []op.Op {
	var ops []op.Op
	ctl := filepath.Join(g.root, "cgroup.subtree_control")
	for _, c := range g.controllers {
		o := echo("+"+c, ctl, false)
		do := o.Do
		o.Do = func(out io.Writer) error {
			err := do(out)
			switch {
			case errors.Is(err, unix.EBUSY):
				return fmt.Errorf("%w: %s holds processes, and a v2 group with processes cannot enable controllers for its children (no internal processes rule)", err, g.root)
			case errors.Is(err, unix.ENOENT):
				return fmt.Errorf("%w: %s does not offer %s (see its cgroup.controllers; on a hybrid host it is bound to v1)", err, g.root, c)
			}
			return err
		}
		ops = append(ops, o)
	}
	return append(ops, mkdirOp(g.dir()))
}

// SetCPU writes cpu.max as "quota period"; "max" lifts the cap, and a lone
// quota keeps the period.
func (g *v2Group) SetCPU(quota, period int64) []op.Op {
	v := "max"
	if quota >= 0 {
		v = strconv.FormatInt(quota, 10)
	}
	if period != 0 {
		v += " " + strconv.FormatInt(period, 10)
	}
	return []op.Op{echo(v, g.file("cpu.max"), false)}
}

// AddProc writes cgroup.procs, which moves the whole process with its threads.
func (g *v2Group) AddProc(pid int) []op.Op {
	return []op.Op{echo(strconv.Itoa(pid), g.file("cgroup.procs"), false)}
}

// AddProcFor is AddProc: on v2 one group holds every controller.
func (g *v2Group) AddProcFor(pid int, _ ...string) []op.Op { return g.AddProc(pid) }

// SetMemory writes memory.max and memory.swap.max. v2 limits swap alone, so
// docker's --memory-swap (memory+swap) becomes swap.max = swap - limit.
func (g *v2Group) SetMemory(limit, swap int64) ([]op.Op, error) {
	if !slices.Contains(g.controllers, "memory") {
		return nil, fmt.Errorf("failed to limit memory of %q: the memory controller is not available in %s", g.name, g.root)
	}
	if swap > 0 && (limit < 0 || swap < limit) {
		return nil, fmt.Errorf("failed to limit memory of %q: memory+swap %d is below memory %d", g.name, swap, limit)
	}
	ops := []op.Op{echo(maxString(limit), g.file("memory.max"), false)}
	if swap == 0 {
		return ops, nil
	}
	path := g.file("memory.swap.max")
	sw := echo(maxString(swap-limit), path, false)
	if swap < 0 {
		sw = echo("max", path, false)
	}
	do := sw.Do
	sw.Do = func(out io.Writer) error {
		err := do(out)
		if errors.Is(err, fs.ErrNotExist) && exists(g.dir()) {
			return fmt.Errorf("%w: %w", err, ErrNoSwapAccounting)
		}
		return err
	}
	return append(ops, sw), nil
}

func maxString(n int64) string {
	if n < 0 {
		return "max"
	}
	return strconv.FormatInt(n, 10)
}

// Destroy kills what is left through cgroup.kill (Linux 5.14) or kill -9,
// then removes the group.
func (g *v2Group) Destroy() []op.Op {
	var ops []op.Op
	if pids, _ := g.Procs(); len(pids) > 0 {
		if path := g.file("cgroup.kill"); exists(path) {
			ops = append(ops, cgroupKillOp(g.dir(), path, g.Procs))
		} else {
			ops = append(ops, killOp(g.Dirs(), g.Procs))
		}
	}
	return append(ops, g.Remove()...)
}

// Kill prints cgroup.kill where the kernel has it (the group's own file
// when it exists, else Linux 5.14 or later) and falls back to kill -9 at Do
// time if the file turns out to be missing.
func (g *v2Group) Kill() op.Op {
	path := g.file("cgroup.kill")
	if exists(path) || !g.Exists() && kernelAtLeast(5, 14) {
		o := cgroupKillOp(g.dir(), path, g.Procs)
		do, fallback := o.Do, killOp(g.Dirs(), g.Procs).Do
		o.Do = func(out io.Writer) error {
			if g.Exists() && !exists(path) {
				return fallback(out)
			}
			return do(out)
		}
		return o
	}
	return killOp(g.Dirs(), g.Procs)
}

func (g *v2Group) Remove() []op.Op { return []op.Op{rmdirOp(g.dir())} }

func (g *v2Group) Exists() bool { return exists(g.dir()) }

func (g *v2Group) CPULimit() (CPULimit, error) {
	path := g.file("cpu.max")
	l := CPULimit{QuotaFile: path, PeriodFile: path}
	s, err := readString(path)
	if err != nil {
		return l, err
	}
	q, p, ok := strings.Cut(s, " ")
	if !ok {
		return l, fmt.Errorf("failed to parse %s: %q", path, s)
	}
	l.Quota = Unlimited
	if q != "max" {
		if l.Quota, err = strconv.ParseInt(q, 10, 64); err != nil {
			return l, fmt.Errorf("failed to parse %s: %w", path, err)
		}
	}
	if l.Period, err = strconv.ParseInt(p, 10, 64); err != nil {
		return l, fmt.Errorf("failed to parse %s: %w", path, err)
	}
	return l, nil
}

func (g *v2Group) Procs() ([]int, error) { return readProcs(g.file("cgroup.procs")) }

func (g *v2Group) Enabled(controller string) (bool, error) {
	path := filepath.Join(g.root, "cgroup.subtree_control")
	s, err := readString(path)
	if err != nil {
		return false, err
	}
	return slices.Contains(strings.Fields(s), controller), nil
}

func (g *v2Group) Memory() (MemoryStats, error) {
	var s MemoryStats
	var err error
	if s.Limit, err = readInt(g.file("memory.max")); err != nil {
		return s, err
	}
	if sw, err := readInt(g.file("memory.swap.max")); err == nil {
		s.Swap = Unlimited
		if sw >= 0 && s.Limit >= 0 {
			s.Swap = s.Limit + sw
		}
	}
	u, err := readInt(g.file("memory.current"))
	if err != nil {
		return s, err
	}
	s.Usage = uint64(u)
	if p, err := readInt(g.file("memory.peak")); err == nil { // Linux 5.19
		s.Peak = uint64(p)
	}
	// memory.events counts this group and its descendants.
	s.OOMKills, _ = readKey(g.file("memory.events"), "oom_kill")
	return s, nil
}

// CPUUsage reads usage_usec from cpu.stat, which v2 keeps even without the
// cpu controller enabled.
func (g *v2Group) CPUUsage() (time.Duration, error) {
	us, err := readKey(g.file("cpu.stat"), "usage_usec")
	return time.Duration(us) * time.Microsecond, err
}
