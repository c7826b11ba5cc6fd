package cli_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/labs/labtest"
	"github.com/containers-underneath/lab/primitives/simhost"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { labtest.Main(m) }

type result struct {
	out, err string
	code     int
}

// lab runs the built binary in dir (the test's own when empty).
func lab(t *testing.T, dir string, args ...string) result {
	t.Helper()
	cmd := exec.Command(labtest.Binary(t), args...)
	cmd.Dir = dir
	return runLab(t, cmd)
}

// runLab runs cmd and returns what it printed and its exit code.
func runLab(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := result{out: o.String(), err: e.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// nothingLeft fails the test if anything of a lesson is still there: a
// world, a process of the built binary, a file under the test's own
// LAB_STATE_DIR or LAB_WORK_DIR (the /run/lab and /var/lib/lab of a student).
func nothingLeft(t *testing.T) {
	t.Helper()
	if ids, _ := simhost.List(""); len(ids) > 0 {
		t.Errorf("worlds left: %v", ids)
	}
	for _, env := range []string{"LAB_STATE_DIR", "LAB_WORK_DIR"} {
		d := os.Getenv(env)
		filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
			if err == nil && p != d {
				t.Errorf("left under %s: %s", env, p)
			}
			return nil
		})
	}
	if ps := binaryProcesses(t); len(ps) > 0 {
		t.Errorf("processes of the lab left: %v", ps)
	}
}

// binaryProcesses lists processes running the built binary (keepers,
// burners), waiting a moment for ones already told to go.
func binaryProcesses(t *testing.T) []string {
	bin := labtest.Binary(t)
	var out []string
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out = nil
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			exe, err := os.Readlink("/proc/" + e.Name() + "/exe")
			if err != nil || exe != bin {
				continue
			}
			stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
				continue
			}
			cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			out = append(out, e.Name()+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
		if len(out) == 0 || time.Now().After(deadline) {
			return out
		}
	}
}

// Flags work after arguments, as the README writes them, for every
// command: the output is the same as with the flags first.
func TestFlagsAnywhere(t *testing.T) {
	rec := filepath.Join("..", "grade", "testdata", "half.lab")
	dir := filepath.Dir(rec)
	pairs := [][2][]string{
		{{"grade", dir, "--format", "csv"}, {"grade", "--format", "csv", dir}},
		{{"grade", rec, "--diff", "--no-color"}, {"grade", "--diff", "--no-color", rec}},
		{{"grade", rec, "--format=json"}, {"grade", "--format=json", rec}},
		{{"netns-veth", "--dry-run", "--lang", "zh"}, {"netns-veth", "--lang", "zh", "--dry-run"}},
	}
	for _, p := range pairs {
		a, b := lab(t, "", p[0]...), lab(t, "", p[1]...)
		if a != b {
			t.Errorf("lab %v and lab %v differ:\n%+v\n%+v", p[0], p[1], a, b)
		}
		if a.out == "" || strings.Contains(a.err, "flag provided") {
			t.Errorf("lab %v: %+v", p[0], a)
		}
	}
	if r := lab(t, "", "grade", dir, "--format", "csv"); !strings.HasPrefix(r.out, "student,lesson,score") {
		t.Errorf("grade DIR --format csv is not csv: %q", r.out)
	}
	if r := lab(t, "", "grade", rec, "--diff", "--no-color"); !strings.Contains(r.out, "expected:") {
		t.Errorf("grade FILE --diff shows no differences: %q", r.out)
	}
	if r := lab(t, "", "netns-veth", "--dry-run", "--lang", "zh"); !strings.Contains(r.out, "创建") {
		t.Errorf("--lang zh after --dry-run was not taken: %q", r.out)
	}
	if os.Geteuid() != 0 {
		return
	}
	// Root: a check's flags after its name, and a shell's own command's
	// flags left to that command.
	t.Cleanup(func() { lab(t, "", "netns-veth", "clean") })
	r := lab(t, "", "netns-veth", "check", "--host-ns", "--json")
	var rep engine.Report
	if err := json.Unmarshal([]byte(r.out), &rep); err != nil || r.code > 1 {
		t.Errorf("check --host-ns --json: exit %d %v\n%s%s", r.code, err, r.out, r.err)
	}
	r = lab(t, "", "netns-veth", "shell", "--", "ip", "-d", "link", "show", "lo")
	if r.code != 0 || !strings.Contains(r.out, "promiscuity") {
		t.Errorf("shell -- ip -d link: exit %d %q %q", r.code, r.out, r.err)
	}
	r = lab(t, "", "netns-veth", "shell", "--host", "gateway", "--", "hostname")
	if r.code != 0 || strings.TrimSpace(r.out) != "gateway" {
		t.Errorf("shell --host gateway -- hostname: exit %d %q %q", r.code, r.out, r.err)
	}
}

