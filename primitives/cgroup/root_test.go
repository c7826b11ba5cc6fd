package cgroup

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Root tests work on the host's real cgroups, in throwaway groups named
// lab-test-<random> that t.Cleanup removes even when the test fails.

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: run as root to create cgroups")
	}
}

func testName() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "lab-test-" + hex.EncodeToString(b)
}

// realGroup creates a throwaway group on this host's layout.
func realGroup(t testing.TB) Group {
	t.Helper()
	needRoot(t)
	l, err := DetectHost()
	if err != nil {
		t.Skip("no cgroups here:", err)
	}
	g, err := New(l, testName())
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { destroy(t, g) })
	for _, o := range g.Create() {
		if err := o.Do(io.Discard); err != nil {
			t.Fatalf("%s: %v", o.Cmd, err)
		}
	}
	return g
}

// destroy is best-effort: every op runs, errors are reported.
func destroy(t testing.TB, g Group) {
	for _, o := range g.Destroy() {
		if err := o.Do(io.Discard); err != nil {
			t.Errorf("cleanup: %s: %v", o.Cmd, err)
		}
	}
	if g.Exists() {
		t.Errorf("cleanup: group %s still there", g.Name())
	}
}

// startBurnerTB is startBurner for tests and benchmarks: Cleanups run LIFO,
// so workers registered after the group are killed before it is removed.
func startBurnerTB(t testing.TB, n int) *Burner {
	t.Helper()
	b, err := StartBurner(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Stop() })
	return b
}

func doAll(t testing.TB, ops ...[]opT) {
	t.Helper()
	for _, list := range ops {
		for _, o := range list {
			if err := o.Do(io.Discard); err != nil {
				t.Fatalf("%s: %v", o.Cmd, err)
			}
		}
	}
}

