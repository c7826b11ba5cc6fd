package cgroupcpu

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/primitives/cgroup"
	"github.com/containers-underneath/lab/primitives/op"
)

// Facts are what the self-check reads of linux_yuan, in one go per check:
// `check --record` keeps them, and `lab grade` grades them again on any
// machine (the paths are the checked machine's).
type Facts struct {
	Err     string // no cgroups to look at
	Paths   Paths
	Exists  map[string]bool // of Paths.Dir, Cpuacct, Memory
	Enabled []string        // v2: the parent's cgroup.subtree_control
	Limit   *cgroup.CPULimit
	// IDs are what the cap covers, from ProcsFile: thread ids on v1
	// (tasks), process ids on v2.
	IDs     []int
	Mem     *cgroup.MemoryStats
	ReadErr map[string]string // what could not be read, by what
}

func readFacts(s setup) Facts {
	if s.err != nil {
		return Facts{Err: s.err.Error()}
	}
	p := s.p
	f := Facts{Paths: p, Exists: map[string]bool{}, ReadErr: map[string]string{}}
	for _, d := range []string{p.Dir, p.Cpuacct, p.Memory} {
		if d != "" {
			f.Exists[d] = exists(d)
		}
	}
	note := func(what string, err error) { f.ReadErr[what] = err.Error() }
	if p.Version == 2 {
		on, err := readFields(p.SubtreeControl)
		if err != nil {
			note("subtree_control", err)
		}
		f.Enabled = on
	}
	if !f.Exists[p.Dir] {
		return f
	}
	if lim, err := s.g.CPULimit(); err != nil {
		note("cap", err)
	} else {
		f.Limit = &lim
	}
	if ids, err := readIDs(p.ProcsFile); err != nil {
		note("procs", err)
	} else {
		f.IDs = ids
	}
	if p.Memory != "" && f.Exists[p.Memory] {
		if m, err := s.g.Memory(); err != nil {
			note("memory", err)
		} else {
			f.Mem = &m
		}
	}
	return f
}

// facts reads the group through the probe, once per check.
func facts(p *engine.Probe, s setup) Facts {
	f, err := engine.ObserveJSON(p, "cgroup-cpu group", func() (Facts, error) { return readFacts(s), nil })
	if err != nil {
		return Facts{Err: err.Error()}
	}
	return f
}

// Measured is the self-check's own measurement of what the cap covers.
type Measured struct {
	Percent float64
	Window  time.Duration
}

// measure measures through the probe, once per check: two periods to let a
// fresh write's extra quota pass (see sampleGroup), then checkWindow.
func measure(p *engine.Probe, f Facts) (Measured, error) {
	return engine.ObserveJSON(p, "cgroup-cpu measured", func() (Measured, error) {
		in := listen()
		defer in.stop()
		if f.Limit != nil && f.Limit.Quota != cgroup.Unlimited {
			in.wait(min(2*time.Duration(f.Limit.Period)*time.Microsecond, time.Second))
		}
		var use float64
		var cut bool
		var err error
		if f.Paths.Version == 1 {
			use, cut, err = in.sampleThreads(f.IDs, checkWindow)
		} else {
			use, cut, err = in.sampleProcs(f.IDs, checkWindow)
		}
		if err == nil && cut {
			err = errCut
		}
		return Measured{Percent: use, Window: checkWindow}, err
	})
}

// errCut is a measurement Ctrl-C ended before its window was up.
var errCut = errors.New("the measurement was interrupted (Ctrl-C)")

// items are the graded self-check of the lesson's end state (cap 20%,
// memory 300 MiB with swap equal). Each failure names its cause and the
// command that fixes it: the common mistakes are the quota echoed into the
// period file, a period other than 100000, nothing moved in, and on v2 the
// controller not enabled in the parent's cgroup.subtree_control.
//
// The document caps at 30% first and changes it to 20% later: a student who
// stopped after the 30% exercise passes cap30 and is told that the 20% is
// next, not failed for a wrong quota.
func items(s setup) []engine.Item {
	return []engine.Item{
		groupItem(s),
		controllersItem(s),
		cap30Item(s),
		quotaItem(s, Quota20),
		periodItem(s, Quota20),
		procsItem(s),
		holdsItem(s, Quota20),
		memoryItem(s),
		oomItem(s),
	}
}

