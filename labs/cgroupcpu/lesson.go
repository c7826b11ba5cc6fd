// Package cgroupcpu is the cgroup-cpu lesson: a control group caps the CPU
// and the memory of the processes in it, after document 000 (linux_yuan,
// cpu.cfs_quota_us 30000, `stress -c 4`, docker's --cpu-quota and --memory).
//
// The group is the machine's, not the simulated host's (the host sees the
// machine's /sys/fs/cgroup), so the lesson claims it before making it and
// removes it, with every worker, whatever happens.
package cgroupcpu

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/primitives/cgroup"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/simhost"
)

//go:embed text/en.txt
var textEN string

// The document's names and numbers.
const (
	Group   = "linux_yuan"
	Workers = 4      // stress -c 4
	Period  = 100000 // µs, the kernel's default CFS period
	Quota30 = 30000  // echo 30000 > cpu.cfs_quota_us
	Quota20 = 20000  // docker container update --cpu-quota 20000
	Mem200  = 200 << 20
	Mem300  = 300 << 20
	// Memory hogs: one past 200 MiB, one that fits under 300 MiB, one past it.
	HogMid, HogBig = 250, 350
	// Tolerance of the measured cap, in percentage points of one CPU.
	Tolerance = 2.0
)

// BurnTimeout ends forgotten workers, as the document's `stress -t 20m`.
const BurnTimeout = 20 * time.Minute

// Measuring windows: the lesson's `lab tool stats`, and the self-check's
// own measurement. Tests shorten them.
var (
	window      = DefaultWindow
	checkWindow = 2 * time.Second
)

// DefaultWindow is the window of `lab tool stats` when -w is not given.
const DefaultWindow = 3 * time.Second

// detect finds the machine's cgroups; tests point it at a fake tree.
var detect = cgroup.DetectHost

// Lesson is cgroup-cpu.
var Lesson = &engine.Lesson{
	Name:      "cgroup-cpu",
	Sources:   "000 (docker01, linux_yuan, stress -c 4, docker --cpu-quota and --memory)",
	Topology:  simhost.Topology{Hosts: []simhost.HostSpec{{Name: "docker01"}}},
	Main:      "docker01",
	Needs:     []string{"netns"},
	Text:      engine.MustText(textEN),
	State:     state,
	Normalize: normalize,
	Cleanup:   cleanup,
	Build:     build,
}

func init() { engine.Register(Lesson) }

// setup is the machine's layout and the group on it, or why there is none.
type setup struct {
	l   *cgroup.Layout
	g   cgroup.Group
	p   Paths
	err error
}

// Paths are the files the lesson and its checks name, for the version in
// use. They are recorded with the check's facts, so a record made on one
// machine is graded by its own paths on another.
type Paths struct {
	Version int
	Dir     string // the group under the cpu controller: what people mkdir
	Cpuacct string // v1: the group in a cpuacct hierarchy of its own ("" if co-mounted)
	Memory  string // the group holding the memory files ("" without memory)
	// v2: the parent's cgroup.subtree_control and the controllers the
	// lesson enables there.
	SubtreeControl string
	Controllers    []string
	QuotaFile      string // cpu.cfs_quota_us (v1), cpu.max (v2)
	PeriodFile     string // cpu.cfs_period_us (v1), cpu.max (v2)
	ProcsFile      string // where the lesson moves pids: tasks (v1), cgroup.procs (v2)
	MemTasks       string // where a pid goes for the memory limit
	OOMFile        string // memory.oom_control (v1), memory.events (v2)
}

func newSetup() setup {
	l, err := detect()
	if err != nil {
		return setup{err: err}
	}
	g, err := cgroup.New(l, Group)
	if err != nil {
		return setup{l: l, err: err}
	}
	return setup{l: l, g: g, p: pathsOf(l, g)}
}