// Bad input anywhere: one line on stderr that says what to do, exit 2,
// nothing on stdout, nothing made.
func TestUsageErrors(t *testing.T) {
	before := ""
	if os.Geteuid() == 0 {
		before = labtest.MachineState(t)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "--bogus"}, "flag provided but not defined: -bogus (see 'lab list --help')"},
		{[]string{"list", "extra"}, `unexpected argument "extra"`},
		{[]string{"doctor", "--bogus"}, "see 'lab doctor --help'"},
		{[]string{"tool", "--bogus"}, "see 'lab tool --help'"},
		{[]string{"tool", "nosuch"}, `lab tool has no subcommand "nosuch": use burn`},
		{[]string{"tool", "stats", "--bogus"}, "see 'lab tool stats --help'"},
		{[]string{"netns-veth", "--bogus"}, "see 'lab netns-veth --help'"},
		{[]string{"netns-veth", "--step", "--bogus"}, "see 'lab netns-veth --help'"},
		{[]string{"netns-veth", "check", "--json", "--bogus"}, "see 'lab netns-veth check --help'"},
		{[]string{"netns-veth", "--lang", ""}, "--lang is empty: give it a value"},
		{[]string{"netns-veth", "--lang", "xx"}, `no "xx" narration for netns-veth`},
		{[]string{"netns-veth", "check", "--record", ""}, "--record is empty"},
		{[]string{"replay", "--timeout", "0", "../../transcripts/netns-veth.md"}, "--timeout 0s is no time limit"},
		{[]string{"replay", "../../transcripts/netns-veth.md", "--command-timeout", "-1s"}, "--command-timeout -1s is no time limit"},
		{[]string{"replay", "no-such-transcript.md"}, `no file "no-such-transcript.md": check the path`},
		{[]string{"grade", "no-such.lab", "--format", "csv"}, `no file "no-such.lab"`},
		{[]string{"grade", "--rubric", "no-such.rubric", "../grade/testdata/half.lab"}, `no file "no-such.rubric"`},
		{[]string{"grade", "../grade/testdata/half.lab", "--format", "xml"}, `no format "xml"`},
		{[]string{"netns-vet"}, `no lesson or command "netns-vet": 'lab list' shows the lessons`},
		{[]string{"netns-vet", "--step"}, `no lesson or command "netns-vet"`},
	} {
		r := lab(t, "", c.args...)
		if r.code != 2 {
			t.Errorf("lab %q: exit %d, want 2 (%q)", c.args, r.code, r.err)
		}
		if strings.Count(r.err, "\n") != 1 || !strings.Contains(r.err, c.want) {
			t.Errorf("lab %q: stderr %q, want one line with %q", c.args, r.err, c.want)
		}
		if r.out != "" {
			t.Errorf("lab %q printed on stdout: %q", c.args, r.out)
		}
	}
	if before != "" {
		nothingLeft(t)
		if after := labtest.MachineState(t); after != before {
			t.Errorf("bad input changed the machine:\n%s", labtest.Diff(before, after))
		}
	}
}

// lab --version and each lesson's own executable say the same version.
func TestVersion(t *testing.T) {
	r := lab(t, "", "--version")
	v := strings.TrimSpace(r.out)
	if r.code != 0 || strings.Count(r.out, "\n") != 1 || !strings.HasPrefix(v, "lab ") || !strings.HasSuffix(v, runtime.Version()) {
		t.Fatalf("lab --version: exit %d %q %q", r.code, r.out, r.err)
	}
	exe := filepath.Join(t.TempDir(), "netns-veth")
	build := exec.Command("go", "build", "-o", exe, "../../cmd/netns-veth")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(exe, "--version").Output()
	if err != nil || strings.TrimSpace(string(out)) != v {
		t.Errorf("netns-veth --version: %v %q, want %q", err, out, v)
	}
}

