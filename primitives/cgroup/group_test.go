package cgroup

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containers-underneath/lab/primitives/op"
	"golang.org/x/sys/unix"
)

type opT = op.Op

// The printed commands, for a layout written out as the document's host
// has it. Building ops touches nothing but reads.
func TestV1Cmds(t *testing.T) {
	l := &Layout{Root: "/sys/fs/cgroup", Mode: ModeV1, Mounts: []Mount{
		{Point: "/sys/fs/cgroup/cpu", FSType: "cgroup", Controllers: []string{"cpu"}},
		{Point: "/sys/fs/cgroup/cpuacct", FSType: "cgroup", Controllers: []string{"cpuacct"}},
		{Point: "/sys/fs/cgroup/memory", FSType: "cgroup", Controllers: []string{"memory"}},
	}}
	g := mustNew(t, l, "linux_yuan")
	mem, err := g.SetMemory(200<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ops  []op.Op
		want []string
	}{
		{"Create", g.Create(), []string{
			"mkdir /sys/fs/cgroup/cpu/linux_yuan",
			"mkdir /sys/fs/cgroup/cpuacct/linux_yuan",
			"mkdir /sys/fs/cgroup/memory/linux_yuan",
		}},
		{"SetCPU as the document", g.SetCPU(30000, 0), []string{
			"echo 30000 > /sys/fs/cgroup/cpu/linux_yuan/cpu.cfs_quota_us",
		}},
		{"SetCPU with period", g.SetCPU(30000, 100000), []string{
			"echo 100000 > /sys/fs/cgroup/cpu/linux_yuan/cpu.cfs_period_us",
			"echo 30000 > /sys/fs/cgroup/cpu/linux_yuan/cpu.cfs_quota_us",
		}},
		{"SetCPU unlimited", g.SetCPU(Unlimited, 0), []string{
			"echo -1 > /sys/fs/cgroup/cpu/linux_yuan/cpu.cfs_quota_us",
		}},
		{"AddProc", g.AddProc(13608), []string{
			"echo 13608 >> /sys/fs/cgroup/cpu/linux_yuan/tasks",
			"echo 13608 >> /sys/fs/cgroup/cpuacct/linux_yuan/tasks",
			"echo 13608 >> /sys/fs/cgroup/memory/linux_yuan/tasks",
		}},
		{"SetMemory", mem, []string{
			"echo 209715200 > /sys/fs/cgroup/memory/linux_yuan/memory.limit_in_bytes",
		}},
	} {
		if got := cmds(tc.ops); !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestV2Cmds(t *testing.T) {
	l := &Layout{Root: "/sys/fs/cgroup", Mode: ModeV2, Mounts: []Mount{
		{Point: "/sys/fs/cgroup", FSType: "cgroup2", Controllers: []string{"cpuset", "cpu", "io", "memory", "pids"}},
	}}
	g := mustNew(t, l, "linux_yuan")
	mem := func(limit, swap int64) []op.Op {
		ops, err := g.SetMemory(limit, swap)
		if err != nil {
			t.Fatal(err)
		}
		return ops
	}
	for _, tc := range []struct {
		name string
		ops  []op.Op
		want []string
	}{
		{"Create", g.Create(), []string{
			"echo +cpu > /sys/fs/cgroup/cgroup.subtree_control",
			"echo +memory > /sys/fs/cgroup/cgroup.subtree_control",
			"mkdir /sys/fs/cgroup/linux_yuan",
		}},
		{"SetCPU", g.SetCPU(30000, 100000), []string{`echo "30000 100000" > /sys/fs/cgroup/linux_yuan/cpu.max`}},
		{"SetCPU quota only", g.SetCPU(20000, 0), []string{`echo 20000 > /sys/fs/cgroup/linux_yuan/cpu.max`}},
		{"SetCPU unlimited", g.SetCPU(Unlimited, 100000), []string{`echo "max 100000" > /sys/fs/cgroup/linux_yuan/cpu.max`}},
		{"AddProc", g.AddProc(1234), []string{"echo 1234 > /sys/fs/cgroup/linux_yuan/cgroup.procs"}},
		{"SetMemory 200m", mem(200<<20, 0), []string{"echo 209715200 > /sys/fs/cgroup/linux_yuan/memory.max"}},
		// --memory 300m --memory-swap 300m: no swap at all.
		{"SetMemory 300m/300m", mem(300<<20, 300<<20), []string{
			"echo 314572800 > /sys/fs/cgroup/linux_yuan/memory.max",
			"echo 0 > /sys/fs/cgroup/linux_yuan/memory.swap.max",
		}},
		{"SetMemory 200m/500m", mem(200<<20, 500<<20), []string{
			"echo 209715200 > /sys/fs/cgroup/linux_yuan/memory.max",
			"echo 314572800 > /sys/fs/cgroup/linux_yuan/memory.swap.max",
		}},
		{"SetMemory unlimited", mem(Unlimited, Unlimited), []string{
			"echo max > /sys/fs/cgroup/linux_yuan/memory.max",
			"echo max > /sys/fs/cgroup/linux_yuan/memory.swap.max",
		}},
	} {
		if got := cmds(tc.ops); !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
	if _, err := g.SetMemory(300<<20, 200<<20); err == nil {
		t.Error("memory-swap below memory accepted")
	}
}

func TestNewRejectsBadNames(t *testing.T) {
	l := &Layout{Root: "/sys/fs/cgroup", Mode: ModeV2, Mounts: []Mount{
		{Point: "/sys/fs/cgroup", FSType: "cgroup2", Controllers: []string{"cpu"}},
	}}
	for _, name := range []string{"", ".", "..", "a/b"} {
		if _, err := New(l, name); err == nil {
			t.Errorf("New(%q) accepted", name)
		}
	}
	l.Mounts[0].Controllers = []string{"memory"}
	if _, err := New(l, "x"); err == nil || !strings.Contains(err.Error(), "cpu controller is not available") {
		t.Errorf("New without cpu: %v", err)
	}
}

// kernelFiles are what the kernel puts in a new group (the fake kernel).
var (
	v1CPUFiles = map[string]string{
		"cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n", "tasks": "", "cgroup.procs": "",
	}
	v1AcctFiles = map[string]string{"cpuacct.usage": "0\n", "tasks": "", "cgroup.procs": ""}
	v1MemFiles  = map[string]string{
		"memory.limit_in_bytes": "9223372036854771712\n", "memory.memsw.limit_in_bytes": "9223372036854771712\n",
		"memory.usage_in_bytes": "0\n", "memory.max_usage_in_bytes": "0\n", "tasks": "", "cgroup.procs": "",
		"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
	}
	v2Files = map[string]string{
		"cpu.max": "max 100000\n", "cgroup.procs": "", "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
		"memory.max": "max\n", "memory.swap.max": "max\n", "memory.current": "0\n", "memory.peak": "0\n",
		"memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
	}
)

// fakeV1 is a v1 host with a created, kernel-populated group linux_yuan.
func fakeV1(t *testing.T) (root string, g Group) {
	t.Helper()
	root, mi := fakeHost(t, v1Spec...)
	l, err := Detect(root, strings.NewReader(mi))
	if err != nil {
		t.Fatal(err)
	}
	g = mustNew(t, l, "linux_yuan")
	run(t, g.Create())
	writeFakes(t, filepath.Join(root, "cpu/linux_yuan"), v1CPUFiles)
	writeFakes(t, filepath.Join(root, "cpuacct/linux_yuan"), v1AcctFiles)
	writeFakes(t, filepath.Join(root, "memory/linux_yuan"), v1MemFiles)
	return root, g
}

// fakeV2 is a v2 host; the group is created only when create is set.
func fakeV2(t *testing.T, create bool) (root string, g Group) {
	t.Helper()
	root, mi := fakeHost(t, v2Spec...)
	writeFakes(t, root, map[string]string{"cgroup.controllers": "cpuset cpu io memory pids\n", "cgroup.subtree_control": ""})
	l, err := Detect(root, strings.NewReader(mi))
	if err != nil {
		t.Fatal(err)
	}
	g = mustNew(t, l, "linux_yuan")
	if create {
		run(t, g.Create())
		writeFakes(t, root, map[string]string{"cgroup.subtree_control": "cpu memory\n"})
		writeFakes(t, filepath.Join(root, "linux_yuan"), v2Files)
	}
	return root, g
}

func TestV1Files(t *testing.T) {
	root, g := fakeV1(t)
	for _, d := range []string{"cpu", "cpuacct", "memory"} {
		if !exists(filepath.Join(root, d, "linux_yuan")) {
			t.Errorf("Create made no %s/linux_yuan", d)
		}
	}
	run(t, g.SetCPU(30000, 100000))
	run(t, g.AddProc(13608))
	run(t, g.AddProc(13609))
	wantFile(t, filepath.Join(root, "cpu/linux_yuan/cpu.cfs_quota_us"), "30000\n")
	wantFile(t, filepath.Join(root, "cpu/linux_yuan/cpu.cfs_period_us"), "100000\n")
	// >> appends, as the document's four echo lines do.
	wantFile(t, filepath.Join(root, "cpu/linux_yuan/tasks"), "13608\n13609\n")
	wantFile(t, filepath.Join(root, "memory/linux_yuan/tasks"), "13608\n13609\n")

	lim, err := g.CPULimit()
	if err != nil || lim.Quota != 30000 || lim.Period != 100000 || lim.Percent() != 30 {
		t.Errorf("CPULimit = %+v, %v", lim, err)
	}
	if filepath.Base(lim.QuotaFile) != "cpu.cfs_quota_us" || filepath.Base(lim.PeriodFile) != "cpu.cfs_period_us" {
		t.Errorf("CPULimit files = %+v", lim)
	}
	// The kernel lists the moved processes in cgroup.procs.
	writeFakes(t, filepath.Join(root, "cpu/linux_yuan"), map[string]string{"cgroup.procs": "13608\n13609\n"})
	if err := CheckCPU(g, 30000, 100000, 13608, 13609); err != nil {
		t.Errorf("CheckCPU on a good group: %v", err)
	}
	writeFakes(t, filepath.Join(root, "cpuacct/linux_yuan"), map[string]string{"cpuacct.usage": "1500000000\n"})
	if u, err := g.CPUUsage(); err != nil || u != 1500*time.Millisecond {
		t.Errorf("CPUUsage = %v, %v", u, err)
	}
	writeFakes(t, filepath.Join(root, "memory/linux_yuan"), map[string]string{
		"memory.limit_in_bytes": "52428800\n", "memory.memsw.limit_in_bytes": "52428800\n",
		"memory.usage_in_bytes": "1048576\n", "memory.max_usage_in_bytes": "52428800\n",
		"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
	})
	want := MemoryStats{Limit: 50 << 20, Swap: 50 << 20, Usage: 1 << 20, Peak: 50 << 20, OOMKills: 2}
	if m, err := g.Memory(); err != nil || m != want {
		t.Errorf("Memory = %+v, %v; want %+v", m, err, want)
	}
}

// memsw must never drop below memory: raise memsw before memory, lower it after.
func TestV1MemoryOrder(t *testing.T) {
	root, g := fakeV1(t)
	dir := filepath.Join(root, "memory/linux_yuan")
	limit, memsw := filepath.Join(dir, "memory.limit_in_bytes"), filepath.Join(dir, "memory.memsw.limit_in_bytes")

	ops := mustMem(t, g, 200<<20, 0) // from unlimited: memory only
	if got := cmds(ops); len(got) != 1 || !strings.HasSuffix(got[0], "memory.limit_in_bytes") {
		t.Errorf("200m: %q", got)
	}
	run(t, ops)
	wantFile(t, limit, "209715200\n")

	ops = mustMem(t, g, 300<<20, 300<<20) // raising: memsw first
	if got := cmds(ops); !slices.Equal(got, []string{"echo 314572800 > " + memsw, "echo 314572800 > " + limit}) {
		t.Errorf("raise to 300m/300m: %q", got)
	}
	run(t, ops)

	ops = mustMem(t, g, 50<<20, 50<<20) // lowering: memory first
	if got := cmds(ops); !slices.Equal(got, []string{"echo 52428800 > " + limit, "echo 52428800 > " + memsw}) {
		t.Errorf("lower to 50m/50m: %q", got)
	}
	run(t, ops)
	wantFile(t, memsw, "52428800\n")

	ops = mustMem(t, g, Unlimited, 0) // unlimited memory needs unlimited memsw first
	if got := cmds(ops); !slices.Equal(got, []string{"echo -1 > " + memsw, "echo -1 > " + limit}) {
		t.Errorf("unlimited: %q", got)
	}

	if err := os.Remove(memsw); err != nil { // swap accounting off
		t.Fatal(err)
	}
	ops = mustMem(t, g, 50<<20, 50<<20)
	var err error
	for _, o := range ops {
		if err = o.Do(io.Discard); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrNoSwapAccounting) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("without memsw: %v", err)
	}
	if _, err := g.SetMemory(100<<20, 50<<20); err == nil {
		t.Error("memory-swap below memory accepted")
	}
}

func TestV2Files(t *testing.T) {
	root, g := fakeV2(t, false)
	ctl := filepath.Join(root, "cgroup.subtree_control")
	ops := g.Create()
	// +cpu goes into the parent's subtree_control before the group exists.
	if err := ops[0].Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	wantFile(t, ctl, "+cpu\n")
	if err := ops[1].Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	wantFile(t, ctl, "+memory\n") // the kernel would now list "cpu memory"
	if exists(filepath.Join(root, "linux_yuan")) {
		t.Fatal("group made before the controllers were enabled")
	}
	run(t, ops[2:])
	if !g.Exists() {
		t.Fatal("Create made no group")
	}
	writeFakes(t, root, map[string]string{"cgroup.subtree_control": "cpu memory\n"})
	dir := filepath.Join(root, "linux_yuan")
	writeFakes(t, dir, v2Files)

	run(t, g.SetCPU(30000, 100000))
	wantFile(t, filepath.Join(dir, "cpu.max"), "30000 100000\n")
	run(t, g.AddProc(1234))
	wantFile(t, filepath.Join(dir, "cgroup.procs"), "1234\n")
	run(t, mustMem(t, g, 300<<20, 300<<20))
	wantFile(t, filepath.Join(dir, "memory.max"), "314572800\n")
	wantFile(t, filepath.Join(dir, "memory.swap.max"), "0\n")

	lim, err := g.CPULimit()
	if err != nil || lim.Quota != 30000 || lim.Period != 100000 || filepath.Base(lim.QuotaFile) != "cpu.max" {
		t.Errorf("CPULimit = %+v, %v", lim, err)
	}
	if err := CheckCPU(g, 30000, 100000, 1234); err != nil {
		t.Errorf("CheckCPU on a good group: %v", err)
	}
	writeFakes(t, dir, map[string]string{
		"cpu.stat":       "usage_usec 2500000\nuser_usec 2400000\nsystem_usec 100000\nnr_periods 25\n",
		"memory.current": "1048576\n", "memory.peak": "52428800\n",
		"memory.events": "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n",
	})
	if u, err := g.CPUUsage(); err != nil || u != 2500*time.Millisecond {
		t.Errorf("CPUUsage = %v, %v", u, err)
	}
	want := MemoryStats{Limit: 300 << 20, Swap: 300 << 20, Usage: 1 << 20, Peak: 50 << 20, OOMKills: 1}
	if m, err := g.Memory(); err != nil || m != want {
		t.Errorf("Memory = %+v, %v; want %+v", m, err, want)
	}
}

// The mistakes a self-check must catch, each seen through the readers.
func TestCheckCPUCatchesMistakes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) Group
		want  []string
	}{
		{"v1 quota written to the period file", func(t *testing.T) Group {
			root, g := fakeV1(t)
			writeFakes(t, filepath.Join(root, "cpu/linux_yuan"), map[string]string{
				"cpu.cfs_period_us": "30000\n", "cgroup.procs": "13608\n"})
			return g
		}, []string{"cpu quota of \"linux_yuan\" is unlimited", "was it written to another file",
			"cpu period of \"linux_yuan\" is 30000", "the quota was written to cpu.cfs_period_us"}},
		{"v1 period mismatch", func(t *testing.T) Group {
			root, g := fakeV1(t)
			writeFakes(t, filepath.Join(root, "cpu/linux_yuan"), map[string]string{
				"cpu.cfs_quota_us": "30000\n", "cpu.cfs_period_us": "50000\n", "cgroup.procs": "13608\n"})
			return g
		}, []string{"cpu period of \"linux_yuan\" is 50000", "want 100000"}},
		{"v1 no process in the group", func(t *testing.T) Group {
			root, g := fakeV1(t)
			writeFakes(t, filepath.Join(root, "cpu/linux_yuan"), map[string]string{"cpu.cfs_quota_us": "30000\n"})
			return g
		}, []string{"no process is in \"linux_yuan\""}},
		{"v1 group missing", func(t *testing.T) Group {
			root, g := fakeV1(t)
			os.RemoveAll(filepath.Join(root, "cpu/linux_yuan"))
			return g
		}, []string{"does not exist"}},
		{"v2 cpu not enabled in subtree_control", func(t *testing.T) Group {
			root, g := fakeV2(t, true)
			writeFakes(t, root, map[string]string{"cgroup.subtree_control": "memory\n"})
			return g
		}, []string{"the cpu controller is not enabled", "echo +cpu > "}},
		{"v2 cap not set", func(t *testing.T) Group {
			root, g := fakeV2(t, true)
			writeFakes(t, filepath.Join(root, "linux_yuan"), map[string]string{"cgroup.procs": "1234\n"})
			return g
		}, []string{"is unlimited in", "cpu.max"}},
		{"v2 other process moved", func(t *testing.T) Group {
			root, g := fakeV2(t, true)
			writeFakes(t, filepath.Join(root, "linux_yuan"), map[string]string{
				"cpu.max": "30000 100000\n", "cgroup.procs": "99\n"})
			return g
		}, []string{"process 1234 is not in"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.setup(t)
			pids := []int{}
			if strings.Contains(tc.name, "other process") {
				pids = []int{1234}
			}
			err := CheckCPU(g, 30000, 100000, pids...)
			if err == nil {
				t.Fatal("CheckCPU found nothing wrong")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("CheckCPU error lacks %q:\n%v", w, err)
				}
			}
		})
	}
	t.Run("v2 Enabled", func(t *testing.T) {
		root, g := fakeV2(t, true)
		writeFakes(t, root, map[string]string{"cgroup.subtree_control": "memory\n"})
		if on, err := g.Enabled("cpu"); on || err != nil {
			t.Errorf("Enabled(cpu) = %v, %v", on, err)
		}
		if on, err := g.Enabled("memory"); !on || err != nil {
			t.Errorf("Enabled(memory) = %v, %v", on, err)
		}
	})
}

