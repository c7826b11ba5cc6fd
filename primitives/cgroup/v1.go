package cgroup

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/containers-underneath/lab/primitives/op"
)

// v1Group is a group on v1 hierarchies: one directory per hierarchy, each
// with its own membership (a pid echoed into cpu/linux_yuan/tasks is not in
// memory/linux_yuan until echoed there too).
type v1Group struct {
	name         string
	cpu          string // hierarchy dirs as typed, "" when not mounted
	cpuacct      string // same as cpu when co-mounted (cpu,cpuacct)
	cpuacctApart bool
	memory       string
}

// v1 reads an unlimited memory limit as the largest page-aligned number
// (9223372036854771712), not -1.
const v1Unlimited = 1 << 62

func (g *v1Group) Name() string { return g.name }
func (g *v1Group) Version() int { return 1 }

func (g *v1Group) Dirs() []string {
	dirs := []string{filepath.Join(g.cpu, g.name)}
	if g.cpuacctApart {
		dirs = append(dirs, filepath.Join(g.cpuacct, g.name))
	}
	if g.memory != "" {
		dirs = append(dirs, filepath.Join(g.memory, g.name))
	}
	return dirs
}

func (g *v1Group) cpuFile(f string) string { return filepath.Join(g.cpu, g.name, f) }
func (g *v1Group) memFile(f string) string { return filepath.Join(g.memory, g.name, f) }

func (g *v1Group) Create() []op.Op {
	var ops []op.Op
	for _, d := range g.Dirs() {
		ops = append(ops, mkdirOp(d))
	}
	return ops
}

// SetCPU writes the period first, then the quota: CFS bandwidth is
// quota/period, and -1 in cpu.cfs_quota_us means no cap. The kernel takes a
// quota of at least 1000 and a period of 1000 to 1000000.
func (g *v1Group) SetCPU(quota, period int64) []op.Op {
	var ops []op.Op
	if period != 0 {
		ops = append(ops, echo(strconv.FormatInt(period, 10), g.cpuFile("cpu.cfs_period_us"), false))
	}
	if quota < 0 {
		quota = -1
	}
	return append(ops, echo(strconv.FormatInt(quota, 10), g.cpuFile("cpu.cfs_quota_us"), false))
}

// AddProc appends to tasks as the document does. Trap: v1 tasks takes a
// thread id, so echoing a pid moves only that thread (cgroup.procs would move
// the whole process); fine for single-threaded stress workers, and the lab's
// own workers spin on their main thread, whose id is the pid.
func (g *v1Group) AddProc(pid int) []op.Op {
	var ops []op.Op
	for _, d := range g.Dirs() {
		ops = append(ops, echo(strconv.Itoa(pid), filepath.Join(d, "tasks"), true))
	}
	return ops
}

// SetMemory keeps the kernel's rule memory.limit_in_bytes <= memory.memsw.
// limit_in_bytes at every step: when memsw rises above the current limit it
// is written first, otherwise memory is lowered first and memsw after (runc's
// order). memsw exists only with swap accounting on.
func (g *v1Group) SetMemory(limit, swap int64) ([]op.Op, error) {
	if g.memory == "" {
		return nil, fmt.Errorf("failed to limit memory of %q: the memory controller is not mounted", g.name)
	}
	if limit < 0 {
		limit = -1
	}
	if swap < 0 {
		swap = -1
	}
	memsw := g.memFile("memory.memsw.limit_in_bytes")
	if limit == -1 && swap == 0 && exists(memsw) {
		swap = -1 // memory unlimited needs memsw unlimited first
	}
	if swap > 0 && (limit == -1 || swap < limit) {
		return nil, fmt.Errorf("failed to limit memory of %q: memory+swap %d is below memory %d", g.name, swap, limit)
	}
	mem := echo(strconv.FormatInt(limit, 10), g.memFile("memory.limit_in_bytes"), false)
	if swap == 0 {
		return []op.Op{mem}, nil
	}
	sw := echo(strconv.FormatInt(swap, 10), memsw, false)
	do := sw.Do
	sw.Do = func(out io.Writer) error {
		err := do(out)
		if errors.Is(err, fs.ErrNotExist) && !exists(memsw) {
			return fmt.Errorf("%w: %w", err, ErrNoSwapAccounting)
		}
		return err
	}
	cur, err := readInt(g.memFile("memory.limit_in_bytes"))
	if err != nil || cur >= v1Unlimited {
		cur = -1
	}
	if swap == -1 || (cur >= 0 && cur < swap) {
		return []op.Op{sw, mem}, nil
	}
	return []op.Op{mem, sw}, nil
}

