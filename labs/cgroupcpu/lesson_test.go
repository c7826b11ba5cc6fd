package cgroupcpu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/labs/labtest"
	"github.com/containers-underneath/lab/primitives/simhost"
)

const transcriptPath = "../../transcripts/cgroup-cpu.md"

// machineState is labtest's fingerprint plus the cgroup tree: the first
// level of every cgroup hierarchy (where linux_yuan lives) and what the v2
// roots enable for their children. Throwaway groups of other test packages
// (lab-test-*, lab-bench-*) come and go beside ours and are left out.
func machineState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(labtest.MachineState(t))
	l, err := detect()
	if err != nil {
		return b.String()
	}
	b.WriteString("$ cgroup tree\n")
	for _, m := range l.Mounts {
		ents, err := os.ReadDir(m.Point)
		if err != nil {
			t.Fatal(err)
		}
		var dirs []string
		for _, e := range ents {
			if e.IsDir() && !strings.HasPrefix(e.Name(), "lab-test-") && !strings.HasPrefix(e.Name(), "lab-bench-") {
				dirs = append(dirs, e.Name())
			}
		}
		sort.Strings(dirs)
		fmt.Fprintf(&b, "%s: %s\n", m.Point, strings.Join(dirs, " "))
		if m.FSType == "cgroup2" {
			sc, _ := os.ReadFile(filepath.Join(m.Point, "cgroup.subtree_control"))
			fmt.Fprintf(&b, "%s/cgroup.subtree_control: %s", m.Point, sc)
		}
	}
	return b.String()
}

// groupGone fails the test if any directory of linux_yuan is left.
func groupGone(t *testing.T) {
	t.Helper()
	s := newSetup()
	if s.err != nil {
		return
	}
	for _, d := range s.g.Dirs() {
		if exists(d) {
			t.Errorf("%s is left behind", d)
		}
	}
}

// cleanAll is what a test leaves with whatever happened: the lesson's own
// clean, as `sudo lab cgroup-cpu clean` runs it.
func cleanAll(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		var out bytes.Buffer
		if err := engine.Clean(Lesson, &out); err != nil {
			t.Errorf("clean: %v\n%s", err, out.String())
		}
		groupGone(t)
	})
}

func shortWindows(t *testing.T, d time.Duration) {
	old, oldCheck := window, checkWindow
	window, checkWindow = d, d
	t.Cleanup(func() { window, checkWindow = old, oldCheck })
}

