package reexec

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const testEntry = "lab-test-child"

func init() {
	Register(testEntry, func() {
		// Says it is up, then waits for its stdin to close.
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
	})
}

func TestMain(m *testing.M) {
	Init()
	os.Exit(m.Run())
}

// A re-executed child shows its entry name where top, ps -e and pgrep
// look (comm), not "exe", and its argv[0] where ps -f looks.
func TestChildIsNamed(t *testing.T) {
	cmd := Command(testEntry)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := StartTied(cmd); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); cmd.Wait() }()
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("child said %q", line)
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(comm)); got != testEntry {
		t.Errorf("comm %q, want %q", got, testEntry)
	}
	if p, err := exec.LookPath("pgrep"); err == nil {
		b, _ := exec.Command(p, "-x", testEntry).Output()
		if !strings.Contains(string(b), fmt.Sprint(cmd.Process.Pid)) {
			t.Errorf("pgrep -x %s found %q, not %d", testEntry, b, cmd.Process.Pid)
		}
	}
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", cmd.Process.Pid))
	for _, task := range tasks {
		c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/comm", cmd.Process.Pid, task.Name()))
		if got := strings.TrimSpace(string(c)); got != testEntry {
			t.Errorf("thread %s: comm %q (top -H)", task.Name(), got)
		}
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
	if args := strings.Split(string(cmdline), "\x00"); args[0] != testEntry {
		t.Errorf("argv %q", args)
	}
}

func TestSetNameCutsTo15Bytes(t *testing.T) {
	// The test process itself is renamed, and named back.
	old, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { SetName(strings.TrimSpace(string(old))) })
	if err := SetName("lab-replay-chroot"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile("/proc/self/comm"); strings.TrimSpace(string(got)) != "lab-replay-chro" {
		t.Errorf("comm %q", got)
	}
}
