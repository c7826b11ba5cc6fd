package chrootjail

import (
	"bytes"
	"context"
	"errors"
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
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// endState runs the lesson's steps (not its teardown) in a fresh world.
func endState(t *testing.T) (*engine.Env, *engine.Transcript) { return labtest.EndState(t, Lesson) }

func TestLessonLeavesMachineAsItWas(t *testing.T) {
	labtest.RunLeavesMachine(t, Lesson,
		"[root@docker02 ~]# ldd /bin/bash",
		"chroot: failed to run command '/bin/bash': No such file or directory",
		"/bin /lib /lib64",
		"ls: cannot access '/haha.log': No such file or directory",
		"bin  lib  lib64  xixi.log",
		"bin  haha.log  lib  lib64",
		"Score: 6/6, all pass",
		"✔ both jails are gone from docker02's disk",
	)
}

func TestTranscript(t *testing.T) {
	labtest.NeedRoot(t)
	_, rec := endState(t)
	labtest.Golden(t, Lesson, rec)
}

// The printed commands are the truth: the --dry-run script, run with bash
// in a fresh shell, gives the lesson's own end state, and check passes.
func TestDryRunScriptGivesTheLessonsState(t *testing.T) {
	if _, err := exec.LookPath("ldd"); err != nil {
		t.Skip("the script runs ldd")
	}
	labtest.DryRunMatches(t, Lesson)
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
			labtest.ShellRun(t, Lesson, strings.Join(append([]string{"set -e"}, c.cmds...), "\n"))
			byID := labtest.Failing(t, Lesson, c.item, c.hint)
			got := byID[c.item]
			if !strings.Contains(got.Found, c.found) {
				t.Errorf("found for %s = %q, want it to say %q", c.item, got.Found, c.found)
			}
			labtest.Passing(t, byID, c.passes...)
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
