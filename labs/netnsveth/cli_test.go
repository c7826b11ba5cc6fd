package netnsveth

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/labs/labtest"
	"github.com/containers-underneath/lab/primitives/simhost"
)

func lab(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(labtest.Binary(t), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// Bad input: one line that says what to do, exit 2, nothing made.
func TestBadInput(t *testing.T) {
	before := ""
	if os.Geteuid() == 0 {
		before = labtest.MachineState(t)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"netns-vet"}, `no lesson or command "netns-vet": 'lab list' shows the lessons`},
		{[]string{"netns-veth", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"netns-veth", "frobnicate"}, `netns-veth has no subcommand "frobnicate"`},
		{[]string{"netns-veth", "check", "--host", "nowhere"}, "there is no netns-veth shell to check"},
		{[]string{"netns-veth", "check", "--host", "docker01", "--host-ns"}, "--host and --host-ns exclude each other"},
	}
	for _, c := range cases {
		out, errOut, code := lab(t, c.args...)
		if code != 2 {
			t.Errorf("lab %v: exit %d, want 2", c.args, code)
		}
		lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
		if len(lines) != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("lab %v: stderr %q, want one line with %q", c.args, errOut, c.want)
		}
		if out != "" {
			t.Errorf("lab %v printed on stdout: %q", c.args, out)
		}
	}
	if before != "" {
		if after := labtest.MachineState(t); after != before {
			t.Errorf("bad input changed the machine:\n%s", labtest.Diff(before, after))
		}
	}
}

// Not root: exit 2 with a line that says sudo, and nothing made. The
// dry-run and the list need nothing.
func TestNotRoot(t *testing.T) {
	labtest.NeedRoot(t) // to become someone else
	bin := labtest.Binary(t)
	os.Chmod(bin, 0o755)
	for dir := bin; dir != "/"; {
		dir = dir[:strings.LastIndexByte(dir, '/')]
		if dir == "" {
			break
		}
		os.Chmod(dir, 0o755)
	}
	run := func(args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		cmd.Env = []string{"PATH=/usr/bin:/bin", "LAB_STATE_DIR=" + os.Getenv("LAB_STATE_DIR")}
		var b bytes.Buffer
		cmd.Stdout, cmd.Stderr = &b, &b
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return b.String(), ee.ExitCode()
		}
		return b.String(), 0
	}
	out, code := run("netns-veth")
	if code != 2 || !strings.Contains(out, "needs root") || !strings.Contains(out, "sudo") || strings.Count(out, "\n") != 1 {
		t.Errorf("not root: exit %d, %q", code, out)
	}
	if ids, _ := simhost.List(""); len(ids) > 0 {
		t.Errorf("a world was made: %v", ids)
	}
	if out, code := run("netns-veth", "--dry-run"); code != 0 || !strings.Contains(out, "ip netns add linux_yuan") {
		t.Errorf("dry-run as a user: exit %d %q", code, out)
	}
	if out, code := run("list"); code != 0 || !strings.Contains(out, "netns-veth") {
		t.Errorf("list as a user: exit %d %q", code, out)
	}
}

// Ctrl-C or SIGTERM at any step leaves nothing behind; so does SIGKILL,
// once `clean` has run.
func TestInterruptAtEveryStep(t *testing.T) { labtest.InterruptAtEveryStep(t, Lesson, 5) }

// The shell, check and clean leave the machine as it was; check --json
// and exit codes say the same as the text.
func TestShellCheckClean(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	before := labtest.MachineState(t)
	t.Cleanup(func() { lab(t, "netns-veth", "clean") })

	out, _, code := lab(t, "netns-veth", "shell", "--", "hostname")
	if code != 0 || strings.TrimSpace(out) != "docker01" {
		t.Fatalf("shell hostname: exit %d %q", code, out)
	}
	if _, _, code := lab(t, "netns-veth", "shell", "--", "sh", "-c", "exit 7"); code != 7 {
		t.Errorf("shell exit code %d, want 7", code)
	}
	// Half done: check fails with exit 1 and names what is missing.
	lab(t, "netns-veth", "shell", "--", "ip", "netns", "add", "linux_yuan")
	out, _, code = lab(t, "netns-veth", "check", "--json")
	var r engine.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("check --json: %v\n%s", err, out)
	}
	if code != 1 || r.Passed() || !r.Items[0].OK || r.Items[1].OK || r.Items[1].Hint != "ip netns exec linux_yuan ip link set lo up" {
		t.Errorf("half-done check: exit %d, %+v", code, r.Items[:2])
	}
	// The namespace is the host's own: the machine's /run/netns has none.
	if _, err := os.Stat("/run/netns/linux_yuan"); err == nil {
		t.Error("linux_yuan appeared on the machine")
	}
	// --host-ns run inside docker01 grades docker01 as "this machine".
	var script bytes.Buffer
	engine.DryRun(Lesson, &script)
	lab(t, "netns-veth", "clean")
	// As the script's first lines say: docker01's /tmp is not the machine's.
	if _, errOut, code := lab(t, "netns-veth", "shell", "--", "bash", "-c", script.String()); code != 0 {
		t.Fatalf("script: %d %s", code, errOut)
	}
	out, _, code = lab(t, "netns-veth", "shell", "--", labtest.Binary(t), "netns-veth", "check", "--host-ns", "--json")
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--host-ns --json: %v\n%s", err, out)
	}
	skipped := 0
	for _, it := range r.Items {
		if it.Skip != "" {
			skipped++
		}
	}
	if code != 0 || !r.Passed() || skipped != 1 {
		t.Errorf("--host-ns on a finished exercise: exit %d, score %d/%d, %d skipped", code, r.Score, r.Max, skipped)
	}
	if out, _, code := lab(t, "netns-veth", "clean"); code != 0 || !strings.Contains(out, "removed shell") {
		t.Errorf("clean: %d %q", code, out)
	}
	if out, _, _ := lab(t, "netns-veth", "clean"); !strings.Contains(out, "nothing to clean") {
		t.Errorf("second clean: %q", out)
	}
	if after := labtest.MachineState(t); after != before {
		t.Errorf("shell/check/clean changed the machine:\n%s", labtest.Diff(before, after))
	}
}