// asNobody runs the binary as an unprivileged user.
func asNobody(t *testing.T, args ...string) result {
	t.Helper()
	bin := labtest.Binary(t)
	for p := bin; p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LAB_STATE_DIR=" + os.Getenv("LAB_STATE_DIR")}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := result{out: o.String(), err: e.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	}
	return r
}

// doctor as a user says to run it as root, on one line, and tries nothing.
func TestDoctorNotRoot(t *testing.T) {
	labtest.NeedRoot(t) // to become someone else
	r := asNobody(t, "doctor")
	if r.code != 2 || r.out != "" || strings.Count(r.err, "\n") != 1 || !strings.Contains(r.err, "run as root") || strings.Contains(r.err, "modprobe") {
		t.Errorf("doctor as a user: exit %d, stdout %q, stderr %q", r.code, r.out, r.err)
	}
	if r := lab(t, "", "doctor"); r.code == 2 || !strings.Contains(r.out, "ok   root") {
		t.Errorf("doctor as root: exit %d %q %q", r.code, r.out, r.err)
	}
}

// check --host-ns grades the machine: no item speaks of docker01.
func TestHostNSNamesTheMachine(t *testing.T) {
	labtest.NeedRoot(t)
	for _, name := range []string{"netns-veth", "bridge-nat", "chroot-jail", "overlay-mount"} {
		r := lab(t, "", name, "check", "--host-ns", "--json")
		var rep engine.Report
		if err := json.Unmarshal([]byte(r.out), &rep); err != nil {
			t.Fatalf("%s check --host-ns --json: %v\n%s%s", name, err, r.out, r.err)
		}
		named := false
		for _, it := range rep.Items {
			if strings.Contains(it.Text+it.Found, "docker01") {
				t.Errorf("%s: item %s names docker01 on the machine: %q / %q", name, it.ID, it.Text, it.Found)
			}
			named = named || strings.Contains(it.Text, engine.MachineName)
		}
		if name == "netns-veth" && !named {
			t.Errorf("%s: no item names %q: %+v", name, engine.MachineName, rep.Items)
		}
		if !strings.Contains(rep.Host, "this machine") {
			t.Errorf("%s: the report is for %q", name, rep.Host)
		}
	}
}

// The dry-run's own one-liner works from any directory: the shell starts
// where its caller is.
func TestDryRunOneLinerAnywhere(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	t.Cleanup(func() { lab(t, "", "netns-veth", "clean") })
	// /var/tmp: a directory on the machine's disk, as a student's would be.
	dir, err := os.MkdirTemp("/var/tmp", "lab-cli-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if r := lab(t, dir, "netns-veth", "shell", "--", "pwd"); r.code != 0 || strings.TrimSpace(r.out) != dir {
		t.Errorf("shell -- pwd from %s: exit %d %q %q", dir, r.code, r.out, r.err)
	}
	// A directory the host cannot see (here: gone): /root.
	gone := exec.Command("bash", "-c", `d=$(mktemp -d -p /var/tmp) && cd "$d" && rmdir "$d" && exec "$0" netns-veth shell -- pwd`, labtest.Binary(t))
	if out, err := gone.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "/root" {
		t.Errorf("shell -- pwd from a directory that is gone: %v %q, want /root", err, out)
	}
	script := lab(t, dir, "netns-veth", "--dry-run").out
	line := ""
	for _, l := range strings.Split(script, "\n") {
		if strings.HasPrefix(l, "#   ") && strings.Contains(l, "netns-veth shell -- ") {
			line = strings.TrimPrefix(l, "#   ")
		}
	}
	if line == "" {
		t.Fatalf("no one-liner in the dry-run:\n%s", script)
	}
	// sudo is who runs it, here root already; lab is the built binary.
	line = strings.ReplaceAll(line, "sudo lab", "lab")
	sh := exec.Command("bash", "-c", line)
	sh.Dir = dir
	sh.Env = append(os.Environ(), "PATH="+filepath.Dir(labtest.Binary(t))+":"+os.Getenv("PATH"))
	out, err := sh.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Score: 20/20") {
		t.Errorf("%s in %s: %v\n%s", line, dir, err, out)
	}
}