func pathsOf(l *cgroup.Layout, g cgroup.Group) Paths {
	dir := g.Dirs()[0]
	p := Paths{Version: g.Version(), Dir: dir}
	if p.Version == 2 {
		p.SubtreeControl = filepath.Join(filepath.Dir(dir), "cgroup.subtree_control")
		p.Controllers = []string{"cpu"}
		if m, ok := l.Where("memory"); ok && m.Version == 2 {
			p.Controllers = append(p.Controllers, "memory")
			p.Memory = dir
		}
		p.QuotaFile = filepath.Join(dir, "cpu.max")
		p.PeriodFile = p.QuotaFile
		p.ProcsFile = filepath.Join(dir, "cgroup.procs")
		p.MemTasks = p.ProcsFile
		p.OOMFile = filepath.Join(dir, "memory.events")
		return p
	}
	cpu, _ := l.Where("cpu")
	if a, ok := l.Where("cpuacct"); ok && a.Version == 1 && a.Mount != cpu.Mount {
		p.Cpuacct = filepath.Join(a.Dir, Group)
	}
	if m, ok := l.Where("memory"); ok && m.Version == 1 {
		p.Memory = filepath.Join(m.Dir, Group)
		p.MemTasks = filepath.Join(p.Memory, "tasks")
		p.OOMFile = filepath.Join(p.Memory, "memory.oom_control")
	}
	p.QuotaFile = filepath.Join(dir, "cpu.cfs_quota_us")
	p.PeriodFile = filepath.Join(dir, "cpu.cfs_period_us")
	p.ProcsFile = filepath.Join(dir, "tasks")
	return p
}

// run is what one world's steps share: the claim, the workers, the last
// measurement and what the memory hogs came to.
type run struct {
	mu       sync.Mutex
	claim    *claim
	master   *master
	pids     []int
	measured string // the last CPU % measured, as a tolerance band
	hogs     []hogOutcome
}

var runs = struct {
	sync.Mutex
	m map[string]*run
}{m: map[string]*run{}}

func runOf(world string) *run {
	runs.Lock()
	defer runs.Unlock()
	r, ok := runs.m[world]
	if !ok {
		r = &run{}
		runs.m[world] = r
	}
	return r
}

func takeRun(world string) *run {
	runs.Lock()
	defer runs.Unlock()
	r := runs.m[world]
	delete(runs.m, world)
	return r
}

func (r *run) workers() ([]int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pids) == 0 {
		return nil, errNoWorkers
	}
	return append([]int(nil), r.pids...), nil
}

func build(env *engine.Env) *engine.Script {
	s := newSetup()
	if s.err != nil {
		return brokenScript(s)
	}
	r := runOf(env.WorldID())
	g, p := s.g, s.p
	do := engine.Do

	create := []engine.Action{do(claimOp(env, r, s))}
	for _, o := range g.Create() {
		create = append(create, do(o))
	}
	create = append(create, do(lsOp(p.Dir)))

	cap30 := []engine.Action{}
	if p.Version == 1 {
		// The document writes only the quota; the period is the default.
		cap30 = append(cap30, do(catOp(p.PeriodFile)))
		for _, o := range g.SetCPU(Quota30, 0) {
			cap30 = append(cap30, do(o))
		}
	} else {
		for _, o := range g.SetCPU(Quota30, Period) {
			cap30 = append(cap30, do(o))
		}
	}
	cap30 = append(cap30, do(moveOp(r, g)), do(catOp(p.ProcsFile)), do(statsGroupOp(r, g)))

	cap20 := []engine.Action{}
	for _, o := range g.SetCPU(Quota20, 0) {
		cap20 = append(cap20, do(o))
	}
	cap20 = append(cap20, do(statsGroupOp(r, g)))

	mem200 := memActions(g, Mem200, 0)
	mem200 = append(mem200, do(hogOp(r, s, HogMid)), do(oomOp(p)))
	mem300 := memActions(g, Mem300, Mem300)
	mem300 = append(mem300, do(hogOp(r, s, HogMid)), do(hogOp(r, s, HogBig)), do(oomOp(p)))

	var layout []engine.Action
	for _, o := range s.l.ShowOps() {
		layout = append(layout, do(o))
	}
	return &engine.Script{
		Steps: []engine.Step{
			{ID: "layout", Actions: layout, Extra: []engine.Item{layoutItem(s)}},
			{ID: "create", Actions: create, Verify: []string{"group", "controllers"}},
			{ID: "burn", Actions: []engine.Action{
				do(burnOp(r)),
				do(echoPidsOp(r)),
				do(statsPidsOp(r)),
			}, Extra: []engine.Item{workersItem(s, r)}},
			{ID: "cap30", Actions: cap30, Verify: []string{"period", "procs"},
				Extra: []engine.Item{quotaItem(s, Quota30), holdsItem(s, Quota30)}},
			{ID: "cap20", Actions: cap20, Verify: []string{"quota", "period", "procs", "holds"}},
			{ID: "mem200", Actions: mem200, Extra: []engine.Item{limitItem(s, Mem200), heldOrKilledItem(r)}},
			{ID: "mem300", Actions: mem300, Verify: []string{"memory", "oom"}, Extra: []engine.Item{fitItem(r)}},
		},
		Items: items(s),
		Teardown: engine.Step{ID: "teardown", Actions: teardownActions(g),
			Extra: []engine.Item{goneItem(s, r)}},
	}
}

