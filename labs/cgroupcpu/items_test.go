package cgroupcpu

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/labs/labtest"
	"github.com/containers-underneath/lab/primitives/cgroup"
)

// useTree points the lesson at a fake cgroup tree under root, described by
// mountinfo lines, for the length of the test.
func useTree(t *testing.T, root, mountinfo string) {
	t.Helper()
	old := detect
	detect = func() (*cgroup.Layout, error) { return cgroup.Detect(root, strings.NewReader(mountinfo)) }
	t.Cleanup(func() { detect = old })
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeV2 is a unified host whose root enables subtree for its children;
// the group holds the files the kernel gives it for those controllers.
func fakeV2(t *testing.T, subtree string, group map[string]string) string {
	t.Helper()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"cgroup.controllers": "cpuset cpu io memory pids\n", "cgroup.subtree_control": subtree + "\n"})
	files := map[string]string{"cgroup.procs": "", "cgroup.controllers": subtree + "\n", "cpu.stat": "usage_usec 0\n"}
	if strings.Contains(subtree, "cpu") {
		files["cpu.max"] = "max 100000\n"
	}
	if strings.Contains(subtree, "memory") {
		files["memory.max"] = "max\n"
		files["memory.swap.max"] = "max\n"
		files["memory.current"] = "0\n"
		files["memory.events"] = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"
	}
	for k, v := range group {
		files[k] = v
	}
	writeFiles(t, filepath.Join(root, Group), files)
	useTree(t, root, fmt.Sprintf("30 1 0:27 / %s rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate\n", root))
	return root
}

// fakeV1 is a v1 host with cpu, cpuacct and memory mounted apart and the
// group made in each.
func fakeV1(t *testing.T, cpu map[string]string) string {
	t.Helper()
	root := t.TempDir()
	var mi strings.Builder
	for i, c := range []string{"cpu", "cpuacct", "memory"} {
		fmt.Fprintf(&mi, "%d 1 0:%d / %s/%s rw,relatime - cgroup cgroup rw,%s\n", 40+i, 40+i, root, c, c)
	}
	files := map[string]string{"cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n", "tasks": "", "cgroup.procs": ""}
	for k, v := range cpu {
		files[k] = v
	}
	writeFiles(t, filepath.Join(root, "cpu", Group), files)
	writeFiles(t, filepath.Join(root, "cpuacct", Group), map[string]string{"cpuacct.usage": "0\n", "tasks": "", "cgroup.procs": ""})
	writeFiles(t, filepath.Join(root, "memory", Group), map[string]string{
		"memory.limit_in_bytes": "314572800\n", "memory.memsw.limit_in_bytes": "314572800\n", "memory.usage_in_bytes": "0\n",
		"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n", "tasks": "", "cgroup.procs": "",
	})
	useTree(t, root, mi.String())
	return root
}

// grade runs the self-check on whatever tree the lesson sees.
func grade(t *testing.T) map[string]engine.Result {
	t.Helper()
	env := engine.Bind(Lesson, nil)
	r := engine.Grade(Lesson.Build(env), engine.NewProbe(env, env.Main()))
	byID := map[string]engine.Result{}
	for _, it := range r.Items {
		byID[it.ID] = it
	}
	return byID
}

type mistake struct {
	name   string
	item   string   // the item that must fail
	hint   string   // with this hint
	found  string   // and this in what it found
	passes []string // items unaffected by the mistake
}

func checkMistake(t *testing.T, c mistake, byID map[string]engine.Result) {
	t.Helper()
	got, ok := byID[c.item]
	if !ok {
		t.Fatalf("no item %s", c.item)
	}
	if got.OK {
		t.Fatalf("item %s passed", c.item)
	}
	if got.Hint != c.hint {
		t.Errorf("hint for %s = %q\n                 want %q (found: %s)", c.item, got.Hint, c.hint, got.Found)
	}
	if !strings.Contains(got.Found, c.found) {
		t.Errorf("item %s found %q, want it to say %q", c.item, got.Found, c.found)
	}
	labtest.Passing(t, byID, c.passes...)
}