// The shell's welcome and the end of a run say what to do next.
func TestSaysWhatNext(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	t.Cleanup(func() { lab(t, "", "netns-veth", "clean") })
	cmd := exec.Command(labtest.Binary(t), "netns-veth", "shell")
	cmd.Stdin = strings.NewReader("exit\n")
	out, err := cmd.CombinedOutput()
	for _, w := range []string{"lab netns-veth check", "lab netns-veth --step", "lab netns-veth clean"} {
		if err != nil || !strings.Contains(string(out), w) {
			t.Errorf("the shell's welcome does not say %q: %v\n%s", w, err, out)
		}
	}
	lab(t, "", "netns-veth", "clean")
	// --step without a terminal: said once, then every step runs.
	cmd = exec.Command(labtest.Binary(t), "netns-veth", "--step", "--no-color")
	cmd.Stdin = strings.NewReader("")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("--step without a terminal: %v\n%s", err, e.String())
	}
	if e.String() != "lab netns-veth: --step pauses only with a terminal on stdin; running every step without pausing\n" {
		t.Errorf("--step without a terminal said %q", e.String())
	}
	if strings.Contains(o.String(), "-- Enter:") || !strings.Contains(o.String(), "Score: 20/20") {
		t.Errorf("--step without a terminal paused or did not finish:\n%s", o.String())
	}
	lines := strings.Split(strings.TrimSpace(o.String()), "\n")
	last := lines[len(lines)-1]
	for _, w := range []string{"Next:", "lab netns-veth shell", "lab netns-veth check", "--step"} {
		if !strings.Contains(last, w) {
			t.Errorf("the run's last line does not say %q: %q", w, last)
		}
	}
	nothingLeft(t)
}

// openPty returns a pseudo-terminal's two ends: --step pauses only on one.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// --step on a terminal: Enter goes on, q quits and removes everything.
func TestStepQuit(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	before := labtest.MachineState(t)
	master, slave := openPty(t)
	go io.Copy(io.Discard, master) // the terminal's echo
	cmd := exec.Command(labtest.Binary(t), "netns-veth", "--step", "--no-color")
	cmd.Stdin = slave
	pipe, _ := cmd.StdoutPipe()
	var e bytes.Buffer
	cmd.Stderr = &e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(pipe)
	pauses := 0
	var seen strings.Builder
	for pauses < 3 {
		// The pause line ends without a newline: read up to its "--".
		s, err := rd.ReadString('-')
		seen.WriteString(s)
		if err != nil {
			t.Fatalf("the lesson ended before its third pause: %v\n%s%s", err, seen.String(), e.String())
		}
		if strings.HasSuffix(seen.String(), "cleans up --") {
			pauses++
			answer := "\n"
			if pauses == 3 {
				answer = "q\n"
			}
			master.WriteString(answer)
			seen.Reset()
		}
	}
	rest, _ := io.ReadAll(rd)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 || !strings.Contains(e.String(), "stopped; everything the lesson made has been removed") {
		t.Errorf("q: %v, stderr %q", err, e.String())
	}
	if !strings.Contains(string(rest), "Removed the simulated hosts") || strings.Contains(string(rest), "Step 3/") {
		t.Errorf("after q:\n%s", rest)
	}
	nothingLeft(t)
	if after := labtest.MachineState(t); after != before {
		t.Errorf("the machine changed:\n%s", labtest.Diff(before, after))
	}
}

// A closed stdout (`lab X | head -3`, q in less) cleans up like Ctrl-C.
func TestClosedStdout(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	before := labtest.MachineState(t)
	for _, c := range []struct {
		lesson string
		until  string // close the pipe after the line holding this
	}{
		{"netns-veth", ""},        // after three lines: `| head -3`
		{"netns-veth", "Step 5/"}, // mid-lesson
		{"bridge-nat", "Step 3/"},
	} {
		t.Run(c.lesson+"/"+c.until, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(labtest.Binary(t), c.lesson, "--no-color")
			cmd.Stdout = w
			var e bytes.Buffer
			cmd.Stderr = &e
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			sc := bufio.NewScanner(r)
			n := 0
			for sc.Scan() {
				n++
				if (c.until == "" && n == 3) || (c.until != "" && strings.HasPrefix(sc.Text(), c.until)) {
					break
				}
			}
			r.Close()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("the lab went on writing to a closed pipe")
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 130 || !strings.Contains(e.String(), "interrupted; everything the lesson made has been removed") {
				t.Errorf("closed stdout after %d lines: %v, stderr %q", n, err, e.String())
			}
			nothingLeft(t)
		})
	}
	if after := labtest.MachineState(t); after != before {
		t.Errorf("the machine changed:\n%s", labtest.Diff(before, after))
	}
}