// brokenScript is the lesson on a machine without usable cgroups: one step
// that says why, and the items (which then say it too, or grade a record
// made elsewhere).
func brokenScript(s setup) *engine.Script {
	return &engine.Script{Steps: []engine.Step{{ID: "layout", Actions: []engine.Action{
		engine.Do(op.Op{Cmd: "mount -t cgroup2; mount -t cgroup", Do: func(io.Writer) error { return s.err }}),
	}}}, Items: items(s)}
}

func teardownActions(g cgroup.Group) []engine.Action {
	acts := []engine.Action{engine.Do(g.Kill())}
	for _, o := range g.Remove() {
		acts = append(acts, engine.Do(o))
	}
	return acts
}

// claimOp checks that no linux_yuan exists and, for a run, claims the name
// before anything is made (see claim.go).
func claimOp(env *engine.Env, r *run, s setup) op.Op {
	return op.Op{Cmd: "test ! -e " + op.Quote(s.p.Dir), Do: func(io.Writer) error {
		c, err := claimGroup(s.g, s.p)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.claim = c
		r.mu.Unlock()
		return writeRecord(env.WorkDir(), c.enabled)
	}}
}

func lsOp(dir string) op.Op {
	return op.Op{Cmd: op.Join("ls", dir), Do: func(out io.Writer) error {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("failed to list %s: %w", dir, err)
		}
		for _, e := range ents {
			fmt.Fprintln(out, e.Name())
		}
		return nil
	}}
}

func catOp(path string) op.Op {
	return op.Op{Cmd: op.Join("cat", path), Do: func(out io.Writer) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("failed to read %s: %w", path, err)
		}
		_, err = out.Write(b)
		return err
	}}
}

// burnOp is `stress -c 4 -t 20m` with the lab's own workers, detached so
// that the shell gets their pids back.
func burnOp(r *run) op.Op {
	return op.Op{Cmd: fmt.Sprintf("pids=$(lab tool burn -c %d -t %s -d)", Workers, shortDuration(BurnTimeout)), Do: func(io.Writer) error {
		m, err := startBurn(Workers, BurnTimeout, true)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.master, r.pids = m, m.pids
		r.mu.Unlock()
		return nil
	}}
}

func echoPidsOp(r *run) op.Op {
	return op.Op{Cmd: "echo $pids", Do: func(out io.Writer) error {
		pids, err := r.workers()
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(out, joinInts(pids, " "))
		return err
	}}
}

// windowFlag is the -w of `lab tool stats`, shown only when not the default.
func windowFlag() string {
	if window == DefaultWindow {
		return ""
	}
	return " -w " + window.String()
}

func statsPidsOp(r *run) op.Op {
	return op.Op{Cmd: "lab tool stats" + windowFlag() + " $pids", Do: func(out io.Writer) error {
		pids, err := r.workers()
		if err != nil {
			return err
		}
		pct, cut, err := sampleProcs(pids, window)
		if err != nil || cut {
			return err
		}
		printStats(out, "processes", pct, len(pids))
		r.mu.Lock()
		r.measured = band(pct)
		r.mu.Unlock()
		return nil
	}}
}

// statsGroupOp measures from the group's own accounting: docker stats.
func statsGroupOp(r *run, g cgroup.Group) op.Op {
	return op.Op{Cmd: "lab tool stats" + windowFlag() + " " + Group, Do: func(out io.Writer) error {
		pct, cut, err := sampleGroup(g, window)
		if err != nil || cut {
			return err
		}
		procs, err := g.Procs()
		if err != nil {
			return err
		}
		printStats(out, Group, pct, len(procs))
		r.mu.Lock()
		r.measured = band(pct)
		r.mu.Unlock()
		return nil
	}}
}