// textPaths are the paths item texts name: this machine's, or v2's usual
// ones where this machine has no cgroups (an instructor grading records).
func textPaths(s setup) Paths {
	if s.err == nil {
		return s.p
	}
	l := &cgroup.Layout{Root: cgroup.DefaultRoot, Mode: cgroup.ModeV2, Mounts: []cgroup.Mount{
		{Point: cgroup.DefaultRoot, FSType: "cgroup2", Controllers: []string{"cpu", "memory"}}}}
	g, _ := cgroup.New(l, Group)
	return pathsOf(l, g)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// eval is an item's Eval on the facts: f.Err and a missing group are
// answered here for every item that needs the group.
func eval(s setup, needGroup bool, fn func(f Facts) engine.Verdict) func(*engine.Probe) engine.Verdict {
	return func(p *engine.Probe) engine.Verdict {
		f := facts(p, s)
		if f.Err != "" {
			return engine.Miss(f.Err, "")
		}
		if needGroup && !f.Exists[f.Paths.Dir] {
			return engine.Miss("no "+f.Paths.Dir, "mkdir %s", f.Paths.Dir)
		}
		return fn(f)
	}
}

func groupItem(s setup) engine.Item {
	return engine.Item{ID: "group", Text: fmt.Sprintf("cgroup %s exists (%s)", Group, textPaths(s).Dir),
		Eval: eval(s, true, func(Facts) engine.Verdict { return engine.Pass() })}
}

// controllersItem: on v2 a child gets a controller's files only if the
// parent lists it in cgroup.subtree_control. On v1 each controller is a
// hierarchy of its own and the cap needs the group in the cpu one only: the
// document's `cd /sys/fs/cgroup/cpu && mkdir linux_yuan` is all of it, even
// where cpuacct is mounted apart (it only counts) and memory has its own
// item.
func controllersItem(s setup) engine.Item {
	tp := textPaths(s)
	text := fmt.Sprintf("%s are enabled for the children of %s (cgroup.subtree_control)", strings.Join(tp.Controllers, " and "), filepath.Dir(tp.SubtreeControl))
	if tp.Version == 1 {
		text = fmt.Sprintf("%s is in the cpu hierarchy, which the cap needs (v1: one tree per controller)", tp.Dir)
	}
	return engine.Item{ID: "controllers", Text: text, Eval: eval(s, false, func(f Facts) engine.Verdict {
		p := f.Paths
		if p.Version == 1 {
			if !f.Exists[p.Dir] {
				return engine.Miss("no "+p.Dir, "mkdir %s", p.Dir)
			}
			if _, miss := limitOf(f); miss != nil {
				return *miss
			}
			return engine.Pass()
		}
		if e, ok := f.ReadErr["subtree_control"]; ok {
			return engine.Miss(e, "")
		}
		var missing, hints []string
		for _, c := range p.Controllers {
			if !slices.Contains(f.Enabled, c) {
				missing = append(missing, c)
				hints = append(hints, fmt.Sprintf("echo +%s > %s", c, p.SubtreeControl))
			}
		}
		if len(missing) == 0 {
			return engine.Pass()
		}
		m := strings.Join(missing, "/")
		return engine.Miss(fmt.Sprintf("%s lists %q: without %s, %s has no %s files and no %s limit applies",
			p.SubtreeControl, strings.Join(f.Enabled, " "), m, Group, m, m), "%s", strings.Join(hints, " && "))
	})}
}

// limitOf is the cap read back, or why there is none: on v2 no cpu.max
// means cpu is not enabled for the group.
func limitOf(f Facts) (cgroup.CPULimit, *engine.Verdict) {
	if f.Limit != nil {
		return *f.Limit, nil
	}
	p := f.Paths
	v := engine.Miss(f.ReadErr["cap"], "")
	if p.Version == 2 && !slices.Contains(f.Enabled, "cpu") {
		v = engine.Miss(fmt.Sprintf("%s has no cpu.max: the cpu controller is not enabled for it", Group), "echo +cpu > %s", p.SubtreeControl)
	}
	return cgroup.CPULimit{}, &v
}

func pctOf(quota, period int64) string {
	return strconv.FormatFloat(float64(quota)*100/float64(period), 'g', 4, 64) + "%"
}

// capCmd is the command that sets quota with the standard period.
func capCmd(p Paths, quota int64) string {
	if p.Version == 2 {
		return fmt.Sprintf("echo \"%d %d\" > %s", quota, Period, p.QuotaFile)
	}
	return fmt.Sprintf("echo %d > %s", quota, p.QuotaFile)
}

// docCap is the document's cap the group is at, 30% or 20% of one CPU
// with the standard period, or 0.
func docCap(f Facts) int64 {
	if f.Limit == nil || f.Limit.Period != Period {
		return 0
	}
	if q := f.Limit.Quota; q == Quota30 || q == Quota20 {
		return q
	}
	return 0
}

// cap30Item is the document's first exercise, `echo 30000 >
// cpu.cfs_quota_us`: done when the quota is 30000, and still done once it
// was changed on to 20000.
func cap30Item(s setup) engine.Item {
	text := fmt.Sprintf("the document's first cap: %s of %s was set to %d µs, 30%% of one CPU (then 20000, below)", filepath.Base(textPaths(s).QuotaFile), Group, Quota30)
	return engine.Item{ID: "cap30", Text: text, Eval: eval(s, true, func(f Facts) engine.Verdict {
		lim, miss := limitOf(f)
		switch {
		case miss != nil:
			return *miss
		case lim.Quota == Quota30 || lim.Quota == Quota20:
			return engine.Pass()
		}
		return quotaMiss(f.Paths, lim, Quota30)
	})}
}

func quotaItem(s setup, quota int64) engine.Item {
	text := fmt.Sprintf("the quota of %s is %d µs per period (%s)", Group, quota, filepath.Base(textPaths(s).QuotaFile))
	if quota == Quota20 {
		text = fmt.Sprintf("the cap changed live to 20%%: the quota of %s is %d µs per period (%s; docker container update --cpu-quota %d)", Group, quota, filepath.Base(textPaths(s).QuotaFile), quota)
	}
	return engine.Item{ID: "quota", Text: text, Eval: eval(s, true, func(f Facts) engine.Verdict {
		lim, miss := limitOf(f)
		switch {
		case miss != nil:
			return *miss
		case lim.Quota == quota:
			return engine.Pass()
		case quota == Quota20 && lim.Quota == Quota30:
			// Where the student is, not a mistake: the 30% exercise is
			// done and the document's next step is this one.
			return engine.Miss(fmt.Sprintf("the quota is %d: the document's 30%% exercise is done; next, the document changes it to 20%%", Quota30), "%s", capCmd(f.Paths, quota))
		}
		return quotaMiss(f.Paths, lim, quota)
	})}
}

// quotaMiss says what is wrong with a quota that is not the one wanted.
func quotaMiss(p Paths, lim cgroup.CPULimit, quota int64) engine.Verdict {
	switch {
	case p.Version == 1 && lim.Quota == cgroup.Unlimited && lim.Period == quota:
		return engine.Miss(fmt.Sprintf("cpu.cfs_quota_us is -1 (no cap) and cpu.cfs_period_us is %d: the quota went into the period file", quota),
			"echo %d > %s && echo %d > %s", Period, p.PeriodFile, quota, p.QuotaFile)
	case lim.Quota == cgroup.Unlimited:
		none := "-1"
		if p.Version == 2 {
			none = "max"
		}
		return engine.Miss(fmt.Sprintf("%s says no cap (%s)", filepath.Base(p.QuotaFile), none), "%s", capCmd(p, quota))
	}
	return engine.Miss(fmt.Sprintf("the quota is %d (%s of one CPU)", lim.Quota, pctOf(lim.Quota, lim.Period)), "%s", capCmd(p, quota))
}

// periodItem: the quota means a share of one CPU only against its period;
// 20000 per 50000 is 40%.
func periodItem(s setup, quota int64) engine.Item {
	text := fmt.Sprintf("the period of %s is %d µs (%s), against which the quota counts", Group, Period, filepath.Base(textPaths(s).PeriodFile))
	return engine.Item{ID: "period", Text: text, Eval: eval(s, true, func(f Facts) engine.Verdict {
		p := f.Paths
		lim, miss := limitOf(f)
		if miss != nil {
			return *miss
		}
		if lim.Period == Period {
			return engine.Pass()
		}
		if quota == Quota20 && lim.Quota == Quota30 {
			quota = Quota30 // still at the document's first cap
		}
		fix := fmt.Sprintf("echo %d > %s", Period, p.PeriodFile)
		if p.Version == 2 {
			fix = capCmd(p, quota)
		}
		if p.Version == 1 && lim.Quota == cgroup.Unlimited && lim.Period == quota {
			return engine.Miss(fmt.Sprintf("cpu.cfs_period_us is %d: the quota was written to the period file", lim.Period), "%s", fix)
		}
		return engine.Miss(fmt.Sprintf("the period is %d, so a quota of %d is %s of one CPU, not %s", lim.Period, quota, pctOf(quota, lim.Period), pctOf(quota, Period)), "%s", fix)
	})}
}

// moveHint is how the workers get in, as the lesson does it.
func moveHint(p Paths) string {
	return fmt.Sprintf("pids=$(lab tool burn -c %d -t %s -d); for pid in $pids; do echo $pid >> %s; done", Workers, shortDuration(BurnTimeout), p.ProcsFile)
}

func procsItem(s setup) engine.Item {
	return engine.Item{ID: "procs", Text: fmt.Sprintf("processes are in %s (%s lists them)", Group, textPaths(s).ProcsFile), Eval: eval(s, true, func(f Facts) engine.Verdict {
		if e, ok := f.ReadErr["procs"]; ok {
			return engine.Miss(e, "")
		}
		if len(f.IDs) > 0 {
			return engine.Pass()
		}
		return engine.Miss(fmt.Sprintf("no process is in %s: the cap applies to nothing", Group), "%s", moveHint(f.Paths))
	})}
}

// holdsItem measures what the cap covers: the threads in the group (a v1
// tasks file lists threads, and `echo PID >> tasks` moves one: the Go
// runtime's other threads of the lab's workers stay outside and uncapped),
// the processes in it on v2. For the lesson's end (quota 20%) it also
// measures a group still at the document's first cap, 30%, against that
// cap: the behaviour is graded, and the quota item says what is next.
func holdsItem(s setup, quota int64) engine.Item {
	want := float64(quota) * 100 / Period
	text := fmt.Sprintf("the cap holds: what is in %s uses %g%% (±%g) of one CPU, measured", Group, want, Tolerance)
	if quota == Quota20 {
		text = fmt.Sprintf("the cap holds: what is in %s uses %g%% (±%g) of one CPU (30%% before the change), measured", Group, want, Tolerance)
	}
	return engine.Item{ID: "holds", Text: text, Eval: func(pr *engine.Probe) engine.Verdict {
		return eval(s, true, func(f Facts) engine.Verdict {
			lim, miss := limitOf(f)
			q := quota
			if quota == Quota20 && docCap(f) == Quota30 {
				q = Quota30
			}
			want := float64(q) * 100 / Period
			switch {
			case miss != nil:
				return *miss
			case lim.Quota != q || lim.Period != Period:
				return engine.Miss(fmt.Sprintf("the cap is not %g%% of one CPU yet", want), "fix the quota and period items above; then measure again")
			case len(f.IDs) == 0:
				return engine.Miss("nothing in "+Group+" to measure", "%s", moveHint(f.Paths))
			}
			m, err := measure(pr, f)
			if err != nil {
				return engine.Miss(err.Error(), "")
			}
			got := fmt.Sprintf("what is in %s used %s of one CPU over %v (the cap: %g%%)", Group, cgroup.FormatPercent(m.Percent), m.Window.Round(time.Millisecond), want)
			switch {
			case math.Abs(m.Percent-want) <= Tolerance:
				return engine.Pass()
			case m.Percent > want:
				burst := filepath.Join(f.Paths.Dir, "cpu.cfs_burst_us")
				if f.Paths.Version == 2 {
					burst = filepath.Join(f.Paths.Dir, "cpu.max.burst")
				}
				return engine.Miss(got+", more than the cap", "echo 0 > %s (a burst lets the group spend quota it saved while idle)", burst)
			}
			return engine.Miss(got+": not busy enough to show the cap (or the machine too busy to give it that much)", "%s", moveHint(f.Paths))
		})(pr)
	}}
}

// readIDs reads a tasks or cgroup.procs file.
func readIDs(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	var ids []int
	for _, f := range strings.Fields(string(b)) {
		id, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("failed to parse %s: %w", path, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// memFacts is the group's memory, or the verdict when there is none to read.
func memFacts(f Facts) (cgroup.MemoryStats, *engine.Verdict) {
	p := f.Paths
	if !f.Exists[p.Memory] {
		v := engine.Miss("no "+p.Memory, "mkdir %s", p.Memory)
		return cgroup.MemoryStats{}, &v
	}
	if f.Mem == nil {
		v := engine.Miss(f.ReadErr["memory"], "")
		return cgroup.MemoryStats{}, &v
	}
	return *f.Mem, nil
}

// memoryHint sets 300 MiB and memory+swap 300 MiB in an order the kernel
// takes from the current limit: v1 refuses memory above memsw at any
// moment, so memsw goes first unless the limit is above 300 MiB now.
func memoryHint(p Paths, cur int64) string {
	if p.Version == 2 {
		return fmt.Sprintf("echo %d > %s && echo 0 > %s", Mem300, filepath.Join(p.Memory, "memory.max"), filepath.Join(p.Memory, "memory.swap.max"))
	}
	mem := fmt.Sprintf("echo %d > %s", Mem300, filepath.Join(p.Memory, "memory.limit_in_bytes"))
	sw := fmt.Sprintf("echo %d > %s", Mem300, filepath.Join(p.Memory, "memory.memsw.limit_in_bytes"))
	if cur == cgroup.Unlimited || cur > Mem300 {
		return mem + " && " + sw
	}
	return sw + " && " + mem
}

func memoryItem(s setup) engine.Item {
	if textPaths(s).Memory == "" {
		return engine.Item{ID: "memory", Text: "memory of " + Group + " is limited to 300MiB", Eval: func(*engine.Probe) engine.Verdict {
			return engine.Verdict{Skip: "this machine offers no memory controller"}
		}}
	}
	text := fmt.Sprintf("memory of %s is limited to 300MiB, memory+swap to 300MiB (--memory 300m --memory-swap 300m)", Group)
	return engine.Item{ID: "memory", Text: text, Eval: eval(s, false, func(f Facts) engine.Verdict {
		m, miss := memFacts(f)
		if miss != nil {
			return *miss
		}
		// Swap 0: no swap accounting, nothing to cap beyond the memory.
		if m.Limit == Mem300 && (m.Swap == Mem300 || m.Swap == 0) {
			return engine.Pass()
		}
		return engine.Miss(fmt.Sprintf("memory %s, memory+swap %s", limitString(m.Limit), limitString(m.Swap)), "%s", memoryHint(f.Paths, m.Limit))
	})}
}

func hogCmd(p Paths, mib int) string {
	return fmt.Sprintf("bash -c 'echo $$ >> %s; exec lab tool memhog %d'", p.MemTasks, mib)
}

func oomItem(s setup) engine.Item {
	tp := textPaths(s)
	if tp.Memory == "" {
		return engine.Item{ID: "oom", Text: "a worker past the memory limit was OOM-killed", Eval: func(*engine.Probe) engine.Verdict {
			return engine.Verdict{Skip: "this machine offers no memory controller"}
		}}
	}
	text := fmt.Sprintf("a worker that went past the limit was OOM-killed in %s (oom_kill in %s)", Group, filepath.Base(tp.OOMFile))
	return engine.Item{ID: "oom", Text: text, Eval: eval(s, false, func(f Facts) engine.Verdict {
		m, miss := memFacts(f)
		if miss != nil {
			return *miss
		}
		if m.OOMKills > 0 {
			return engine.Pass()
		}
		return engine.Miss("oom_kill is 0: nothing in "+Group+" went past its limit yet", "%s", hogCmd(f.Paths, HogBig))
	})}
}

// Items for a run's steps only: they read what the run itself started.

func layoutItem(s setup) engine.Item {
	files := "cpu.cfs_quota_us, cpu.cfs_period_us, tasks"
	if s.p.Version == 2 {
		files = "cpu.max, cgroup.procs"
	}
	text := fmt.Sprintf("%s layout: the cpu controller is on cgroup v%d here, so the lesson uses the v%d files (%s)", s.l.Mode, s.p.Version, s.p.Version, files)
	return engine.Item{ID: "layout", Text: text, Eval: func(*engine.Probe) engine.Verdict { return engine.Pass() }}
}

func workersItem(s setup, r *run) engine.Item {
	return engine.Item{ID: "workers", Text: fmt.Sprintf("%d CPU workers are running, not in %s yet", Workers, Group), Eval: eval(s, true, func(f Facts) engine.Verdict {
		pids, err := r.workers()
		if err != nil {
			return engine.Miss(err.Error(), "")
		}
		if len(pids) != Workers {
			return engine.Miss(fmt.Sprintf("%d workers", len(pids)), "")
		}
		for _, pid := range pids {
			if !alive(pid) {
				return engine.Miss(fmt.Sprintf("worker %d is not running", pid), "")
			}
			if slices.Contains(f.IDs, pid) {
				return engine.Miss(fmt.Sprintf("worker %d is in %s already", pid, Group), "")
			}
		}
		return engine.Pass()
	})}
}

func limitItem(s setup, limit int64) engine.Item {
	return engine.Item{ID: "limit", Text: fmt.Sprintf("memory of %s is limited to %s (--memory 200m)", Group, cgroup.FormatBytes(uint64(limit))), Eval: eval(s, false, func(f Facts) engine.Verdict {
		m, miss := memFacts(f)
		if miss != nil {
			return *miss
		}
		if m.Limit != limit {
			return engine.Miss("memory limit "+limitString(m.Limit), "")
		}
		return engine.Pass()
	})}
}

// heldOrKilledItem: past the limit the kernel either keeps the group at it
// (pushing pages to swap) or, with nothing left to reclaim, kills.
func heldOrKilledItem(r *run) engine.Item {
	text := fmt.Sprintf("%s never held more than 200MiB: the %d MiB worker was held at the limit or OOM-killed", Group, HogMid)
	return engine.Item{ID: "held", Text: text, Eval: func(*engine.Probe) engine.Verdict {
		o, ok := r.hog(0)
		switch {
		case !ok:
			return engine.Miss("no memory worker ran", "")
		case !o.Res.OOMKilled && !o.Held():
			return engine.Miss(o.Res.String(), "")
		case o.Res.Peak > Mem200+Mem200/100:
			// 1% slack: the kernel lets a task the OOM killer picked charge
			// past the limit on its way out.
			return engine.Miss("peak "+cgroup.FormatBytes(o.Res.Peak), "")
		}
		return engine.Pass()
	}}
}

func fitItem(r *run) engine.Item {
	text := fmt.Sprintf("under 300MiB the %d MiB worker runs to the end; the %d MiB one is OOM-killed (swap cannot help: memory+swap is 300MiB too)", HogMid, HogBig)
	return engine.Item{ID: "fit", Text: text, Eval: func(*engine.Probe) engine.Verdict {
		mid, ok1 := r.hog(1)
		big, ok2 := r.hog(2)
		switch {
		case !ok1 || !ok2:
			return engine.Miss("the memory workers did not run", "")
		case mid.Res.Signal != 0 || mid.Res.Reached != HogMid:
			return engine.Miss(fmt.Sprintf("the %d MiB worker: %v", HogMid, mid.Res), "")
		case !big.Res.OOMKilled && !(big.Mem.Swap == 0 && big.Held()): // held is right only without swap accounting
			return engine.Miss(fmt.Sprintf("the %d MiB worker: %v", HogBig, big.Res), "")
		}
		return engine.Pass()
	}}
}

func (r *run) hog(i int) (hogOutcome, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i >= len(r.hogs) {
		return hogOutcome{}, false
	}
	return r.hogs[i], true
}

func goneItem(s setup, r *run) engine.Item {
	return engine.Item{ID: "gone", Text: fmt.Sprintf("%s is gone from every hierarchy, and every worker has exited", Group), Eval: eval(s, false, func(f Facts) engine.Verdict {
		for _, d := range s.g.Dirs() {
			if f.Exists[d] {
				return engine.Miss(d+" still exists", "%s", op.Join("rmdir", d))
			}
		}
		r.mu.Lock()
		pids := append([]int(nil), r.pids...)
		if r.master != nil {
			pids = append(pids, r.master.cmd.Process.Pid)
		}
		r.mu.Unlock()
		// Exit is asynchronous: the master notices its workers gone within
		// a tenth of a second.
		if err := waitGone(pids, 3*time.Second); err != nil {
			return engine.Miss(err.Error(), "kill %s", joinInts(pids, " "))
		}
		return engine.Pass()
	})}
}
