package overlaymount

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/labs/labtest"
	"github.com/containers-underneath/lab/primitives/files"
	"github.com/containers-underneath/lab/primitives/onhost"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/overlay"
	"github.com/containers-underneath/lab/primitives/simhost"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// endState runs the lesson's steps (not its teardown) in a fresh world.
func endState(t *testing.T) (*engine.Env, *engine.Transcript) { return labtest.EndState(t, Lesson) }

func TestLessonLeavesMachineAsItWas(t *testing.T) {
	labtest.RunLeavesMachine(t, Lesson,
		"[root@docker02 ~]# mount -t overlay overlay -o lowerdir=",
		"Filesystem      Size  Used Avail Use% Mounted on",
		"hostname  hosts  issue  layer.txt  resolv.conf",
		"c--------- 2 root root 0, 0 ",
		"Read-only file system",
		"Score: 9/9, all pass",
		"✔ nothing is mounted at merged, and the layers are gone",
	)
}

// The overlay is in docker02's mount table, and not in the machine's.
func TestMountStaysOnDocker02(t *testing.T) {
	labtest.NeedRoot(t)
	env, _ := endState(t)
	merged := LayersOf(env).Merged
	in, ok, err := overlay.Lookup(onhost.Mountinfo(env.Main()), merged)
	if err != nil || !ok {
		t.Fatalf("no overlay at %s in docker02's mount table: %v", merged, err)
	}
	if !in.ReadOnly || in.Upper != "" {
		t.Errorf("the lesson ends with %+v, want the read-only remount", in)
	}
	if _, ok, _ := overlay.Lookup("/proc/self/mountinfo", merged); ok {
		t.Errorf("the overlay at %s is in the machine's mount table", merged)
	}
}

func TestTranscript(t *testing.T) {
	labtest.NeedRoot(t)
	_, rec := endState(t)
	labtest.Golden(t, Lesson, rec)
}

// The printed commands are the truth: the --dry-run script, run with bash
// in a fresh shell, gives the lesson's own end state, and check passes.
func TestDryRunScriptGivesTheLessonsState(t *testing.T) { labtest.DryRunMatches(t, Lesson) }