// moveOp moves every worker in, as the document's four `echo PID >> tasks`.
// On v1 a pid goes into each hierarchy whose controller should see it: cpu
// for the cap, cpuacct (when mounted apart) for the accounting.
func moveOp(r *run, g cgroup.Group) op.Op {
	var body []string
	for _, o := range g.AddProcFor(0, "cpu", "cpuacct") {
		body = append(body, "echo $pid "+strings.TrimPrefix(o.Cmd, "echo 0 "))
	}
	return op.Op{Cmd: "for pid in $pids; do " + strings.Join(body, "; ") + "; done", Do: func(io.Writer) error {
		pids, err := r.workers()
		if err != nil {
			return err
		}
		for _, pid := range pids {
			if err := op.Run(io.Discard, g.AddProcFor(pid, "cpu", "cpuacct")...); err != nil {
				return err
			}
		}
		return nil
	}}
}

// memActions set the limit (docker's --memory) and memory+swap
// (--memory-swap). A kernel without swap accounting has no memsw file:
// that is said, and the memory limit alone still holds.
func memActions(g cgroup.Group, limit, swap int64) []engine.Action {
	ops, err := g.SetMemory(limit, swap)
	if err != nil {
		return []engine.Action{engine.Do(op.Op{Cmd: "# memory limit", Do: func(io.Writer) error { return err }})}
	}
	var acts []engine.Action
	for _, o := range ops {
		do := o.Do
		o.Do = func(out io.Writer) error {
			err := do(out)
			if errors.Is(err, cgroup.ErrNoSwapAccounting) {
				fmt.Fprintf(out, "%v: memory+swap cannot be capped here; with no swap in use the memory limit alone holds\n", err)
				return nil
			}
			return err
		}
		acts = append(acts, engine.Do(o))
	}
	return acts
}

// hogOp allocates mib MiB inside the group: the shell moves itself in
// (echo $$), then becomes the hog, so it allocates nothing outside.
func hogOp(r *run, s setup, mib int) op.Op {
	move := s.g.AddProcFor(0, "memory")[0].Cmd
	move = "echo $$ " + strings.TrimPrefix(move, "echo 0 ")
	cmd := fmt.Sprintf("bash -c '%s; exec lab tool memhog %d'", move, mib)
	return op.Op{Cmd: cmd, Do: func(out io.Writer) error {
		o, err := runHog(s.g, mib, func(pid int) error {
			return op.Run(io.Discard, s.g.AddProcFor(pid, "memory")...)
		}, out)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.hogs = append(r.hogs, o)
		r.mu.Unlock()
		return nil
	}}
}