// Each mistake of a hand-made group gets its own hint, on a fake tree of
// either version (no root needed).
func TestHintsOnFakeTrees(t *testing.T) {
	shortWindows(t, 50*time.Millisecond)
	self := fmt.Sprintf("%d\n", os.Getpid())
	for _, tc := range []struct {
		mistake
		tree func(t *testing.T) string
	}{
		{mistake{name: "v2 cpu not enabled in subtree_control", item: "controllers", found: `lists "memory": without cpu`,
			passes: []string{"group", "memory"}},
			func(t *testing.T) string {
				return fakeV2(t, "memory", map[string]string{"cgroup.procs": self, "memory.max": "314572800\n", "memory.swap.max": "0\n"})
			}},
		{mistake{name: "v2 period mismatch", item: "period", found: "the period is 50000, so a quota of 20000 is 40% of one CPU, not 20%",
			passes: []string{"group", "controllers", "quota", "procs"}},
			func(t *testing.T) string {
				return fakeV2(t, "cpu memory", map[string]string{"cgroup.procs": self, "cpu.max": "20000 50000\n"})
			}},
		{mistake{name: "v2 no process moved in", item: "procs", found: "no process is in linux_yuan",
			passes: []string{"group", "controllers", "quota", "period"}},
			func(t *testing.T) string {
				return fakeV2(t, "cpu memory", map[string]string{"cpu.max": "20000 100000\n"})
			}},
		{mistake{name: "v1 quota written to the period file", item: "quota", found: "the quota went into the period file",
			passes: []string{"group", "controllers", "procs", "memory", "oom"}},
			func(t *testing.T) string {
				return fakeV1(t, map[string]string{"cpu.cfs_period_us": "20000\n", "tasks": self, "cgroup.procs": self})
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := tc.tree(t)
			switch tc.item {
			case "controllers":
				tc.hint = "echo +cpu > " + root + "/cgroup.subtree_control"
			case "period":
				tc.hint = `echo "20000 100000" > ` + root + "/linux_yuan/cpu.max"
			case "procs":
				tc.hint = "pids=$(lab tool burn -c 4 -t 20m -d); for pid in $pids; do echo $pid >> " + root + "/linux_yuan/cgroup.procs; done"
			case "quota":
				tc.hint = "echo 100000 > " + root + "/cpu/linux_yuan/cpu.cfs_period_us && echo 20000 > " + root + "/cpu/linux_yuan/cpu.cfs_quota_us"
			}
			byID := grade(t)
			checkMistake(t, tc.mistake, byID)
			if tc.item == "controllers" {
				// Without cpu there is no cpu.max: the quota item points at the same fix.
				if q := byID["quota"]; q.OK || q.Hint != tc.hint {
					t.Errorf("quota item: ok %v, hint %q", q.OK, q.Hint)
				}
			}
		})
	}
}

// A right group passes every item that reads files; the measured one needs
// real processes and is left to the root tests.
func TestCheckPassesAFakeV2Group(t *testing.T) {
	shortWindows(t, 50*time.Millisecond)
	fakeV2(t, "cpu memory", map[string]string{
		"cgroup.procs": fmt.Sprintf("%d\n", os.Getpid()), "cpu.max": "20000 100000\n",
		"memory.max": "314572800\n", "memory.swap.max": "0\n",
		"memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
	})
	byID := grade(t)
	for _, id := range []string{"group", "controllers", "quota", "period", "procs", "memory", "oom"} {
		if !byID[id].OK {
			t.Errorf("item %s: %s (hint %s)", id, byID[id].Found, byID[id].Hint)
		}
	}
	s := newSetup()
	want := "linux_yuan: " + s.p.Dir + "\nenabled in " + s.p.SubtreeControl + ": cpu memory\ncpu cap: 20000 µs per 100000 µs (20% of one CPU)\n" +
		"processes in the cpu group: 1\nmemory: limit 300MiB, memory+swap 300MiB, oom_kill 1\n"
	if got := settings(s); got != want {
		t.Errorf("settings:\n%s\nwant\n%s", got, want)
	}
}