func TestRootCPUCap(t *testing.T) {
	g := realGroup(t)
	b := startBurnerTB(t, 2)
	time.Sleep(200 * time.Millisecond)
	uncapped, err := SampleProcsCPU(b.Pids(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	doAll(t, g.SetCPU(30000, 100000))
	for _, pid := range b.Pids() {
		doAll(t, g.AddProc(pid))
	}
	if err := CheckCPU(g, 30000, 100000, b.Pids()...); err != nil {
		t.Fatalf("self-check after capping: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	at30, err := SampleCPU(g, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	doAll(t, g.SetCPU(20000, 0)) // docker container update --cpu-quota 20000
	if lim, err := g.CPULimit(); err != nil || lim.Quota != 20000 || lim.Period != 100000 {
		t.Fatalf("after the live change: %+v, %v", lim, err)
	}
	time.Sleep(200 * time.Millisecond)
	at20, err := SampleCPU(g, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("uncapped %s, cap 30%% %s, cap 20%% %s", FormatPercent(uncapped), FormatPercent(at30), FormatPercent(at20))
	if at30 < 15 || at30 > 45 || at30 >= uncapped {
		t.Errorf("capped at 30%%: measured %.2f%% (uncapped %.2f%%)", at30, uncapped)
	}
	if at20 < 10 || at20 > 30 || at20 >= uncapped {
		t.Errorf("capped at 20%%: measured %.2f%% (uncapped %.2f%%)", at20, uncapped)
	}
}

func TestRootMemHog(t *testing.T) {
	g := realGroup(t)
	const limit = 50 << 20
	ops, err := g.SetMemory(limit, limit)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range ops {
		if err := o.Do(io.Discard); errors.Is(err, ErrNoSwapAccounting) {
			t.Log(err) // the memory limit alone still holds
		} else if err != nil {
			t.Fatalf("%s: %v", o.Cmd, err)
		}
	}
	if m, err := g.Memory(); err != nil || m.Limit != limit {
		t.Fatalf("Memory = %+v, %v", m, err)
	}

	var progress bytes.Buffer
	small, err := RunMemHog(g, 20, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if small.Reached != 20 || small.Signal != 0 {
		t.Errorf("20 MiB under a 50 MiB limit: %v", small)
	}

	progress.Reset()
	big, err := RunMemHog(g, 100, &progress)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("100 MiB under a 50 MiB limit: %v\n%s", big, progress.String())
	switch {
	case big.OOMKilled:
		if big.OOMKills < 1 || big.Reached >= 50 {
			t.Errorf("OOM-killed but %v", big)
		}
	case big.Reached == 100: // held at the limit: the rest went to swap
		if big.Peak > limit+uint64(64*os.Getpagesize()*runtime.NumCPU()) {
			t.Errorf("held, but peak %d over the limit", big.Peak)
		}
	default:
		t.Errorf("neither held nor OOM-killed: %v", big)
	}
	// The kernel charges memory in per-CPU batches (64 pages), so the
	// recorded peak may pass the limit by a batch; not by more.
	slack := uint64(64 * os.Getpagesize() * runtime.NumCPU())
	if big.Peak > 0 && (big.Peak > limit+slack || big.Peak < limit*8/10) {
		t.Errorf("peak %s, want near %s", FormatBytes(big.Peak), FormatBytes(limit))
	}
}

// The documents' sequence, 200m then 300m with swap 300m, then down to 50m:
// v1 refuses any step that would put memsw under memory.
func TestRootMemoryOrder(t *testing.T) {
	g := realGroup(t)
	for _, step := range [][2]int64{{200 << 20, 0}, {300 << 20, 300 << 20}, {50 << 20, 50 << 20}, {Unlimited, 0}} {
		ops, err := g.SetMemory(step[0], step[1])
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range ops {
			if err := o.Do(io.Discard); errors.Is(err, ErrNoSwapAccounting) {
				t.Skip(err)
			} else if err != nil {
				t.Fatalf("step %v: %s: %v", step, o.Cmd, err)
			}
		}
		m, err := g.Memory()
		if err != nil || m.Limit != step[0] || (step[1] != 0 && m.Swap != step[1]) {
			t.Errorf("step %v: Memory = %+v, %v", step, m, err)
		}
	}
	if g.Version() != 1 {
		return
	}
	// The trap itself: memsw below memory is refused.
	doAll(t, mustMem(t, g, 100<<20, 100<<20))
	err := echo("52428800", g.Dirs()[len(g.Dirs())-1]+"/memory.memsw.limit_in_bytes", false).Do(io.Discard)
	if !errors.Is(err, unix.EINVAL) {
		t.Errorf("memsw under memory: %v, want EINVAL", err)
	}
}

func TestRootDestroyKills(t *testing.T) {
	g := realGroup(t)
	b := startBurnerTB(t, 2)
	for _, pid := range b.Pids() {
		doAll(t, g.AddProc(pid))
	}
	ops := g.Destroy()
	if len(ops) == 0 || !strings.HasPrefix(ops[0].Cmd, "kill -9 $(cat ") && !strings.HasSuffix(ops[0].Cmd, "cgroup.kill") {
		t.Fatalf("Destroy of a busy group: %q", cmds(ops))
	}
	doAll(t, ops)
	if g.Exists() {
		t.Fatal("group still there")
	}
	for _, pid := range b.Pids() {
		if s := procState(pid); s != "" && s != "Z" {
			t.Errorf("worker %d survived Destroy (state %s)", pid, s)
		}
	}
	doAll(t, g.Destroy()) // again: a missing group is success
}

// On a hybrid host the empty cgroup2 tree still runs the v2 code for real:
// mkdir, cgroup.procs, cpu.stat usage_usec (kept without the cpu controller),
// cgroup.kill and rmdir.
func TestRootHybridV2(t *testing.T) {
	needRoot(t)
	l, err := DetectHost()
	if err != nil || l.Mode != ModeHybrid {
		t.Skip("not a hybrid host")
	}
	u, _ := l.Unified()
	g := &v2Group{root: u.Point, name: testName()}
	t.Cleanup(func() { destroy(t, g) })
	if got := cmds(g.Create()); len(got) != 1 || got[0] != "mkdir "+u.Point+"/"+g.name {
		t.Fatalf("Create with no controllers: %q", got)
	}
	doAll(t, g.Create())
	b := startBurnerTB(t, 1)
	doAll(t, g.AddProc(b.Pids()[0]))
	if pids, err := g.Procs(); err != nil || len(pids) != 1 || pids[0] != b.Pids()[0] {
		t.Fatalf("Procs = %v, %v", pids, err)
	}
	// The group's usage_usec must count what the worker itself used over
	// the same window (/proc ticks, 10 ms each), however busy the machine.
	u0, err1 := g.CPUUsage()
	c0, err2 := procsCPU(b.Pids())
	time.Sleep(time.Second)
	u1, err3 := g.CPUUsage()
	c1, err4 := procsCPU(b.Pids())
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		t.Fatal(err)
	}
	group, own := u1-u0, c1-c0
	t.Logf("one uncapped worker in %s: usage_usec +%v, its own utime+stime +%v", g.dir(), group, own)
	if own < 50*time.Millisecond || group < own-30*time.Millisecond || group > own+30*time.Millisecond {
		t.Errorf("cpu.stat usage_usec grew by %v while the worker used %v", group, own)
	}
	destroy(t, g)
	if s := procState(b.Pids()[0]); s != "" && s != "Z" {
		t.Errorf("worker survived cgroup.kill (state %s)", s)
	}
}
