package cgroupcpu

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containers-underneath/lab/primitives/cgroup"
	"github.com/containers-underneath/lab/primitives/reexec"
	"golang.org/x/sys/unix"
)

// burndName is the background master of `lab tool burn -d`: like stress's
// parent process, it holds the workers (tied to it) and ends them after the
// timeout, on SIGTERM, or when they are all gone.
const burndName = "lab-burnd"

func init() { reexec.Register(burndName, burnd) }

// burnd runs in the re-executed master: argv is N TIMEOUT, fd 3 reports the
// workers' pids (or "error: ...") once they spin.
func burnd() {
	report := os.NewFile(3, "report")
	if len(os.Args) != 3 {
		fmt.Fprintln(report, "error: usage: lab-burnd N TIMEOUT")
		os.Exit(2)
	}
	n, err1 := strconv.Atoi(os.Args[1])
	timeout, err2 := time.ParseDuration(os.Args[2])
	if err1 != nil || err2 != nil || n < 1 {
		fmt.Fprintln(report, "error: bad arguments", os.Args[1:])
		os.Exit(2)
	}
	b, err := cgroup.StartBurner(n)
	if err != nil {
		fmt.Fprintf(report, "error: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintln(report, joinInts(b.Pids(), " "))
	report.Close()
	hold(b, timeout)
}

// hold keeps the workers until timeout (0: none), SIGINT/SIGTERM, or until
// every one of them is gone (killed from outside, as the lesson's teardown
// does), then stops and reaps them.
func hold(b *cgroup.Burner, timeout time.Duration) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	var expire <-chan time.Time
	if timeout > 0 {
		expire = time.After(timeout)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case <-sig:
			break loop
		case <-expire:
			break loop
		case <-tick.C:
			if allGone(b.Pids()) {
				break loop
			}
		}
	}
	b.Stop()
}

// master is a started lab-burnd and its workers.
type master struct {
	cmd  *exec.Cmd
	pids []int // the workers, not the master
	done chan struct{}
}

// startBurn starts n CPU workers under a background master. tied masters
// die with this process (a lab run); untied ones outlive it (`-d` in a
// shell), and stop after timeout.
func startBurn(n int, timeout time.Duration, tied bool) (*master, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("failed to start the CPU workers: %w", err)
	}
	defer r.Close()
	cmd := reexec.Command(burndName, strconv.Itoa(n), timeout.String())
	cmd.ExtraFiles = []*os.File{w}
	// Its own session: a Ctrl-C at the terminal reaches the lab (which then
	// cleans up in order), and `pids=$(...)` does not wait for it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	start := cmd.Start
	if tied {
		start = func() error { return reexec.StartTied(cmd) }
	}
	err = start()
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("failed to start the CPU workers: %w", err)
	}
	m := &master{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(m.done) }()
	line, _ := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "error: ") {
		m.stop()
		if line == "" {
			line = "the master exited before it was ready"
		}
		return nil, fmt.Errorf("failed to start the CPU workers: %s", strings.TrimPrefix(line, "error: "))
	}
	for _, f := range strings.Fields(line) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			m.stop()
			return nil, fmt.Errorf("failed to start the CPU workers: bad report %q", line)
		}
		m.pids = append(m.pids, pid)
	}
	noteStarted(append([]int{cmd.Process.Pid}, m.pids...)...)
	return m, nil
}

// stop kills the master; its workers get SIGKILL with it (PDEATHSIG).
// It waits for all of them; calling it again does nothing.
func (m *master) stop() error {
	if m == nil {
		return nil
	}
	m.cmd.Process.Kill()
	select {
	case <-m.done:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("the CPU workers' master %d did not exit", m.cmd.Process.Pid)
	}
	return waitGone(m.pids, 5*time.Second)
}

// started is every pid this process started for the lesson; transcripts
// show them as <pid>.
var started struct {
	sync.Mutex
	pids map[int]bool
}