func TestWriteFileError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.cfs_quota_us")
	err := writeFile(path, "30000", false)
	want := `failed to write "30000" to ` + path + `: no such file or directory`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	if !errors.Is(err, unix.ENOENT) {
		t.Errorf("errors.Is(err, ENOENT) = false")
	}
	if exists(path) {
		t.Error("writeFile created the file")
	}
}

func TestDestroy(t *testing.T) {
	t.Run("v1", func(t *testing.T) {
		root, mi := fakeHost(t, v1Spec...)
		l, err := Detect(root, strings.NewReader(mi))
		if err != nil {
			t.Fatal(err)
		}
		g := mustNew(t, l, "linux_yuan")
		run(t, g.Create()) // empty dirs: a fake rmdir works only on those
		want := []string{"rmdir " + root + "/memory/linux_yuan", "rmdir " + root + "/cpuacct/linux_yuan", "rmdir " + root + "/cpu/linux_yuan"}
		if got := cmds(g.Destroy()); !slices.Equal(got, want) {
			t.Errorf("Destroy:\n got %q\nwant %q", got, want)
		}
		run(t, g.Destroy())
		if g.Exists() || exists(filepath.Join(root, "memory/linux_yuan")) {
			t.Error("group still there")
		}
		run(t, g.Destroy()) // a missing group is success

		run(t, g.Create())
		writeFakes(t, filepath.Join(root, "cpu/linux_yuan"), map[string]string{"cgroup.procs": "13608\n"})
		ops := g.Destroy()
		wantKill := "kill -9 $(cat " + root + "/cpu/linux_yuan/cgroup.procs " + root + "/cpuacct/linux_yuan/cgroup.procs " + root + "/memory/linux_yuan/cgroup.procs)"
		if len(ops) != 4 || ops[0].Cmd != wantKill {
			t.Errorf("Destroy with a process left: %q", cmds(ops))
		}
	})
	t.Run("v2", func(t *testing.T) {
		root, g := fakeV2(t, false)
		run(t, g.Create())
		if got := cmds(g.Destroy()); !slices.Equal(got, []string{"rmdir " + root + "/linux_yuan"}) {
			t.Errorf("Destroy: %q", got)
		}
		run(t, g.Destroy())
		run(t, g.Destroy())
		if g.Exists() {
			t.Error("group still there")
		}
		run(t, g.Create())
		writeFakes(t, filepath.Join(root, "linux_yuan"), map[string]string{"cgroup.procs": "1234\n", "cgroup.kill": ""})
		want := []string{"echo 1 > " + root + "/linux_yuan/cgroup.kill", "rmdir " + root + "/linux_yuan"}
		if got := cmds(g.Destroy()); !slices.Equal(got, want) {
			t.Errorf("Destroy with a process left:\n got %q\nwant %q", got, want)
		}
	})
}

