package cgroup

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containers-underneath/lab/primitives/reexec"
)

func TestParseStatCPU(t *testing.T) {
	// utime 150 and stime 50 ticks; the name holds a space and a ')'.
	line := "13608 (lab burn) x) R 13607 13607 2223 34816 13607 4194304 90 0 0 0 150 50 0 0 20 0 1 0 1234 5000000 100 18446744073709551615"
	got, err := parseStatCPU(line)
	if err != nil || got != 2*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 2s", got, err)
	}
	if _, err := parseStatCPU("garbage"); err == nil {
		t.Error("garbage accepted")
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		p    float64
		want string
	}{{30.0349, "30.03%"}, {19.8, "19.80%"}, {0, "0.00%"}, {199.996, "200.00%"}} {
		if got := FormatPercent(tc.p); got != tc.want {
			t.Errorf("FormatPercent(%v) = %s, want %s", tc.p, got, tc.want)
		}
	}
	for _, tc := range []struct {
		n    uint64
		want string
	}{{160 << 10, "160KiB"}, {200 << 20, "200MiB"}, {1019530035, "972.3MiB"}, {512, "512B"}} {
		if got := FormatBytes(tc.n); got != tc.want {
			t.Errorf("FormatBytes(%d) = %s, want %s", tc.n, got, tc.want)
		}
	}
	if p := (CPULimit{Quota: 20000, Period: 100000}).Percent(); p != 20 {
		t.Errorf("Percent = %v", p)
	}
}

func startBurner(t *testing.T, n int) *Burner {
	t.Helper()
	b, err := StartBurner(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Stop(); err != nil {
			t.Error(err)
		}
	})
	return b
}

func TestBurner(t *testing.T) {
	b := startBurner(t, 2)
	pids := b.Pids()
	if len(pids) != 2 || pids[0] == pids[1] {
		t.Fatalf("pids = %v", pids)
	}
	// top and pgrep show the worker's name, not "exe": it names itself
	// first thing after it starts.
	for _, pid := range pids {
		var comm []byte
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if comm, _ = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); string(comm) == burnName+"\n" {
				break
			}
		}
		if string(comm) != burnName+"\n" {
			t.Errorf("worker %d: comm %q, want %s", pid, comm, burnName)
		}
	}
	time.Sleep(100 * time.Millisecond)
	use, err := SampleProcsCPU(pids, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("2 workers uncapped: %s", FormatPercent(use))
	// Other tests' workers may share the CPUs: any real use shows a spin.
	if use < 10 {
		t.Errorf("2 workers use %.1f%% of a CPU; are they spinning?", use)
	}
	// v1's tasks moves one thread: the spinning one must be the main thread.
	for _, pid := range pids {
		all, _ := procsCPU([]int{pid})
		main, err := threadCPU(pid, pid)
		if err != nil {
			t.Fatal(err)
		}
		if main < all*8/10 {
			t.Errorf("worker %d: main thread used %v of %v; the spin is not on the main thread", pid, main, all)
		}
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			t.Errorf("worker %d still there after Stop", pid)
		}
	}
	if err := b.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func threadCPU(pid, tid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// The trap of PR_SET_PDEATHSIG in Go: it fires when the forking thread
// exits. A goroutine that locks its thread and returns ends that thread; the
// workers must outlive it.
func TestBurnerSurvivesLockedThreadExit(t *testing.T) {
	var b *Burner
	var err error
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		b, err = StartBurner(1)
		close(done)
	}()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Stop() })
	time.Sleep(300 * time.Millisecond)
	if s := procState(b.Pids()[0]); s == "" || s == "Z" {
		t.Errorf("worker died with the thread that asked for it (state %q)", s)
	}
}

// Workers die when the lab dies.
func TestBurnerDiesWithLab(t *testing.T) {
	parent := reexec.Command("lab-test-parent")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	parent.Stderr = os.Stderr
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer parent.Wait()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		parent.Process.Kill()
		t.Fatal(err)
	}
	worker, _ := strconv.Atoi(strings.TrimSpace(line))
	if s := procState(worker); s == "" || s == "Z" {
		t.Fatalf("worker %d not running (state %q)", worker, s)
	}
	parent.Process.Signal(syscall.SIGKILL)
	deadline := time.Now().Add(3 * time.Second)
	for {
		if s := procState(worker); s == "" || s == "Z" {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(worker, syscall.SIGKILL)
			t.Fatalf("worker %d outlived the lab", worker)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procState is the state letter of pid, "" when it is gone.
func procState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return f[0]
}

func TestMemHogUnconfined(t *testing.T) {
	h, err := StartMemHog(25, 10)
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	res, err := h.Run(&progress)
	if err != nil {
		t.Fatal(err)
	}
	if res.Reached != 25 || res.Signal != 0 || progress.String() != "10 MiB\n20 MiB\n25 MiB\n" {
		t.Errorf("result %+v, progress %q", res, progress.String())
	}
	if got := res.String(); got != "reached 25 MiB (oom_kill 0)" {
		t.Errorf("String = %q", got)
	}
	h.Stop() // harmless after Run
}