// oomOp: `grep -w oom_kill` prints the kill count (and not oom_kill_disable).
func oomOp(p Paths) op.Op {
	return op.Op{Cmd: op.Join("grep", "-w", "oom_kill", p.OOMFile), Do: func(out io.Writer) error {
		b, err := os.ReadFile(p.OOMFile)
		if err != nil {
			return fmt.Errorf("failed to read %s: %w", p.OOMFile, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "oom_kill" {
				_, err := fmt.Fprintln(out, line)
				return err
			}
		}
		return fmt.Errorf("no oom_kill line in %s", p.OOMFile)
	}}
}

// shortDuration prints whole minutes as stress takes them (20m).
func shortDuration(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// band is a measured CPU % as the tolerance band it falls in: what
// transcripts record. A value in no band is kept as it is, so a cap that
// did not hold shows up as a difference.
func band(p float64) string {
	for _, c := range []float64{Quota30 * 100 / Period, Quota20 * 100 / Period} {
		if math.Abs(p-c) <= Tolerance {
			return fmt.Sprintf("%g%% (±%g)", c, Tolerance)
		}
	}
	if p >= 50 {
		return "50%+ (uncapped)"
	}
	return cgroup.FormatPercent(p)
}

var (
	percentRe = regexp.MustCompile(`\b\d+\.\d\d%( *)`)
	numberRe  = regexp.MustCompile(`\b\d+\b`)
)

// normalize puts measured CPU % into their bands and the pids the lesson
// started into <pid>. The padding after a number goes too: 99.50% and
// 198.20% fill a table column differently.
func normalize(s string) string {
	s = percentRe.ReplaceAllStringFunc(s, func(m string) string {
		num := strings.TrimRight(m, " ")
		p, _ := strconv.ParseFloat(strings.TrimSuffix(num, "%"), 64)
		if len(num) < len(m) {
			return band(p) + " "
		}
		return band(p)
	})
	pids := startedPids()
	return numberRe.ReplaceAllStringFunc(s, func(m string) string {
		if n, _ := strconv.Atoi(m); pids[n] {
			return "<pid>"
		}
		return m
	})
}

// state is the group as transcripts record it: where it is, its cap, how
// many processes it holds, its memory limits, and the last measured use.
func state(env *engine.Env) (string, error) {
	s := newSetup()
	if s.err != nil {
		return "cgroups: " + s.err.Error() + "\n", nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "layout: %s, the cpu controller on cgroup v%d\n", s.l.Mode, s.p.Version)
	b.WriteString(settings(s))
	r := runOf(env.WorldID())
	r.mu.Lock()
	if r.measured != "" && exists(s.p.Dir) {
		fmt.Fprintf(&b, "measured: CPU %% %s\n", r.measured)
	}
	r.mu.Unlock()
	return b.String(), nil
}

// settings are the group's files as read back, without any measurement.
func settings(s setup) string {
	g, p := s.g, s.p
	var b strings.Builder
	var dirs []string
	for _, d := range g.Dirs() {
		if _, err := os.Stat(d); err == nil {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) == 0 {
		fmt.Fprintf(&b, "%s: absent\n", Group)
		return b.String()
	}
	fmt.Fprintf(&b, "%s: %s\n", Group, strings.Join(dirs, " "))
	if p.Version == 2 {
		on, _ := readFields(p.SubtreeControl)
		var mine []string
		for _, c := range p.Controllers {
			if slices.Contains(on, c) {
				mine = append(mine, c)
			}
		}
		sort.Strings(mine)
		fmt.Fprintf(&b, "enabled in %s: %s\n", p.SubtreeControl, strings.Join(mine, " "))
	}
	if lim, err := g.CPULimit(); err == nil {
		if lim.Quota == cgroup.Unlimited {
			fmt.Fprintf(&b, "cpu cap: none (period %d µs)\n", lim.Period)
		} else {
			fmt.Fprintf(&b, "cpu cap: %d µs per %d µs (%g%% of one CPU)\n", lim.Quota, lim.Period, lim.Percent())
		}
	}
	if procs, err := g.Procs(); err == nil {
		fmt.Fprintf(&b, "processes in the cpu group: %d\n", len(procs))
	}
	if p.Memory != "" {
		if m, err := g.Memory(); err == nil {
			fmt.Fprintf(&b, "memory: limit %s, memory+swap %s, oom_kill %d\n", limitString(m.Limit), limitString(m.Swap), m.OOMKills)
		}
	}
	return b.String()
}

func limitString(n int64) string {
	switch {
	case n == cgroup.Unlimited:
		return "unlimited"
	case n == 0:
		return "not accounted"
	}
	return cgroup.FormatBytes(uint64(n))
}

// cleanup is the engine's last word on a world: stop the workers, then
// remove linux_yuan if it is this world's to remove.
//
//   - this process's run that claimed it: remove it, undo subtree_control;
//   - this process's run that never claimed it (another run had it): leave it;
//   - `clean` of the shell world or of a run that died: remove it unless a
//     live run holds the claim.
func cleanup(env *engine.Env) error {
	var errs []error
	r := takeRun(env.WorldID())
	var c *claim
	if r != nil {
		r.mu.Lock()
		c = r.claim
		errs = append(errs, r.master.stop())
		r.mu.Unlock()
	}
	s := newSetup()
	if s.err != nil {
		c.release()
		return errors.Join(errs...) // no cgroups: nothing of ours there
	}
	enabled := readRecord(env.WorkDir()).Enabled
	switch {
	case c != nil:
		enabled = c.enabled
	case strings.HasPrefix(env.WorldID(), fmt.Sprintf("run-%d-", os.Getpid())):
		return errors.Join(errs...)
	default:
		var err error
		if c, err = acquire(s.g); err != nil {
			fmt.Fprintf(os.Stderr, "left %s alone: %v\n", s.p.Dir, err)
			return errors.Join(errs...)
		}
	}
	defer c.release()
	errs = append(errs, destroy(s.g))
	if s.p.Version == 2 && len(enabled) > 0 {
		errs = append(errs, restore(s.p, enabled))
	}
	return errors.Join(errs...)
}