// AddProcFor writes the tasks file of each hierarchy named: cpu for the
// cap, cpuacct for the accounting (one file when they are co-mounted),
// memory for the limit.
func (g *v1Group) AddProcFor(pid int, controllers ...string) []op.Op {
	var ops []op.Op
	var seen []string
	for _, c := range controllers {
		var h string
		switch c {
		case "cpu":
			h = g.cpu
		case "cpuacct":
			h = g.cpuacct
		case "memory":
			h = g.memory
		}
		if h == "" {
			err := fmt.Errorf("failed to move %d into %q: the %s controller is not mounted", pid, g.name, c)
			return []op.Op{{Cmd: "echo " + strconv.Itoa(pid) + " >> tasks", Do: func(io.Writer) error { return err }}}
		}
		if slices.Contains(seen, h) {
			continue
		}
		seen = append(seen, h)
		ops = append(ops, echo(strconv.Itoa(pid), filepath.Join(h, g.name, "tasks"), true))
	}
	return ops
}

func (g *v1Group) Destroy() []op.Op {
	var ops []op.Op
	if pids, _ := g.allProcs(); len(pids) > 0 {
		ops = append(ops, g.Kill())
	}
	return append(ops, g.Remove()...)
}

func (g *v1Group) Kill() op.Op { return killOp(g.Dirs(), g.allProcs) }

func (g *v1Group) Remove() []op.Op {
	dirs := g.Dirs()
	var ops []op.Op
	for i := len(dirs) - 1; i >= 0; i-- {
		ops = append(ops, rmdirOp(dirs[i]))
	}
	return ops
}

func (g *v1Group) allProcs() ([]int, error) {
	var all []int
	for _, d := range g.Dirs() {
		pids, err := readProcs(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			return nil, err
		}
		for _, p := range pids {
			if !slices.Contains(all, p) {
				all = append(all, p)
			}
		}
	}
	return all, nil
}

func (g *v1Group) Exists() bool {
	for _, d := range g.Dirs() {
		if !exists(d) {
			return false
		}
	}
	return true
}

func (g *v1Group) CPULimit() (CPULimit, error) {
	l := CPULimit{QuotaFile: g.cpuFile("cpu.cfs_quota_us"), PeriodFile: g.cpuFile("cpu.cfs_period_us")}
	var err error
	if l.Quota, err = readInt(l.QuotaFile); err != nil {
		return l, err
	}
	if l.Quota < 0 {
		l.Quota = Unlimited
	}
	l.Period, err = readInt(l.PeriodFile)
	return l, err
}

func (g *v1Group) Procs() ([]int, error) { return readProcs(g.cpuFile("cgroup.procs")) }

func (g *v1Group) Enabled(controller string) (bool, error) {
	var h string
	switch controller {
	case "cpu":
		h = g.cpu
	case "cpuacct":
		h = g.cpuacct
	case "memory":
		h = g.memory
	}
	return h != "" && exists(filepath.Join(h, g.name)), nil
}

func (g *v1Group) Memory() (MemoryStats, error) {
	var s MemoryStats
	if g.memory == "" {
		return s, fmt.Errorf("failed to read memory of %q: the memory controller is not mounted", g.name)
	}
	lim, err := readInt(g.memFile("memory.limit_in_bytes"))
	if err != nil {
		return s, err
	}
	s.Limit = v1Limit(lim)
	if sw, err := readInt(g.memFile("memory.memsw.limit_in_bytes")); err == nil {
		s.Swap = v1Limit(sw)
	}
	u, err := readInt(g.memFile("memory.usage_in_bytes"))
	if err != nil {
		return s, err
	}
	s.Usage = uint64(u)
	if p, err := readInt(g.memFile("memory.max_usage_in_bytes")); err == nil {
		s.Peak = uint64(p)
	}
	// oom_kill appeared in memory.oom_control with Linux 4.13.
	s.OOMKills, _ = readKey(g.memFile("memory.oom_control"), "oom_kill")
	return s, nil
}

func v1Limit(n int64) int64 {
	if n < 0 || n >= v1Unlimited {
		return Unlimited
	}
	return n
}

func (g *v1Group) CPUUsage() (time.Duration, error) {
	if g.cpuacct == "" {
		return 0, fmt.Errorf("failed to read CPU usage of %q: the cpuacct controller is not mounted", g.name)
	}
	n, err := readInt(filepath.Join(g.cpuacct, g.name, "cpuacct.usage"))
	return time.Duration(n), err
}