// Each common mistake gets its own hint: the document's lowerdir order, no
// workdir, a workdir on another filesystem (a tmpfs mounted on it, or a
// link to docker02's /run).
func TestCheckHintsForCommonMistakes(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	l := LayersOf(engine.Bind(Lesson, nil))
	base := filepath.Dir(l.Merged)
	var seeds []string
	for _, s := range Seeds() {
		seeds = append(seeds, s.op(base).Cmd)
	}
	reversed := l
	reversed.Lower = []string{l.Lower[2], l.Lower[1], l.Lower[0]}
	noWork := l
	noWork.Work = ""
	rw := overlay.Mount(l).Cmd
	umount := overlay.Unmount(l.Merged).Cmd
	mkdirs := overlay.Mkdir(l).Cmd
	mkdirsNoWork := op.Join("mkdir", "-p", l.Lower[0], l.Lower[1], l.Lower[2], l.Upper, l.Merged)
	attempt := rw + " || true" // fails: the check must say why from what is left

	cases := []struct {
		name   string
		cmds   []string
		item   string
		hint   string
		found  string
		passes []string
	}{
		{"lowerdir in the document's order", append([]string{mkdirs}, append(seeds, overlay.Mount(reversed).Cmd)...), "order",
			umount + " && " + rw, "wrong order", []string{"dirs", "seeded", "workdir"}},
		{"lower2 wins with the document's order", append([]string{mkdirs}, append(seeds, overlay.Mount(reversed).Cmd)...), "wins",
			umount + " && " + rw, "lower2", []string{"dirs", "seeded", "workdir"}},
		{"no workdir", append([]string{mkdirsNoWork}, append(seeds, overlay.Mount(noWork).Cmd+" || true")...), "workdir",
			"mkdir -p " + l.Work, "no " + l.Work, []string{"dirs", "seeded"}},
		{"no workdir: the mount", append([]string{mkdirsNoWork}, append(seeds, overlay.Mount(noWork).Cmd+" || true")...), "order",
			"mkdir -p " + l.Work + " && " + rw, "no overlay is mounted", []string{"dirs", "seeded"}},
		{"a tmpfs mounted on work", append([]string{mkdirs}, append(seeds, "mount -t tmpfs tmpfs "+l.Work, attempt)...), "workdir",
			"umount " + l.Work, "is on tmpfs", []string{"dirs", "seeded"}},
		{"work a link to /run", append([]string{mkdirsNoWork, "mkdir -p /run/lab-work", "ln -s /run/lab-work " + l.Work}, append(seeds, attempt)...), "workdir",
			"rm " + l.Work + " && mkdir -p " + l.Work, "symlink to /run/lab-work", []string{"dirs", "seeded"}},
		{"a tmpfs on work: the mount", append([]string{mkdirs}, append(seeds, "mount -t tmpfs tmpfs "+l.Work, attempt)...), "order",
			rw, "mounting it would fail: workdir", nil},
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

// A lesson directory on tmpfs stops the lesson at its first command with
// an error that names a usable place, and leaves nothing behind.
func TestWorkDirOnUnusableFilesystem(t *testing.T) {
	labtest.NeedRoot(t)
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Skip("no tmpfs at /dev/shm")
	}
	bad := "/dev/shm/lab-test-" + filepath.Base(engine.WorkRoot())
	t.Setenv("LAB_WORK_DIR", bad)
	before := labtest.MachineState(t)
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
	if after := labtest.MachineState(t); after != before {
		t.Errorf("the machine changed:\n%s", labtest.Diff(before, after))
	}
}

// The lesson's own mount refuses a workdir on another filesystem than
// upper with the kernel's rule and a usable place, before mount(2).
func TestMountRefusesWorkdirOnAnotherFilesystem(t *testing.T) {
	labtest.NeedRoot(t)
	w, err := simhost.Create(Lesson.Name, engine.NewWorldID(), Lesson.Topology, simhost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	env := engine.Bind(Lesson, w)
	t.Cleanup(func() {
		w.Destroy()
		os.RemoveAll(env.WorkDir())
	})
	l := LayersOf(env)
	h := env.Main()
	// docker02's /run is a tmpfs of its own: work there is on another
	// filesystem than upper, and the machine never sees it.
	bad := l
	bad.Work = "/run/lab-work"
	for _, o := range []op.Op{overlay.Mkdir(l), files.Cp("/etc/hosts", l.Lower[0]), overlay.Mkdir(bad)} {
		if err := onhost.Op(h, o).Do(&bytes.Buffer{}); err != nil {
			t.Fatalf("%s: %v", o.Cmd, err)
		}
	}
	err = onhost.Op(h, overlay.Mount(bad)).Do(&bytes.Buffer{})
	if !errors.Is(err, overlay.ErrWorkMount) || !strings.Contains(err.Error(), "such as /var/") {
		t.Errorf("mount with workdir on docker02's /run: %v", err)
	}
	if _, ok, _ := overlay.Lookup(onhost.Mountinfo(h), l.Merged); ok {
		t.Error("the overlay was mounted anyway")
	}
}

func TestDryRunNeedsNothing(t *testing.T) {
	var b bytes.Buffer
	if err := engine.DryRun(Lesson, &b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	l := LayersOf(engine.Bind(Lesson, nil))
	d := filepath.Dir(l.Merged)
	if d != "/yuanxiaojiang" {
		t.Errorf("the script works in %s, not in the document's /yuanxiaojiang", d)
	}
	for _, line := range []string{
		"mkdir -p " + d + "/lower{0..2} " + d + "/{upper,work,merged}",
		"cp /etc/hosts " + d + "/lower0/",
		"cp /etc/hostname " + d + "/upper/",
		"mount -t overlay overlay -o lowerdir=" + d + "/lower0:" + d + "/lower1:" + d + "/lower2,upperdir=" + d + "/upper,workdir=" + d + "/work " + d + "/merged",
		"df -h -t overlay",
		"cp /etc/fstab " + d + "/merged/",
		"echo edited >> " + d + "/merged/layer.txt",
		"rm " + d + "/merged/hosts",
		"umount " + d + "/merged",
		"mount -t overlay overlay -o lowerdir=" + d + "/lower0:" + d + "/lower1:" + d + "/lower2 " + d + "/merged",
		"cp /etc/os-release " + d + "/merged/ || echo '(fails, as expected: without an upper layer there is nowhere to write: Read-only file system)'",
		"# rm -rf " + d,
	} {
		if !strings.Contains(s, "\n"+line+"\n") {
			t.Errorf("script lacks the line %q", line)
		}
	}
}

func TestNormalize(t *testing.T) {
	in := "Filesystem      Size  Used Avail Use% Mounted on\n" +
		"overlay         252G   12G   80G  13% /yuanxiaojiang/merged\n" +
		"c--------- 2 root root 0, 0 Nov 23 08:55 /yuanxiaojiang/upper/hosts\n"
	want := "Filesystem      Size  Used Avail Use% Mounted on\n" +
		"overlay            N     N     N   N% /yuanxiaojiang/merged\n" +
		"c--------- 2 root root 0, 0 <time> /yuanxiaojiang/upper/hosts\n"
	if got := Lesson.Normalize(in); got != want {
		t.Errorf("normalize:\n%s\nwant:\n%s", got, want)
	}
}

// The document's commands (000, docker02), typed verbatim in a fresh `lab
// overlay-mount shell` (ll, the line continuations, the files copied in
// after the mount, the failing write at the end), pass check in full: the
// items beyond the document say so and are skipped. /yuanxiaojiang is
// docker02's own: nothing of it is on the machine, before or after clean.
func TestDocumentsCommandsPass(t *testing.T) {
	labtest.NeedRoot(t)
	before := labtest.Files(t)
	labtest.ShellRun(t, Lesson, `set -e
mkdir -p /yuanxiaojiang/lower{0..2} /yuanxiaojiang/{upper,work,merged}
mount -t overlay overlay -o \
lowerdir=/yuanxiaojiang/lower0:/yuanxiaojiang/lower1:/yuanxiaojiang/lower2,\
upperdir=/yuanxiaojiang/upper,\
workdir=/yuanxiaojiang/work \
/yuanxiaojiang/merged/
df -h -t overlay
cp /etc/hosts /yuanxiaojiang/lower0/
cp /etc/issue /yuanxiaojiang/lower1/
cp /etc/resolv.conf /yuanxiaojiang/lower2/
cp /etc/hostname /yuanxiaojiang/upper/
cp /etc/fstab /yuanxiaojiang/merged/
ll /yuanxiaojiang/lower0
ll /yuanxiaojiang/lower1
ll /yuanxiaojiang/lower2
ll /yuanxiaojiang/upper/
ll /yuanxiaojiang/merged/
umount /yuanxiaojiang/merged
mount -t overlay overlay \
-o lowerdir=/yuanxiaojiang/lower0:/yuanxiaojiang/lower1:/yuanxiaojiang/lower2,\
workdir=/yuanxiaojiang/work \
/yuanxiaojiang/merged/
ll /yuanxiaojiang/merged/
! cp /etc/os-release /yuanxiaojiang/merged/`)
	if _, err := os.Lstat("/yuanxiaojiang"); err == nil {
		t.Error("/yuanxiaojiang is on the machine")
	}
	r, err := engine.CheckShell(Lesson, "")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	r.Print(&b, engine.Plain())
	if !r.Passed() || r.Score != r.Max {
		t.Errorf("the document's commands do not pass:\n%s", b.String())
	}
	skipped := map[string]bool{}
	for _, it := range r.Items {
		if it.Skip != "" {
			skipped[it.ID] = true
		}
		if beyondDoc := strings.HasPrefix(it.Text, beyond); beyondDoc != (it.ID == "wins" || it.ID == "copyup" || it.ID == "whiteout") {
			t.Errorf("item %s: %q, beyond the document: %v", it.ID, it.Text, beyondDoc)
		}
	}
	if len(skipped) != 3 || !skipped["wins"] || !skipped["copyup"] || !skipped["whiteout"] {
		t.Errorf("skipped %v, want the three items beyond the document:\n%s", skipped, b.String())
	}
	if err := engine.Clean(Lesson, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	before.Unchanged(t, Lesson, "yuanxiao")
}

// Hints name the document's short paths, and no hint repeats its directory
// more than the command it gives needs.
func TestHintsAreShort(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	labtest.ShellRun(t, Lesson, "mkdir -p /yuanxiaojiang/lower0")
	r, err := engine.CheckShell(Lesson, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range r.Items {
		if strings.Contains(it.Hint, "/var/lib/lab") || strings.Contains(it.Found, "/var/lib/lab") {
			t.Errorf("item %s names the lab's directory: %s / %s", it.ID, it.Found, it.Hint)
		}
		// The lab's additions are skipped only once the document's part is done.
		if it.OK {
			t.Errorf("item %s passes on a directory and nothing else: %+v", it.ID, it)
		}
	}
	if it := r.Items[0]; it.ID != "dirs" || it.Hint != "mkdir -p /yuanxiaojiang/lower1 /yuanxiaojiang/lower2 /yuanxiaojiang/upper /yuanxiaojiang/merged" {
		t.Errorf("dirs: %+v", it)
	}
}

// A check graded again from its recorded observations, with no kernel to
// look at, comes to the same result item by item (`lab grade`).
func TestGradeFromRecordedObservations(t *testing.T) {
	labtest.NeedRoot(t)
	env, _ := endState(t)
	l := LayersOf(env)
	s := Lesson.Build(env)
	// A mistake, so that the replay must reproduce failures and hints: the
	// whiteout gone, and the document's order.
	h := env.Main()
	for _, argv := range [][]string{
		{"rm", filepath.Join(l.Upper, Hosts)},
		{"umount", l.Merged},
		{"mount", "-t", "overlay", "overlay", "-o", "lowerdir=" + l.Lower[2] + ":" + l.Lower[1] + ":" + l.Lower[0], l.Merged},
	} {
		if code, err := engine.Exec(h, argv, os.Environ(), nil, nil, nil); err != nil || code != 0 {
			t.Fatalf("%v: %d %v", argv, code, err)
		}
	}
	live := engine.NewProbe(env, h)
	want := engine.Grade(s, live)
	failed := 0
	for _, it := range want.Items {
		if !it.OK {
			failed++
		}
	}
	if failed != 3 { // whiteout, order, wins
		var b bytes.Buffer
		want.Print(&b, engine.Plain())
		t.Fatalf("want 3 items failing:\n%s", b.String())
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
