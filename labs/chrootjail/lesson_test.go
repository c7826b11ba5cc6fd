package chrootjail

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/labs/labtest"
	"github.com/containers-underneath/lab/primitives/jail"
	"github.com/containers-underneath/lab/primitives/reexec"
	"github.com/containers-underneath/lab/primitives/simhost"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite transcripts/chroot-jail.md from a fresh run")

func TestMain(m *testing.M) {
	reexec.Init()
	flag.Parse()
	_, done := labtest.StateDir()
	// The lesson's directories go to a disk directory of this test's own
	// (/tmp may be tmpfs, which the lesson refuses).
	work, err := os.MkdirTemp("/var/tmp", "lab-test-work-")
	if err != nil {
		panic(err)
	}
	os.Setenv("LAB_WORK_DIR", work)
	code := m.Run()
	done()
	os.RemoveAll(work)
	os.Exit(code)
}

// endState runs the lesson's steps (not its teardown) in a fresh world and
// returns its environment and transcript; the world and its directory go
// when the test ends.
func endState(t *testing.T) (*engine.Env, *engine.Transcript) {
	t.Helper()
	w, err := simhost.Create(Lesson.Name, engine.NewWorldID(), Lesson.Topology, simhost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	env := engine.Bind(Lesson, w)
	t.Cleanup(func() {
		w.Destroy()
		os.RemoveAll(env.WorkDir())
	})
	rec := &engine.Transcript{}
	var out bytes.Buffer
	if err := engine.RunSteps(context.Background(), env, Lesson.Build(env), engine.Options{Out: &out, Style: engine.Plain(), Record: rec}); err != nil {
		t.Fatalf("lesson failed: %v\n%s", err, out.String())
	}
	return env, rec
}

func TestLessonLeavesMachineAsItWas(t *testing.T) {
	labtest.NeedRoot(t)
	before := labtest.MachineState(t)
	var out bytes.Buffer
	if err := engine.Run(context.Background(), Lesson, engine.Options{Out: &out, Style: engine.Plain()}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"[root@docker02 ~]# ldd /bin/bash",
		"chroot: failed to run command '/bin/bash': No such file or directory",
		"/bin /lib /lib64",
		"ls: cannot access '/haha.log': No such file or directory",
		"bin  lib  lib64  xixi.log",
		"bin  haha.log  lib  lib64",
		"Score: 6/6, all pass",
		"✔ both jails are gone from docker02's disk",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if after := labtest.MachineState(t); after != before {
		t.Errorf("the machine changed:\n%s", labtest.Diff(before, after))
	}
	if ids, _ := simhost.List(Lesson.Name); len(ids[Lesson.Name]) > 0 {
		t.Errorf("worlds left behind: %v", ids)
	}
	if _, err := os.Stat(filepath.Join(engine.WorkRoot(), Lesson.Name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the lesson's directory is left behind: %v", err)
	}
}

// normalised applies the lesson's normalisation to what the engine records
// as is: the commands (they carry the world's directory) and the checks.
func normalised(rec *engine.Transcript) {
	for i := range rec.Steps {
		s := &rec.Steps[i]
		for j := range s.Commands {
			s.Commands[j].Cmd = Lesson.Normalize(s.Commands[j].Cmd)
		}
		for j := range s.Checks {
			s.Checks[j] = Lesson.Normalize(s.Checks[j])
		}
	}
}

func TestTranscript(t *testing.T) {
	labtest.NeedRoot(t)
	_, rec := endState(t)
	normalised(rec)
	var got bytes.Buffer
	if err := rec.Write(&got); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got.String(), engine.WorkRoot()) {
		t.Fatalf("the transcript names the test's directory %s", engine.WorkRoot())
	}
	path := filepath.Join("..", "..", "transcripts", "chroot-jail.md")
	if *update {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (make transcripts writes it)", err)
	}
	if got.String() != string(want) {
		t.Errorf("a fresh run differs from %s (make transcripts regenerates it after a deliberate change):\n%s", path, labtest.Diff(string(want), got.String()))
	}
	back, err := engine.Parse(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Steps) != len(rec.Steps) || back.Steps[5].State != rec.Steps[5].State {
		t.Errorf("transcript does not parse back to what was written")
	}
	for _, s := range []string{"-          yuanxiaojiang/xixi.log  \"xixi\\n\"", "-          yuanxiaojun/bin/ls", "(none)"} {
		if !strings.Contains(rec.Steps[5].State, s) {
			t.Errorf("state after the last step lacks %q:\n%s", s, rec.Steps[5].State)
		}
	}
}

// shellRun runs a bash script on docker02 of a fresh shell world, which the
// test removes when it ends.
func shellRun(t *testing.T, script string) {
	t.Helper()
	if err := engine.Clean(Lesson, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Clean(Lesson, &bytes.Buffer{}) })
	var out bytes.Buffer
	code, err := engine.Shell(Lesson, "", []string{"bash", "-c", script}, nil, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("script: exit %d, %v\n%s\n%s", code, err, script, out.String())
	}
}

// The printed commands are the truth: the --dry-run script, run with bash
// in a fresh shell, gives the lesson's own end state, and check passes.
func TestDryRunScriptGivesTheLessonsState(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	if _, err := exec.LookPath("ldd"); err != nil {
		t.Skip("the script runs ldd")
	}
	env, _ := endState(t)
	want, err := engine.State(env)
	if err != nil {
		t.Fatal(err)
	}
	var script bytes.Buffer
	if err := engine.DryRun(Lesson, &script); err != nil {
		t.Fatal(err)
	}
	shellRun(t, script.String())
	sw, err := engine.OpenShellWorld(Lesson)
	if err != nil {
		t.Fatal(err)
	}
	got, err := engine.State(engine.Bind(Lesson, sw))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("state after the script differs from the lesson's:\n%s", labtest.Diff(want, got))
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
}

// Each common mistake gets its own hint: the cp that fixes a missing
// library, the document's lib64-only copy, ls never copied, a log written
// before the copy.
func TestCheckHintsForCommonMistakes(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	d := DirsOf(engine.Bind(Lesson, nil))
	bashLibs, err := jail.Needed("/", Bash)
	if err != nil {
		t.Fatal(err)
	}
	lsLibs, err := jail.Needed("/", HostLs)
	if err != nil {
		t.Fatal(err)
	}
	// The first library bash needs that ls does not: libtinfo on Debian.
	var gone jail.Lib
	for _, l := range bashLibs {
		if !l.VDSO && l.Via != "PT_INTERP" && !hasLib(lsLibs, l.Name) {
			gone = l
			break
		}
	}
	if gone.Name == "" {
		t.Skip("bash needs no library that ls does not")
	}
	// install copies bash and ls with their libraries, each to its own
	// directory or (flat) all to lib64 as the document does, less skip.
	install := func(flat bool, skip string) []string {
		dirs := map[string]bool{"/bin": true}
		cmds := []string{jail.Mkdir(d.J1, "/bin").Cmd, jail.Copy(d.J1, Bash, "/bin").Cmd, jail.Copy(d.J1, HostLs, "/bin").Cmd}
		for _, l := range append(append([]jail.Lib{}, bashLibs...), lsLibs...) {
			if l.VDSO || l.Name == skip {
				continue
			}
			dir := path.Dir(l.Path)
			if flat {
				dir = "/lib64"
			}
			if !dirs[dir] {
				dirs[dir] = true
				cmds = append(cmds, jail.Mkdir(d.J1, dir).Cmd)
			}
			cmds = append(cmds, jail.Copy(d.J1, l.Path, dir).Cmd)
		}
		return cmds
	}
	xixi := jail.Run(d.J1, `echo "xixi" >/xixi.log`).Cmd
	haha := jail.Run(d.J2, `echo "haha" >/haha.log`).Cmd
	copyTree := jail.CopyTree(d.J1, d.J2).Cmd
	var libc jail.Lib
	for _, l := range bashLibs {
		if strings.HasPrefix(l.Name, "libc.so") {
			libc = l
		}
	}
	libDir := path.Dir(gone.Path)
	cases := []struct {
		name   string
		cmds   []string
		item   string
		hint   string
		found  string
		passes []string
	}{
		{"a missing library", install(false, gone.Name), "bash",
			jail.Copy(d.J1, gone.Path, libDir).Cmd, gone.Name, []string{"ls"}},
		{"every library in lib64, as on CentOS 7", install(true, ""), "bash",
			strings.Join([]string{jail.Mkdir(d.J1, libDir).Cmd, jail.Copy(d.J1, gone.Path, libDir).Cmd, jail.Copy(d.J1, libc.Path, path.Dir(libc.Path)).Cmd}, " && "),
			"there is a copy in /lib64", nil},
		{"ls not copied", install(false, "")[:2], "ls",
			jail.Copy(d.J1, HostLs, "/bin").Cmd, "no /bin/ls in yuanxiaojiang", nil},
		{"xixi.log written before the copy", append(install(false, ""), xixi, copyTree, haha), "xixi",
			"rm " + d.J2 + "/xixi.log", "written before the copy", []string{"bash", "ls", "root", "jail2", "haha"}},
		{"no second jail", install(false, ""), "jail2", copyTree, "no " + d.J2, []string{"bash", "ls", "root"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			shellRun(t, strings.Join(append([]string{"set -e"}, c.cmds...), "\n"))
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
			got := byID[c.item]
			if got.OK {
				t.Fatalf("item %s passed", c.item)
			}
			if got.Hint != c.hint {
				t.Errorf("hint for %s = %q, want %q (found: %s)", c.item, got.Hint, c.hint, got.Found)
			}
			if !strings.Contains(got.Found, c.found) {
				t.Errorf("found for %s = %q, want it to say %q", c.item, got.Found, c.found)
			}
			for _, id := range c.passes {
				if !byID[id].OK {
					t.Errorf("item %s should pass: %s", id, byID[id].Found)
				}
			}
		})
	}
}

func hasLib(libs []jail.Lib, name string) bool {
	for _, l := range libs {
		if l.Name == name {
			return true
		}
	}
	return false
}

// A lesson directory on tmpfs (LAB_WORK_DIR=/dev/shm/...) stops the lesson
// at its first command with an error that names a usable place, and
// leaves nothing behind.
func TestWorkDirOnUnusableFilesystem(t *testing.T) {
	labtest.NeedRoot(t)
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Skip("no tmpfs at /dev/shm")
	}
	bad := "/dev/shm/lab-test-" + filepath.Base(engine.WorkRoot())
	t.Setenv("LAB_WORK_DIR", bad)
	var out bytes.Buffer
	err := engine.Run(context.Background(), Lesson, engine.Options{Out: &out, Style: engine.Plain()})
	if err == nil {
		t.Fatalf("the lesson ran on tmpfs:\n%s", out.String())
	}
	for _, want := range []string{"on tmpfs", "LAB_WORK_DIR=" + bad, "such as /var/"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := os.Stat(bad); !errors.Is(err, fs.ErrNotExist) {
		os.RemoveAll(bad)
		t.Errorf("%s was made: %v", bad, err)
	}
}

func TestDryRunNeedsNothing(t *testing.T) {
	var b bytes.Buffer
	if err := engine.DryRun(Lesson, &b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	d := DirsOf(engine.Bind(Lesson, nil))
	if !strings.HasSuffix(d.Work, "/chroot-jail/shell") {
		t.Errorf("the script works in %s, not in the shell world's directory", d.Work)
	}
	for _, l := range []string{
		"mkdir -p " + d.J1,
		"mkdir -p " + d.J1 + "/bin",
		"cp /bin/bash " + d.J1 + "/bin/",
		"ldd /bin/bash",
		"cp /lib64/ld-linux-x86-64.so.2 " + d.J1 + "/lib64/",
		"cp /usr/bin/ls " + d.J1 + "/bin/",
		"ldd " + d.J1 + "/bin/ls",
		"chroot " + d.J1 + " /bin/bash -c 'ls -l /'",
		"cp -a " + d.J1 + " " + d.J2,
		"chroot " + d.J1 + ` /bin/bash -c 'echo "xixi" >/xixi.log && ls -l /'`,
		"# rm -rf " + d.J2,
	} {
		if !strings.Contains(s, "\n"+l+"\n") {
			t.Errorf("script lacks the line %q", l)
		}
	}
	if strings.Count(s, "cp /lib/x86_64-linux-gnu/libc.so.6 ") > 1 {
		t.Error("libc is copied twice")
	}
}

func TestNormalize(t *testing.T) {
	run := filepath.Join(engine.WorkRoot(), "chroot-jail", "run-12-345")
	in := "ls " + run + "/yuanxiaojiang\ntotal 16\ndrwxr-xr-x 2 0 0 4096 Nov 23 08:54 bin\n-rw-r--r-- 1 0 0    5 Jan  2  2024 xixi.log\n"
	want := "ls /var/lib/lab/chroot-jail/shell/yuanxiaojiang\ntotal <n>\ndrwxr-xr-x 2 0 0 <size> <time> bin\n-rw-r--r-- 1 0 0 5 <time> xixi.log\n"
	if got := Lesson.Normalize(in); got != want {
		t.Errorf("normalize:\n%s\nwant:\n%s", got, want)
	}
}

// A check graded again from its recorded observations, with no kernel to
// look at, comes to the same result item by item (`lab grade`).
func TestGradeFromRecordedObservations(t *testing.T) {
	labtest.NeedRoot(t)
	env, _ := endState(t)
	d := DirsOf(env)
	s := Lesson.Build(env)
	// A mistake, so that the replay must reproduce a failure and its hint.
	libs, err := jail.Needed("/", Bash)
	if err != nil {
		t.Fatal(err)
	}
	var gone string
	for _, l := range libs {
		if strings.HasPrefix(l.Name, "libc.so") {
			gone = filepath.Join(d.J2, l.Path)
		}
	}
	h := env.Main()
	if code, err := engine.Exec(h, []string{"rm", gone}, os.Environ(), nil, nil, nil); err != nil || code != 0 {
		t.Fatalf("rm %s: %d %v", gone, code, err)
	}
	live := engine.NewProbe(env, h)
	want := engine.Grade(s, live)
	if want.Passed() {
		t.Fatal("the check passed a jail without libc")
	}
	again := engine.Grade(s, engine.ReplayProbe(env, Host, live.Observations()))
	if want.Score != again.Score || want.Max != again.Max {
		t.Fatalf("live %d/%d, replayed %d/%d", want.Score, want.Max, again.Score, again.Max)
	}
	for i := range want.Items {
		if want.Items[i] != again.Items[i] {
			t.Errorf("item %s: live %+v, replayed %+v", want.Items[i].ID, want.Items[i], again.Items[i])
		}
	}
}
