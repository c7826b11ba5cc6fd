package labtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/simhost"
)

// InterruptAtEveryStep runs the lesson's binary and stops it at each step
// in turn, by SIGINT or SIGTERM: it must exit 130 and leave no process and
// no world. Then SIGKILL at killStep, after which `clean` must remove
// everything. The machine is as it was at the end.
func InterruptAtEveryStep(t *testing.T, l *engine.Lesson, killStep int) {
	NeedRoot(t)
	Short(t)
	before := MachineState(t)
	steps := len(l.Build(engine.Bind(l, nil)).Steps) + 1
	for k := 1; k <= steps; k++ {
		sig := []syscall.Signal{syscall.SIGINT, syscall.SIGTERM}[k%2]
		t.Run(fmt.Sprintf("step%d-%s", k, sig), func(t *testing.T) {
			cmd := exec.Command(Binary(t), l.Name, "--no-color")
			pipe, _ := cmd.StdoutPipe()
			var errOut bytes.Buffer
			cmd.Stderr = &errOut
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(pipe)
			marker := fmt.Sprintf("Step %d/%d", k, steps)
			seen := false
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), marker) {
					seen = true
					cmd.Process.Signal(sig)
					break
				}
			}
			go func() {
				for sc.Scan() {
				}
			}()
			err := cmd.Wait()
			if !seen {
				t.Fatalf("never saw %q (exit %v): %s", marker, err, errOut.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 130 {
				// The signal may land after the last check: then the run
				// completes and cleans up normally.
				if err != nil || k != steps {
					t.Errorf("exit %v, want 130; stderr %s", err, errOut.String())
				}
			}
			if ps := LabProcesses(); len(ps) > 0 {
				t.Errorf("processes left: %v", ps)
			}
			if ids, _ := simhost.List(l.Name); len(ids[l.Name]) > 0 {
				t.Errorf("worlds left: %v", ids)
			}
		})
	}
	t.Run("SIGKILL-then-clean", func(t *testing.T) {
		cmd := exec.Command(Binary(t), l.Name, "--no-color")
		pipe, _ := cmd.StdoutPipe()
		cmd.Start()
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), fmt.Sprintf("Step %d/", killStep)) {
				cmd.Process.Kill()
				break
			}
		}
		cmd.Wait()
		// PR_SET_PDEATHSIG took the hosts down with the lab.
		deadline := time.Now().Add(5 * time.Second)
		for len(LabProcesses()) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if ps := LabProcesses(); len(ps) > 0 {
			t.Errorf("hosts outlived a killed lab: %v", ps)
		}
		out, err := exec.Command(Binary(t), l.Name, "clean").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "removed run-") {
			t.Errorf("clean after SIGKILL: %v %q", err, out)
		}
		if ids, _ := simhost.List(l.Name); len(ids[l.Name]) > 0 {
			t.Errorf("worlds left after clean: %v", ids)
		}
	})
	if after := MachineState(t); after != before {
		t.Errorf("the machine changed:\n%s", Diff(before, after))
	}
}

// LabOnPath puts the built lab (Binary) first on PATH, for scripts that
// reach another host with `lab LESSON shell --host` or run `lab tool`.
func LabOnPath(t *testing.T) {
	t.Helper()
	t.Setenv("PATH", filepath.Dir(Binary(t))+":"+os.Getenv("PATH"))
}

// Must runs a command with bash on host h, as typed in its shell, and
// fails the test if it fails.
func Must(t *testing.T, h *host.Host, cmd string) {
	t.Helper()
	var out bytes.Buffer
	code, err := engine.Exec(h, []string{"bash", "-c", cmd}, os.Environ(), nil, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("%s on %s: exit %d, %v\n%s", cmd, h.Name, code, err, out.String())
	}
}

// MachineFiles are the names in the machine's / and /root: a lesson's
// world has files of its own, and a lesson typed by hand must add none of
// them to the machine.
type MachineFiles struct{ top, root []string }

// Files reads the machine's / and /root now.
func Files(t *testing.T) MachineFiles {
	t.Helper()
	return MachineFiles{names(t, "/"), names(t, "/root")}
}

// Unchanged wants the machine's / and /root as they were, no name with mark
// in /tmp or /root, and nothing left of the lesson's world files after
// clean (which the caller has run).
func (f MachineFiles) Unchanged(t *testing.T, l *engine.Lesson, mark string) {
	t.Helper()
	if got := names(t, "/"); !slices.Equal(got, f.top) {
		t.Errorf("the machine's / changed: %v, was %v", got, f.top)
	}
	if got := names(t, "/root"); !slices.Equal(got, f.root) {
		t.Errorf("the machine's /root changed: %v, was %v", got, f.root)
	}
	for _, d := range []string{"/tmp", "/root"} {
		for _, n := range names(t, d) {
			if strings.Contains(n, mark) {
				t.Errorf("%s/%s is on the machine", d, n)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(engine.WorkRoot(), l.Name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("clean left the world's files: %v", err)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