// The same mistakes made by hand on this machine's real cgroups, in the
// lesson's shell, as a student would.
func TestHintsForCommonMistakes(t *testing.T) {
	needRoot(t)
	labtest.Short(t)
	s := newSetup()
	if s.err != nil {
		t.Skip(s.err)
	}
	p := s.p
	// Its output must not hold the shell's pipes open.
	sleeper := "sleep 600 >/dev/null 2>&1 & echo $! >> " + p.ProcsFile
	var cases []struct {
		mistake
		cmds []string
	}
	add := func(m mistake, cmds ...string) {
		cases = append(cases, struct {
			mistake
			cmds []string
		}{m, cmds})
	}
	if p.Version == 1 {
		add(mistake{name: "quota written to the period file", item: "quota",
			hint:   "echo 100000 > " + p.PeriodFile + " && echo 20000 > " + p.QuotaFile,
			found:  "cpu.cfs_quota_us is -1 (no cap) and cpu.cfs_period_us is 20000",
			passes: []string{"group", "procs"}},
			"mkdir "+p.Dir, "echo 20000 > "+p.PeriodFile, sleeper)
		add(mistake{name: "period mismatch", item: "period", hint: "echo 100000 > " + p.PeriodFile,
			found: "the period is 50000, so a quota of 20000 is 40% of one CPU", passes: []string{"group", "quota", "procs"}},
			"mkdir "+p.Dir, "echo 50000 > "+p.PeriodFile, "echo 20000 > "+p.QuotaFile, sleeper)
		add(mistake{name: "no process moved in", item: "procs", hint: moveHint(s.p), found: "the cap applies to nothing",
			passes: []string{"group", "quota", "period"}},
			"mkdir "+p.Dir, "echo 20000 > "+p.QuotaFile)
	} else {
		add(mistake{name: "period mismatch", item: "period", hint: capCmd(s.p, Quota20),
			found: "the period is 50000", passes: []string{"group", "quota", "procs"}},
			"echo +cpu > "+p.SubtreeControl, "mkdir "+p.Dir, `echo "20000 50000" > `+p.QuotaFile, sleeper)
		add(mistake{name: "no process moved in", item: "procs", hint: moveHint(s.p), found: "the cap applies to nothing",
			passes: []string{"group", "quota", "period"}},
			"echo +cpu > "+p.SubtreeControl, "mkdir "+p.Dir, "echo 20000 > "+p.QuotaFile)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cleanAll(t)
			labtest.ShellRun(t, Lesson, strings.Join(append([]string{"set -e"}, c.cmds...), "\n"))
			r, err := engine.CheckShell(Lesson, "")
			if err != nil {
				t.Fatal(err)
			}
			if r.Passed() {
				t.Fatal("check passed a half-done exercise")
			}
			byID := map[string]engine.Result{}
			for _, it := range r.Items {
				byID[it.ID] = it
			}
			checkMistake(t, c.mistake, byID)
		})
	}
}

func TestBandsAndNormalize(t *testing.T) {
	for _, tc := range []struct {
		p    float64
		want string
	}{
		{30.03, "30% (±2)"}, {28.0, "30% (±2)"}, {32.0, "30% (±2)"}, {32.5, "32.50%"},
		{19.80, "20% (±2)"}, {24.9, "24.90%"}, {197.85, "50%+ (uncapped)"}, {45, "45.00%"},
	} {
		if got := band(tc.p); got != tc.want {
			t.Errorf("band(%v) = %q, want %q", tc.p, got, tc.want)
		}
	}
	noteStarted(4242, 4243)
	in := "4242 4243\nlinux_yuan    30.41%    4\nprocesses     99.50%    4\nprocesses     198.20%   4\ncpu.cfs_period_us 100000\n14242\n"
	want := "<pid> <pid>\nlinux_yuan    30% (±2) 4\nprocesses     50%+ (uncapped) 4\nprocesses     50%+ (uncapped) 4\ncpu.cfs_period_us 100000\n14242\n"
	if got := normalize(in); got != want {
		t.Errorf("normalize:\n%q\nwant\n%q", got, want)
	}
}

func TestExplain(t *testing.T) {
	oom := hogOutcome{Res: cgroup.HogResult{Target: 250, Reached: 190, Signal: 9, OOMKilled: true, OOMKills: 1},
		Mem: cgroup.MemoryStats{Limit: Mem200, Swap: cgroup.Unlimited}}
	if got := explain(oom, 0); !strings.Contains(got, "killed by the OOM killer after 190 MiB (oom_kill 1)") || !strings.Contains(got, "no swap") {
		t.Errorf("no swap: %s", got)
	}
	equal := oom
	equal.Mem = cgroup.MemoryStats{Limit: Mem300, Swap: Mem300}
	if got := explain(equal, 1<<30); !strings.Contains(got, "memory+swap is capped at the same 300MiB") {
		t.Errorf("memsw equal: %s", got)
	}
	held := hogOutcome{Res: cgroup.HogResult{Target: 250, Reached: 250}, Mem: cgroup.MemoryStats{Limit: Mem200, Swap: cgroup.Unlimited}}
	if !held.Held() {
		t.Error("a 250 MiB hog that finished under 200MiB was not held")
	}
	if got := explain(held, 1<<30); got != "reached 250 MiB, held at the 200MiB limit: the 50 MiB over it went to swap" {
		t.Errorf("held: %s", got)
	}
	fit := hogOutcome{Res: cgroup.HogResult{Target: 250, Reached: 250}, Mem: cgroup.MemoryStats{Limit: Mem300, Swap: Mem300}}
	if fit.Held() || explain(fit, 0) != "reached 250 MiB: under the 300MiB limit, the kernel let it be" {
		t.Errorf("fit: %s", explain(fit, 0))
	}
}