// The whole lesson, recorded: the transcript matches the golden file (the
// measured numbers within their ±2 bands), every worker is gone, and the
// machine (network, mounts, cgroup tree) is as it was.
func TestTranscript(t *testing.T) {
	needRoot(t)
	cleanAll(t)
	before := machineState(t)
	rec := &engine.Transcript{}
	var out bytes.Buffer
	if err := engine.Run(context.Background(), Lesson, engine.Options{Out: &out, Style: engine.Plain(), Record: rec}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"[root@docker01 ~]# pids=$(lab tool burn -c 4 -t 20m -d)",
		"[root@docker01 ~]# lab tool stats linux_yuan",
		"killed by the OOM killer after",
		"reached 250 MiB: under the 300MiB limit",
		"Score: 9/9, all pass",
		"✔ linux_yuan is gone from every hierarchy, and every worker has exited",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	groupGone(t)
	for pid := range startedPids() {
		if alive(pid) {
			t.Errorf("process %d the lesson started is still running", pid)
		}
	}
	if after := machineState(t); after != before {
		t.Errorf("the machine changed:\n%s", labtest.Diff(before, after))
	}
	if ids, _ := simhost.List(Lesson.Name); len(ids[Lesson.Name]) > 0 {
		t.Errorf("worlds left behind: %v", ids)
	}

	var got bytes.Buffer
	if err := rec.Write(&got); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(transcriptPath, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(transcriptPath)
	if err != nil {
		t.Fatalf("%v (make transcripts writes it)", err)
	}
	if got.String() != string(want) {
		t.Errorf("a fresh run differs from %s (a measured value outside its band shows as a number; make transcripts regenerates the file after a deliberate change):\n%s\n\nthe run:\n%s",
			transcriptPath, labtest.Diff(string(want), got.String()), out.String())
	}
	back, err := engine.Parse(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Steps) != len(rec.Steps) || !slices.Equal(back.Steps[4].States, rec.Steps[4].States) {
		t.Errorf("transcript does not parse back to what was written")
	}
}

// finalSettings is the group as the transcript records it after the last
// step of the lesson, without the measurement (the script measures
// with a process of its own).
func finalSettings(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(transcriptPath)
	if err != nil {
		t.Fatalf("%v (make transcripts writes it)", err)
	}
	tr, err := engine.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range tr.Steps {
		if st.ID == "mem300" && len(st.States) > 0 {
			var keep []string
			for _, line := range strings.Split(st.States[0].Text, "\n") {
				if line != "" && !strings.HasPrefix(line, "layout:") && !strings.HasPrefix(line, "measured:") {
					keep = append(keep, line)
				}
			}
			return strings.Join(keep, "\n") + "\n"
		}
	}
	t.Fatal("no step mem300 in the transcript")
	return ""
}

// The printed commands are the truth: the --dry-run script, run with bash on
// the lesson's simulated host, leaves the group as the lesson does, check
// passes, and clean removes the group and the script's workers.
func TestDryRunScriptGivesTheLessonsState(t *testing.T) {
	needRoot(t)
	labtest.Short(t)
	want := finalSettings(t)
	cleanAll(t)
	var script bytes.Buffer
	if err := engine.DryRun(Lesson, &script); err != nil {
		t.Fatal(err)
	}
	// As the script's own first lines say: docker01's /tmp is not the machine's.
	var out bytes.Buffer
	code, err := engine.Shell(Lesson, "", []string{"bash", "-c", script.String()}, nil, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("script: exit %d, %v\n%s", code, err, out.String())
	}
	for _, line := range []string{"linux_yuan    ", "killed by the OOM killer after", "oom_kill 2"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("the script's output lacks %q:\n%s", line, out.String())
		}
	}
	s := newSetup()
	if got := settings(s); got != want {
		t.Errorf("the group after the script differs from the lesson's:\n%s", labtest.Diff(want, got))
	}
	workers, err := s.g.Procs()
	if err != nil || len(workers) != Workers {
		t.Fatalf("workers in the group: %v, %v", workers, err)
	}
	r, err := engine.CheckShell(Lesson, "")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Passed() {
		var b bytes.Buffer
		r.Print(&b, engine.Plain())
		t.Errorf("check fails on the script's result:\n%s", b.String())
	}
	if err := engine.Clean(Lesson, &out); err != nil {
		t.Fatal(err)
	}
	groupGone(t)
	if err := waitGone(workers, 5*time.Second); err != nil {
		t.Errorf("after clean: %v", err)
	}
}

// onlyRun is the state of the one run in progress in this process.
func onlyRun(t *testing.T) *run {
	t.Helper()
	runs.Lock()
	defer runs.Unlock()
	var found *run
	for id, r := range runs.m {
		if strings.HasPrefix(id, "run-") {
			if found != nil {
				t.Fatal("two runs in progress")
			}
			found = r
		}
	}
	if found == nil {
		t.Fatal("no run in progress")
	}
	return found
}

// Ctrl-C at any point removes the group and every worker, and a second run
// meanwhile is refused before it makes anything, without harming the first.
func TestInterruptAndSecondRun(t *testing.T) {
	needRoot(t)
	labtest.Short(t)
	shortWindows(t, time.Second)
	cleanAll(t)
	before := machineState(t)
	for _, tc := range []struct {
		name   string
		before int  // the step at whose pause Ctrl-C comes
		mid    bool // Ctrl-C lands while the step runs, not at its pause
		second bool // start a second run there first
	}{
		{name: "before the workers start", before: 3},
		{name: "while capping, with a second run refused", before: 4, mid: true, second: true},
		{name: "before the teardown", before: 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var pids []int
			var secondErr error
			var secondOut bytes.Buffer
			pause := func(_ context.Context, next string) error {
				if !strings.HasPrefix(next, fmt.Sprintf("step %d/", tc.before)) {
					return nil
				}
				r := onlyRun(t)
				r.mu.Lock()
				pids = append(pids, r.pids...)
				if r.master != nil {
					pids = append(pids, r.master.cmd.Process.Pid)
				}
				r.mu.Unlock()
				if tc.second {
					secondErr = engine.Run(context.Background(), Lesson, engine.Options{Out: &secondOut, Style: engine.Plain()})
					if !newSetup().g.Exists() {
						t.Error("the refused run removed the first run's group")
					}
					if !allAlive(pids) {
						t.Error("the refused run killed the first run's workers")
					}
				}
				if tc.mid {
					go func() { time.Sleep(300 * time.Millisecond); cancel() }()
					return nil
				}
				return engine.Interrupted
			}
			var out bytes.Buffer
			err := engine.Run(ctx, Lesson, engine.Options{Out: &out, Style: engine.Plain(), Pause: pause})
			if !errors.Is(err, engine.Interrupted) {
				t.Fatalf("run: %v, want interrupted\n%s", err, out.String())
			}
			groupGone(t)
			if err := waitGone(pids, 5*time.Second); err != nil {
				t.Error(err)
			}
			if tc.before > 3 && len(pids) != Workers+1 {
				t.Errorf("saw %d of the run's processes, want %d workers and their master", len(pids), Workers)
			}
			if tc.second {
				var se *engine.StepError
				if !errors.As(secondErr, &se) || se.Step != 2 || !strings.Contains(se.Found, "in use by another lab run (lab run "+fmt.Sprint(os.Getpid())+")") {
					t.Errorf("second run: %v, want step 2 refused naming lab run %d\n%s", secondErr, os.Getpid(), secondOut.String())
				}
				if secondErr != nil && strings.Contains(secondErr.Error(), "\n") {
					t.Errorf("the refusal is not one line: %q", secondErr.Error())
				}
				if strings.Contains(secondOut.String(), "]# mkdir") {
					t.Errorf("the second run made something:\n%s", secondOut.String())
				}
			}
		})
	}
	if after := machineState(t); after != before {
		t.Errorf("the machine changed:\n%s", labtest.Diff(before, after))
	}
}