func mustNew(t *testing.T, l *Layout, name string) Group {
	t.Helper()
	g, err := New(l, name)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func mustMem(t *testing.T, g Group, limit, swap int64) []op.Op {
	t.Helper()
	ops, err := g.SetMemory(limit, swap)
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

func run(t *testing.T, ops []op.Op) {
	t.Helper()
	for _, o := range ops {
		if err := o.Do(io.Discard); err != nil {
			t.Fatalf("%s: %v", o.Cmd, err)
		}
	}
}

func wantFile(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Errorf("%s = %q, want %q", path, b, want)
	}
}

// AddProcFor moves a pid for some controllers only: on v1 one tasks file per
// hierarchy named (co-mounted cpu,cpuacct is one); on v2 the one group.
func TestAddProcFor(t *testing.T) {
	v1 := &Layout{Root: "/sys/fs/cgroup", Mode: ModeV1, Mounts: []Mount{
		{Point: "/sys/fs/cgroup/cpu", FSType: "cgroup", Controllers: []string{"cpu"}},
		{Point: "/sys/fs/cgroup/cpuacct", FSType: "cgroup", Controllers: []string{"cpuacct"}},
		{Point: "/sys/fs/cgroup/memory", FSType: "cgroup", Controllers: []string{"memory"}},
	}}
	comounted := &Layout{Root: "/sys/fs/cgroup", Mode: ModeV1, Mounts: []Mount{
		{Point: "/sys/fs/cgroup/cpu,cpuacct", FSType: "cgroup", Controllers: []string{"cpu", "cpuacct"}},
	}}
	v2 := &Layout{Root: "/sys/fs/cgroup", Mode: ModeV2, Mounts: []Mount{
		{Point: "/sys/fs/cgroup", FSType: "cgroup2", Controllers: []string{"cpu", "memory"}},
	}}
	for _, tc := range []struct {
		name string
		l    *Layout
		ctl  []string
		want []string
	}{
		{"v1 cpu and cpuacct", v1, []string{"cpu", "cpuacct"}, []string{
			"echo 7 >> /sys/fs/cgroup/cpu/linux_yuan/tasks", "echo 7 >> /sys/fs/cgroup/cpuacct/linux_yuan/tasks"}},
		{"v1 memory", v1, []string{"memory"}, []string{"echo 7 >> /sys/fs/cgroup/memory/linux_yuan/tasks"}},
		{"v1 co-mounted", comounted, []string{"cpu", "cpuacct"}, []string{"echo 7 >> /sys/fs/cgroup/cpu,cpuacct/linux_yuan/tasks"}},
		{"v2", v2, []string{"memory"}, []string{"echo 7 > /sys/fs/cgroup/linux_yuan/cgroup.procs"}},
	} {
		if got := cmds(mustNew(t, tc.l, "linux_yuan").AddProcFor(7, tc.ctl...)); !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
	ops := mustNew(t, comounted, "linux_yuan").AddProcFor(7, "memory")
	if err := ops[0].Do(io.Discard); err == nil || !strings.Contains(err.Error(), "memory controller is not mounted") {
		t.Errorf("memory without a hierarchy: %v", err)
	}
}

// Kill is built before the group holds anything and decides when it runs;
// Remove is rmdir alone.
func TestKillAndRemove(t *testing.T) {
	root, g := fakeV1(t)
	k := g.Kill()
	want := "kill -9 $(cat " + root + "/cpu/linux_yuan/cgroup.procs " + root + "/cpuacct/linux_yuan/cgroup.procs " + root + "/memory/linux_yuan/cgroup.procs)"
	if k.Cmd != want {
		t.Errorf("Kill = %q\nwant %q", k.Cmd, want)
	}
	if err := k.Do(io.Discard); err != nil { // empty: nothing to kill
		t.Errorf("Kill of an empty group: %v", err)
	}
	if got := cmds(g.Remove()); len(got) != 3 || got[0] != "rmdir "+root+"/memory/linux_yuan" {
		t.Errorf("Remove = %q", got)
	}
	// The lab itself in the group: refused, never killed.
	writeFakes(t, filepath.Join(root, "cpu/linux_yuan"), map[string]string{"cgroup.procs": strconv.Itoa(os.Getpid()) + "\n"})
	if err := k.Do(io.Discard); err == nil || !strings.Contains(err.Error(), "the lab itself") {
		t.Errorf("Kill with the lab inside: %v", err)
	}

	root2, g2 := fakeV2(t, false)
	if err := g2.Kill().Do(io.Discard); err != nil {
		t.Errorf("Kill of a missing v2 group: %v", err)
	}
	run(t, g2.Create())
	writeFakes(t, filepath.Join(root2, "linux_yuan"), map[string]string{"cgroup.procs": "", "cgroup.kill": ""})
	if got := g2.Kill().Cmd; got != "echo 1 > "+root2+"/linux_yuan/cgroup.kill" {
		t.Errorf("v2 Kill = %q", got)
	}
	if err := g2.Kill().Do(io.Discard); err != nil {
		t.Errorf("v2 Kill of an empty group: %v", err)
	}
}