// The uncapped measurement sees a spinning worker; the check's measurement
// of a capped one is near the cap (the accuracy claim itself is the
// benchmark's).
func TestSampleProcs(t *testing.T) {
	m, err := startBurn(1, time.Minute, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.stop() })
	// Other tests may load the machine: any use at all shows it measures.
	use, _, err := sampleProcs(m.pids, 300*time.Millisecond)
	if err != nil || use < 1 || use > 110 {
		t.Errorf("one worker uses %.1f%% (%v)", use, err)
	}
	if _, _, err := sampleProcs([]int{math.MaxInt32}, time.Millisecond); err == nil {
		t.Error("a missing process measured")
	}
	if err := m.stop(); err != nil {
		t.Error(err)
	}
	if alive(m.pids[0]) {
		t.Error("worker alive after stop")
	}
}

// A check graded again from its recorded observations (an instructor's
// `lab grade`) comes to the same results item by item, on a machine whose
// own cgroups differ: the facts carry the checked machine's paths.
func TestGradeFromRecordedFacts(t *testing.T) {
	shortWindows(t, 50*time.Millisecond)
	root := fakeV2(t, "memory", map[string]string{"cgroup.procs": fmt.Sprintf("%d\n", os.Getpid())})
	env := engine.Bind(Lesson, nil)
	p := engine.NewProbe(env, env.Main())
	live := engine.Grade(Lesson.Build(env), p)
	obs := p.Observations()
	if _, ok := obs[engine.ObsKey("docker01", "cgroup-cpu group")]; !ok {
		t.Fatalf("the check recorded no facts: %v", obs)
	}

	fakeV1(t, nil) // the grader's machine: v1, another tree
	env2 := engine.Bind(Lesson, nil)
	again := engine.Grade(Lesson.Build(env2), engine.ReplayProbe(env2, "docker01", obs))
	if live.Score != again.Score || live.Max != again.Max {
		t.Fatalf("live %d/%d, replayed %d/%d", live.Score, live.Max, again.Score, again.Max)
	}
	for i := range live.Items {
		a, b := live.Items[i], again.Items[i]
		if a.ID != b.ID || a.OK != b.OK || a.Found != b.Found || a.Hint != b.Hint {
			t.Errorf("item %s: live %+v\n            replayed %+v", a.ID, a, b)
		}
	}
	if h := again.Items[1].Hint; h != "echo +cpu > "+root+"/cgroup.subtree_control" {
		t.Errorf("replayed controllers hint %q names the grader's tree, not the student's", h)
	}
}

// A student who stopped after the document's 30% exercise is told where
// they are: the 30% item passes, the 20% one says it is next and how.
func TestStoppedAtThirtyPercent(t *testing.T) {
	shortWindows(t, 50*time.Millisecond)
	self := fmt.Sprintf("%d\n", os.Getpid())
	for _, tc := range []struct {
		name string
		tree func(t *testing.T) string
		hint func(root string) string
	}{
		{"v2", func(t *testing.T) string {
			return fakeV2(t, "cpu memory", map[string]string{"cgroup.procs": self, "cpu.max": "30000 100000\n"})
		}, func(root string) string { return `echo "20000 100000" > ` + root + "/linux_yuan/cpu.max" }},
		{"v1", func(t *testing.T) string {
			return fakeV1(t, map[string]string{"cpu.cfs_quota_us": "30000\n", "tasks": self, "cgroup.procs": self})
		}, func(root string) string { return "echo 20000 > " + root + "/cpu/linux_yuan/cpu.cfs_quota_us" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := tc.tree(t)
			byID := grade(t)
			labtest.Passing(t, byID, "group", "controllers", "cap30", "period", "procs")
			q := byID["quota"]
			if q.OK || !strings.Contains(q.Found, "30% exercise is done; next, the document changes it to 20%") || q.Hint != tc.hint(root) {
				t.Errorf("quota item: ok %v, found %q, hint %q", q.OK, q.Found, q.Hint)
			}
			if strings.Contains(q.Found, "(30% of one CPU)") {
				t.Errorf("quota item reads as a mistake: %q", q.Found)
			}
			// The measurement grades the 30% cap, not "not 20% yet".
			if h := byID["holds"]; strings.Contains(h.Found, "not 20% of one CPU yet") {
				t.Errorf("holds item graded the 20%% cap on a 30%% group: %q", h.Found)
			}
		})
	}
	// At the end of the document both pass; a cap never set passes neither.
	fakeV2(t, "cpu memory", map[string]string{"cgroup.procs": self, "cpu.max": "20000 100000\n"})
	labtest.Passing(t, grade(t), "cap30", "quota")
	fakeV2(t, "cpu memory", map[string]string{"cgroup.procs": self, "cpu.max": "max 100000\n"})
	for id, r := range grade(t) {
		if (id == "cap30" || id == "quota") && r.OK {
			t.Errorf("item %s passed an uncapped group", id)
		}
	}
}