func allAlive(pids []int) bool {
	for _, p := range pids {
		if !alive(p) {
			return false
		}
	}
	return len(pids) > 0
}

// A lab killed with SIGKILL cannot clean up: its workers die with it (tied
// to it), the group stays, and `lab cgroup-cpu clean` removes it.
func TestKilledLabThenClean(t *testing.T) {
	needRoot(t)
	labtest.Short(t)
	cleanAll(t)
	cmd := exec.Command("lab", "cgroup-cpu")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	s := newSetup()
	var workers []int
	deadline := time.Now().Add(30 * time.Second)
	for len(workers) < Workers {
		if time.Now().After(deadline) {
			t.Fatalf("the workers never got into the group:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
		workers, _ = s.g.Procs()
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := waitGone(workers, 5*time.Second); err != nil {
		t.Errorf("workers outlived the killed lab: %v", err)
	}
	if !s.g.Exists() {
		t.Fatal("the group went with the lab; nothing left for clean to do")
	}
	// The name is free for clean (the lock died with the run) but not for
	// a new run, which finds the group there.
	var clean bytes.Buffer
	if err := engine.Clean(Lesson, &clean); err != nil {
		t.Fatalf("clean: %v\n%s", err, clean.String())
	}
	if !strings.Contains(clean.String(), "removed run-") {
		t.Errorf("clean did not find the killed run's world:\n%s", clean.String())
	}
	groupGone(t)
}

// `lab tool burn -d` hands back the workers' pids and leaves them spinning
// until its timeout.
func TestToolBurnDetached(t *testing.T) {
	out, err := exec.Command("lab", "tool", "burn", "-c", "2", "-t", "1500ms", "-d").Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err != nil {
			t.Fatalf("output %q", out)
		}
		pids = append(pids, pid)
	}
	t.Cleanup(func() {
		for _, p := range pids {
			if alive(p) {
				killPid(p)
			}
		}
	})
	if len(pids) != 2 || !allAlive(pids) {
		t.Fatalf("pids %v, alive %v", pids, allAlive(pids))
	}
	use, _, err := sampleProcs(pids, 500*time.Millisecond)
	if err != nil || use < 50 {
		t.Errorf("2 workers use %.1f%% (%v); are they spinning?", use, err)
	}
	if err := waitGone(pids, 5*time.Second); err != nil {
		t.Errorf("after the timeout: %v", err)
	}
}

func TestDryRunNeedsNothing(t *testing.T) {
	s := newSetup()
	if s.err != nil {
		t.Skip("no cgroups here:", s.err)
	}
	existed := exists(s.p.Dir)
	var b bytes.Buffer
	if err := engine.DryRun(Lesson, &b); err != nil {
		t.Fatal(err)
	}
	script := b.String()
	lines := []string{
		"test ! -e " + s.p.Dir,
		"mkdir " + s.p.Dir,
		"pids=$(lab tool burn -c 4 -t 20m -d)",
		"lab tool stats $pids",
		"lab tool stats linux_yuan",
		"bash -c 'echo $$ >> " + s.p.MemTasks + "; exec lab tool memhog 350'",
	}
	if s.p.Version == 1 {
		lines = append(lines, "echo 30000 > "+s.p.QuotaFile, "echo 20000 > "+s.p.QuotaFile, "# rmdir "+s.p.Dir)
	} else {
		lines = append(lines, `echo "30000 100000" > `+s.p.QuotaFile, "echo 20000 > "+s.p.QuotaFile, "echo +cpu > "+s.p.SubtreeControl)
	}
	for _, l := range lines {
		if !strings.Contains(script, "\n"+l+"\n") {
			t.Errorf("script lacks the line %q", l)
		}
	}
	if strings.Contains(script, "\nrmdir") || strings.Contains(script, "\nkill") {
		t.Error("teardown is not commented out")
	}
	idx := -1
	for _, st := range Lesson.Build(engine.Bind(Lesson, nil)).Steps {
		for _, a := range st.Actions {
			i := strings.Index(script[idx+1:], a.Op.Cmd)
			if i < 0 {
				t.Fatalf("%q missing or out of order", a.Op.Cmd)
			}
			idx += i + 1
		}
	}
	if !existed && exists(s.p.Dir) {
		t.Error("printing the script made the group")
	}
}

func killPid(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}
