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
	if d.J1 != "/root/yuanxiaojiang" || d.J2 != "/root/yuanxiaojun" {
		t.Errorf("the jails are %s and %s, not the document's", d.J1, d.J2)
	}
	for _, l := range []string{
		"mkdir -p /root/yuanxiaojiang",
		"mkdir -p /root/yuanxiaojiang/bin",
		"cp /bin/bash /root/yuanxiaojiang/bin/",
		"ldd /bin/bash",
		"cp /lib64/ld-linux-x86-64.so.2 /root/yuanxiaojiang/lib64/",
		"cp /usr/bin/ls /root/yuanxiaojiang/bin/",
		"ldd /root/yuanxiaojiang/bin/ls",
		"chroot /root/yuanxiaojiang /bin/bash -c 'ls -l /'",
		"cp -a /root/yuanxiaojiang /root/yuanxiaojun",
		`chroot /root/yuanxiaojiang /bin/bash -c 'echo "xixi" >/xixi.log && ls -l /'`,
		"# rm -rf /root/yuanxiaojun",
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
	in := "ls /root/yuanxiaojiang\ntotal 16\ndrwxr-xr-x 2 0 0 4096 Nov 23 08:54 bin\n-rw-r--r-- 1 0 0    5 Jan  2  2024 xixi.log\n"
	want := "ls /root/yuanxiaojiang\ntotal <n>\ndrwxr-xr-x 2 0 0 <size> <time> bin\n-rw-r--r-- 1 0 0 5 <time> xixi.log\n"
	if got := Lesson.Normalize(in); got != want {
		t.Errorf("normalize:\n%s\nwant:\n%s", got, want)
	}
}

// The document's commands (000, docker02), typed in a fresh `lab
// chroot-jail shell`, pass check in full: the same paths, the same
// interactive chroots. Only the library copies follow this machine's ldd
// (the document's are CentOS 7's names), each to its own path, as the
// lesson explains. Nothing of it lands on the machine's own /root or /tmp,
// and `lab chroot-jail check` works from inside the shell too.
func TestDocumentsCommandsPass(t *testing.T) {
	labtest.NeedRoot(t)
	t.Setenv("SHELL", "/bin/bash") // as sudo sets it: chroot with no command runs $SHELL -i
	before := labtest.Files(t)
	copyLibs := func(bin string) string {
		return `for lib in $(ldd ` + bin + ` | grep -o '/[^ ]*'); do mkdir -p /root/yuanxiaojiang$(dirname $lib); cp $lib /root/yuanxiaojiang$(dirname $lib)/; done`
	}
	labtest.ShellRun(t, Lesson, strings.Join([]string{
		"set -e",
		"mkdir -p /root/yuanxiaojiang",
		"mkdir -p /root/yuanxiaojiang/bin",
		"cp /bin/bash /root/yuanxiaojiang/bin/",
		"ldd /bin/bash",
		"mkdir -p /root/yuanxiaojiang/lib64",
		copyLibs("/bin/bash"),
		"which ls",
		"cp /usr/bin/ls /root/yuanxiaojiang/bin/",
		"ldd /root/yuanxiaojiang/bin/ls",
		copyLibs("/root/yuanxiaojiang/bin/ls"),
		"chroot /root/yuanxiaojiang/ <<'EOF'\nexport PATH=/bin:/usr/bin\nls -l\nEOF",
		"cp  -r /root/yuanxiaojiang /root/yuanxiaojun",
		"chroot /root/yuanxiaojiang/ <<'EOF'\necho \"xixi\" >/xixi.log\nls -l\nEOF",
		"chroot /root/yuanxiaojun/ <<'EOF'\necho \"haha\" >/haha.log\nls -l\nEOF",
		"ls /root/yuanxiaojiang/",
		"ls /root/yuanxiaojun/",
	}, "\n"))
	r, err := engine.CheckShell(Lesson, "")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Passed() || r.Score != r.Max {
		var b bytes.Buffer
		r.Print(&b, engine.Plain())
		t.Errorf("the document's commands do not pass:\n%s", b.String())
	}
	// The same check, run by the lab binary inside docker02's shell.
	var out bytes.Buffer
	if code, err := engine.Shell(Lesson, "", []string{labtest.Binary(t), "chroot-jail", "check"}, nil, &out, &out); err != nil || code != 0 {
		t.Errorf("lab chroot-jail check inside the shell: exit %d, %v\n%s", code, err, out.String())
	}
	for _, p := range []string{"/root/yuanxiaojiang", "/root/yuanxiaojun"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is on the machine", p)
		}
	}
	if err := engine.Clean(Lesson, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	before.Unchanged(t, Lesson, "yuanxiao")
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
