package cli_test

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containers-underneath/lab/labs/labtest"
	"golang.org/x/sys/unix"
)

// cgroupTurn waits for the machine-wide linux_yuan: the cgroup-cpu tests
// of every package take turns through the same lock file.
func cgroupTurn(t *testing.T) {
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "lab-cgroup-cpu-tests.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
}

func noGroup(t *testing.T) {
	t.Helper()
	left, _ := filepath.Glob("/sys/fs/cgroup/*/linux_yuan")
	if _, err := os.Stat("/sys/fs/cgroup/linux_yuan"); err == nil {
		left = append(left, "/sys/fs/cgroup/linux_yuan")
	}
	if len(left) > 0 {
		t.Errorf("cgroup left: %v", left)
	}
}

// startCgroupCPU runs the lesson with stdout to a pipe and reads it up to
// the nth line holding marker.
func startCgroupCPU(t *testing.T, marker string, nth int) (*exec.Cmd, *os.File, *bytes.Buffer) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(labtest.Binary(t), "cgroup-cpu", "--no-color")
	cmd.Stdout = w
	var e bytes.Buffer
	cmd.Stderr = &e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	sc := bufio.NewScanner(r)
	var seen strings.Builder
	for n := 0; n < nth && sc.Scan(); {
		seen.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), marker) {
			n++
		}
	}
	if !strings.Contains(seen.String(), marker) {
		cmd.Wait()
		if strings.Contains(seen.String(), "in use by another lab run") {
			t.Skip("another lab run holds linux_yuan")
		}
		t.Fatalf("never saw %q: %s\n%s", marker, seen.String(), e.String())
	}
	return cmd, r, &e
}

// Ctrl-C while a check measures the cap (two seconds of sampling) stops
// the lesson within half a second, with nothing left.
func TestCtrlCDuringMeasurement(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	cgroupTurn(t)
	// Step 5's checks: the cap is measured right after this item.
	cmd, r, e := startCgroupCPU(t, "processes are in linux_yuan", 2)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
		}
	}()
	time.Sleep(100 * time.Millisecond)
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	took := time.Since(t0)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("exit %v, want 130; stderr %s", err, e.String())
	}
	if took > 500*time.Millisecond {
		t.Errorf("Ctrl-C took %v to stop the lesson, want at most 0.5 s", took)
	}
	t.Logf("stopped %v after Ctrl-C", took)
	nothingLeft(t)
	noGroup(t)
}

// A pipe closed with the group and its workers there (`lab cgroup-cpu | less`, q)
// removes the group and the workers as Ctrl-C does.
func TestClosedStdoutCgroup(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	cgroupTurn(t)
	cmd, r, e := startCgroupCPU(t, "Step 4/", 1)
	r.Close()
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 || !strings.Contains(e.String(), "interrupted") {
		t.Errorf("closed stdout: %v, stderr %q", err, e.String())
	}
	nothingLeft(t)
	noGroup(t)
}