// On v1 with cpu, cpuacct and memory mounted apart, the document's
// `cd /sys/fs/cgroup/cpu && mkdir linux_yuan` (and nothing in the other
// hierarchies) passes every item of the cap; memory is its own item.
func TestV1CPUHierarchyAlone(t *testing.T) {
	shortWindows(t, 50*time.Millisecond)
	self := fmt.Sprintf("%d\n", os.Getpid())
	root := t.TempDir()
	var mi strings.Builder
	for i, c := range []string{"cpu", "cpuacct", "memory"} {
		fmt.Fprintf(&mi, "%d 1 0:%d / %s/%s rw,relatime - cgroup cgroup rw,%s\n", 40+i, 40+i, root, c, c)
		writeFiles(t, filepath.Join(root, c), map[string]string{"tasks": "", "cgroup.procs": ""})
	}
	writeFiles(t, filepath.Join(root, "cpu", Group), map[string]string{
		"cpu.cfs_quota_us": "20000\n", "cpu.cfs_period_us": "100000\n", "tasks": self, "cgroup.procs": self})
	useTree(t, root, mi.String())
	if s := newSetup(); s.p.Cpuacct == "" {
		t.Fatalf("the fake tree does not mount cpuacct apart: %+v", s.p)
	}
	byID := grade(t)
	labtest.Passing(t, byID, "group", "controllers", "cap30", "quota", "period", "procs")
	m := byID["memory"]
	if want := "mkdir " + root + "/memory/linux_yuan"; m.OK || m.Hint != want {
		t.Errorf("memory item: ok %v, hint %q, want %q", m.OK, m.Hint, want)
	}
	// Without the cpu directory the group items fail, naming it.
	if err := os.RemoveAll(filepath.Join(root, "cpu", Group)); err != nil {
		t.Fatal(err)
	}
	byID = grade(t)
	if g := byID["controllers"]; g.OK || g.Hint != "mkdir "+root+"/cpu/linux_yuan" {
		t.Errorf("controllers item without the group: ok %v, hint %q", g.OK, g.Hint)
	}
}

// The document's own commands up to its 30% exercise, typed in the shell on
// this machine's cgroups: on v1 `cd /sys/fs/cgroup/cpu && mkdir linux_yuan`
// alone (cpuacct and memory, mounted apart here or not, are not needed for
// the cap). The check says where the student is.
func TestDocumentThirtyPercentByHand(t *testing.T) {
	needRoot(t)
	s := newSetup()
	if s.err != nil {
		t.Skip(s.err)
	}
	p := s.p
	// Its output must not hold the shell's pipes open.
	sleeper := "sleep 600 >/dev/null 2>&1 & echo $! >> " + filepath.Base(p.ProcsFile)
	script := []string{"set -e"}
	if p.Version == 1 {
		script = append(script, "cd "+filepath.Dir(p.Dir)+" && mkdir "+Group, "cd "+Group,
			"echo 30000 > cpu.cfs_quota_us", sleeper)
	} else {
		script = append(script, "echo +cpu > "+p.SubtreeControl, "mkdir "+p.Dir, "cd "+p.Dir,
			`echo "30000 100000" > cpu.max`, sleeper)
	}
	cleanAll(t)
	labtest.ShellRun(t, Lesson, strings.Join(script, "\n"))
	if p.Version == 1 {
		for _, d := range []string{p.Cpuacct, p.Memory} {
			if d != "" && exists(d) {
				t.Fatalf("%s exists: the script should have made the cpu group only", d)
			}
		}
	}
	r, err := engine.CheckShell(Lesson, "")
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]engine.Result{}
	for _, it := range r.Items {
		byID[it.ID] = it
	}
	labtest.Passing(t, byID, "group", "controllers", "cap30", "period", "procs")
	if q := byID["quota"]; q.OK || !strings.Contains(q.Found, "next, the document changes it to 20%") || q.Hint != capCmd(p, Quota20) {
		t.Errorf("quota item: ok %v, found %q, hint %q", q.OK, q.Found, q.Hint)
	}
}