func noteStarted(pids ...int) {
	started.Lock()
	defer started.Unlock()
	if started.pids == nil {
		started.pids = map[int]bool{}
	}
	for _, p := range pids {
		started.pids[p] = true
	}
}

func startedPids() map[int]bool {
	started.Lock()
	defer started.Unlock()
	m := map[int]bool{}
	for p := range started.pids {
		m[p] = true
	}
	return m
}

// alive reports whether pid runs; a zombie has ended (only its parent's
// wait is missing).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || len(s) < i+3 || s[i+2] != 'Z'
}

func allGone(pids []int) bool {
	for _, p := range pids {
		if alive(p) {
			return false
		}
	}
	return true
}

func waitGone(pids []int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for !allGone(pids) {
		if time.Now().After(deadline) {
			var left []int
			for _, p := range pids {
				if alive(p) {
					left = append(left, p)
				}
			}
			return fmt.Errorf("processes %v did not exit", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// interrupt listens for Ctrl-C (SIGINT, SIGTERM) over a whole measurement:
// one that lands between two of its waits, or while a file is read, still
// cuts the next wait at once, so the measurement ends within milliseconds
// of the key, not a window later.
type interrupt struct {
	sig chan os.Signal
	cut bool
}

func listen() *interrupt {
	in := &interrupt{sig: make(chan os.Signal, 1)}
	signal.Notify(in.sig, os.Interrupt, syscall.SIGTERM)
	return in
}

func (in *interrupt) stop() { signal.Stop(in.sig) }

// wait sleeps for d, cut short by the signal; it reports whether the
// measurement has been cut (by now or earlier).
func (in *interrupt) wait(d time.Duration) bool {
	if in.cut {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-in.sig:
		in.cut = true
	}
	return in.cut
}

// pause is one wait with its own listener.
func pause(d time.Duration) bool {
	in := listen()
	defer in.stop()
	return in.wait(d)
}

// sampleGroup is the group's CPU use over window as percent of one CPU,
// from the group's own accounting (cpuacct.usage, cpu.stat usage_usec): the
// number docker stats shows as CPU %. It starts two periods late: a write
// to the quota refills the group's runtime to a whole quota at once
// (tg_set_cfs_bandwidth), whatever the group used of the current period,
// so the period of a write may give one quota extra (+1 point over 3 s at
// 30%).
func sampleGroup(g cgroup.Group, window time.Duration) (pct float64, cut bool, err error) {
	in := listen()
	defer in.stop()
	if in.wait(settleTime(g)) {
		return 0, true, nil
	}
	u0, err := g.CPUUsage()
	if err != nil {
		return 0, false, err
	}
	t0 := time.Now()
	cut = in.wait(window)
	u1, err := g.CPUUsage()
	if err != nil {
		return 0, cut, err
	}
	return percent(u1-u0, time.Since(t0)), cut, nil
}

// settleTime is two of the group's periods when it is capped, at most 1 s.
func settleTime(g cgroup.Group) time.Duration {
	lim, err := g.CPULimit()
	if err != nil || lim.Quota == cgroup.Unlimited || lim.Period <= 0 {
		return 0
	}
	return min(2*time.Duration(lim.Period)*time.Microsecond, time.Second)
}

// sampleProcs is the CPU use of whole processes (every thread) over window,
// from the scheduler's nanosecond counters: what a load takes with or
// without a group around it. Processes that exit meanwhile count for what
// they used before.
func sampleProcs(pids []int, window time.Duration) (pct float64, cut bool, err error) {
	in := listen()
	defer in.stop()
	return in.sampleProcs(pids, window)
}

func (in *interrupt) sampleProcs(pids []int, window time.Duration) (pct float64, cut bool, err error) {
	c0, err := procsCPU(pids, nil)
	if err != nil {
		return 0, false, err
	}
	t0 := time.Now()
	cut = in.wait(window)
	c1, _ := procsCPU(pids, c0)
	var used time.Duration
	for pid, t := range c1 {
		used += t - c0[pid]
	}
	return percent(used, time.Since(t0)), cut, nil
}

// procsCPU reads the run time of each process as the sum of its threads'
// /proc/PID/task/TID/schedstat. With before set, a process that is gone
// keeps its earlier value; without it, every process must be there.
func procsCPU(pids []int, before map[int]time.Duration) (map[int]time.Duration, error) {
	return runTime(pids, "/proc/%d/task/*/schedstat", before)
}

// runTime sums the first field of the schedstat files glob (with the id
// put in) names for each id: the nanoseconds the scheduler ran them.
func runTime(ids []int, glob string, before map[int]time.Duration) (map[int]time.Duration, error) {
	out := map[int]time.Duration{}
	for _, id := range ids {
		files, err := filepath.Glob(strings.ReplaceAll(glob, "%d", strconv.Itoa(id)))
		if err == nil && len(files) == 0 {
			err = fmt.Errorf("process %d is not running", id)
		}
		var sum time.Duration
		for _, f := range files {
			b, rerr := os.ReadFile(f)
			if rerr != nil {
				continue // a thread that just ended
			}
			ns, perr := strconv.ParseInt(strings.Fields(string(b) + " 0")[0], 10, 64)
			if perr != nil {
				err = fmt.Errorf("failed to parse %s: %w", f, perr)
				break
			}
			sum += time.Duration(ns)
		}
		if err != nil {
			if before == nil {
				return nil, err
			}
			sum = before[id]
		}
		out[id] = sum
	}
	return out, nil
}

// sampleThreads is sampleProcs for single threads (the ids of a v1 tasks
// file): only what is in the group, not the rest of its processes.
func (in *interrupt) sampleThreads(tids []int, window time.Duration) (pct float64, cut bool, err error) {
	const glob = "/proc/%d/task/%d/schedstat"
	c0, err := runTime(tids, glob, nil)
	if err != nil {
		return 0, false, err
	}
	t0 := time.Now()
	cut = in.wait(window)
	c1, _ := runTime(tids, glob, c0)
	var used time.Duration
	for id, t := range c1 {
		used += t - c0[id]
	}
	return percent(used, time.Since(t0)), cut, nil
}

func percent(used, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return float64(used) * 100 / float64(wall)
}

// printStats prints one line the way `docker stats --no-stream` does.
func printStats(out io.Writer, name string, pct float64, procs int) {
	fmt.Fprintf(out, "%-13s %-9s %s\n", "NAME", "CPU %", "PIDS")
	fmt.Fprintf(out, "%-13s %-9s %d\n", name, cgroup.FormatPercent(pct), procs)
}

// hogOutcome is what happened to one memory hog, with the group's memory
// afterwards.
type hogOutcome struct {
	Res cgroup.HogResult
	Mem cgroup.MemoryStats
}

// Held reports a hog that asked for more than the limit and survived: the
// kernel kept it at the limit by pushing pages to swap.
func (o hogOutcome) Held() bool {
	return o.Res.Signal == 0 && o.Mem.Limit > 0 && int64(o.Res.Target)<<20 > o.Mem.Limit
}

// runHog runs a memory hog of mib MiB in g (move puts it there before it
// allocates; nil when it is born inside) and prints its progress every
// 50 MiB, then what happened and why.
func runHog(g cgroup.Group, mib int, move func(pid int) error, out io.Writer) (hogOutcome, error) {
	var o hogOutcome
	var before cgroup.MemoryStats
	if g != nil {
		var err error
		if before, err = g.Memory(); err != nil {
			return o, err
		}
	}
	h, err := cgroup.StartMemHog(mib, 10)
	if err != nil {
		return o, err
	}
	noteStarted(h.Pid)
	// On v2 the hog shares the group's CPU cap with the burners; a higher
	// weight gets it most of that share instead of a fifth.
	unix.Setpriority(unix.PRIO_PROCESS, h.Pid, -10)
	if move != nil {
		if err := move(h.Pid); err != nil {
			h.Stop()
			return o, err
		}
	}
	o.Res, err = h.Run(every50{out})
	if err != nil {
		return o, err
	}
	if g != nil {
		if o.Mem, err = g.Memory(); err != nil {
			return o, err
		}
		o.Res.OOMKills, o.Res.Peak = o.Mem.OOMKills, o.Mem.Peak
		o.Res.OOMKilled = o.Res.Signal == syscall.SIGKILL && o.Mem.OOMKills > before.OOMKills
	}
	fmt.Fprintln(out, explain(o, swapTotal()))
	return o, nil
}

// every50 passes the hog's "N MiB" lines for multiples of 50 only.
type every50 struct{ w io.Writer }

func (e every50) Write(p []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(p), "\n") {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(line), " MiB"))
		if err == nil && n%50 == 0 {
			io.WriteString(e.w, line)
		}
	}
	return len(p), nil
}

// explain says what happened to a hog and why, in one line.
func explain(o hogOutcome, swap uint64) string {
	r, m := o.Res, o.Mem
	limit := "its limit"
	if m.Limit > 0 {
		limit = "the " + cgroup.FormatBytes(uint64(m.Limit)) + " limit"
	}
	switch {
	case r.OOMKilled:
		why := "nothing more could be reclaimed, so the kernel killed the biggest task in the group"
		switch {
		case m.Swap > 0 && m.Swap == m.Limit:
			why = "memory+swap is capped at the same " + cgroup.FormatBytes(uint64(m.Swap)) + " (--memory-swap equal to --memory), so swap cannot take the rest"
		case swap == 0:
			why = "this machine has no swap to push the rest to, so the kernel killed the biggest task in the group"
		}
		return fmt.Sprintf("killed by the OOM killer after %d MiB (oom_kill %d): the group may use %s, and %s", r.Reached, r.OOMKills, cgroup.FormatBytes(uint64(m.Limit)), why)
	case r.Signal != 0:
		return fmt.Sprintf("killed by %v after %d MiB (oom_kill %d)", r.Signal, r.Reached, r.OOMKills)
	case o.Held():
		return fmt.Sprintf("reached %d MiB, held at %s: the %d MiB over it went to swap", r.Reached, limit, r.Target-int(m.Limit>>20))
	}
	if m.Limit <= 0 {
		return fmt.Sprintf("reached %d MiB: no memory limit applies to it", r.Reached)
	}
	return fmt.Sprintf("reached %d MiB: under %s, the kernel let it be", r.Reached, limit)
}

// swapTotal is the machine's swap in bytes (SwapTotal in /proc/meminfo).
func swapTotal() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "SwapTotal:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// ownMemoryGroup is the group this process is in for memory, when it is a
// direct child of the root (as linux_yuan is); nil otherwise. It reads
// /proc/self/cgroup: "4:memory:/linux_yuan" on v1, "0::/linux_yuan" on v2.
func ownMemoryGroup() (cgroup.Group, error) {
	l, err := detect()
	if err != nil {
		return nil, err
	}
	p, ok := l.Where("memory")
	if !ok {
		return nil, nil
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("failed to read /proc/self/cgroup: %w", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		v1 := p.Version == 1 && f[0] != "0" && slices.Contains(strings.Split(f[1], ","), "memory")
		v2 := p.Version == 2 && f[0] == "0"
		if !v1 && !v2 {
			continue
		}
		name := strings.TrimPrefix(f[2], "/")
		if name == "" || strings.Contains(name, "/") {
			return nil, nil
		}
		g, err := cgroup.New(l, name)
		if err != nil {
			return nil, nil
		}
		return g, nil
	}
	return nil, nil
}

func joinInts(ns []int, sep string) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, sep)
}

var errNoWorkers = errors.New("no CPU workers: the step that starts them did not run")
