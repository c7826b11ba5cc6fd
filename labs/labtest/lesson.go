package labtest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/primitives/reexec"
	"github.com/containers-underneath/lab/primitives/simhost"
)

// updating reports whether the test binary got -update (`make
// transcripts`): Golden then rewrites transcripts/LESSON.md. Main defines
// the flag unless the package already has one of its own.
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// Main is a lesson package's TestMain: children re-executed from the test
// binary do their job, and the tests get a state directory and a working
// directory on a real disk of their own (never a student's /run/lab or
// /var/lib/lab).
func Main(m *testing.M) {
	reexec.Init()
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the lesson's transcript from a fresh run")
	}
	flag.Parse()
	_, done := StateDir()
	// /tmp may be tmpfs, which overlayfs refuses as upper; /var/tmp is disk.
	work, err := os.MkdirTemp("/var/tmp", "lab-test-work-")
	if err != nil {
		panic(err)
	}
	os.Setenv("LAB_WORK_DIR", work)
	code := m.Run()
	done()
	os.RemoveAll(work)
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// EndState runs the lesson's steps (not its teardown) in a fresh world and
// returns its environment and transcript; the world and everything of the
// lesson's go when the test ends.
func EndState(t testing.TB, l *engine.Lesson) (*engine.Env, *engine.Transcript) {
	t.Helper()
	w, env, err := engine.NewWorld(l, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Teardown(l, w) })
	rec := &engine.Transcript{}
	var out bytes.Buffer
	if err := engine.RunSteps(context.Background(), env, l.Build(env), engine.Options{Out: &out, Style: engine.Plain(), Record: rec}); err != nil {
		t.Fatalf("lesson failed: %v\n%s", err, out.String())
	}
	return env, rec
}

// RunLeavesMachine runs the whole lesson as `lab LESSON` does and checks
// that its output has each of want, and that the machine, the state
// directory and the working directory are as they were.
func RunLeavesMachine(t *testing.T, l *engine.Lesson, want ...string) string {
	t.Helper()
	NeedRoot(t)
	before := MachineState(t)
	var out bytes.Buffer
	if err := engine.Run(context.Background(), l, engine.Options{Out: &out, Style: engine.Plain()}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q", w)
		}
	}
	if after := MachineState(t); after != before {
		t.Errorf("the machine changed:\n%s", Diff(before, after))
	}
	if ids, _ := simhost.List(l.Name); len(ids[l.Name]) > 0 {
		t.Errorf("worlds left behind: %v", ids)
	}
	if _, err := os.Stat(filepath.Join(engine.WorkRoot(), l.Name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the lesson's working directory is left behind: %v", err)
	}
	return out.String()
}

// Golden compares a fresh run's transcript with transcripts/LESSON.md (or
// rewrites it with -update), and checks that the file parses back.
func Golden(t *testing.T, l *engine.Lesson, rec *engine.Transcript) {
	t.Helper()
	var got bytes.Buffer
	if err := rec.Write(&got); err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{engine.WorkRoot(), os.Getenv("LAB_STATE_DIR")} {
		if leak != "" && strings.Contains(got.String(), leak) {
			t.Fatalf("the transcript names the test's own directory %s: normalise it", leak)
		}
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "transcripts", l.Name+".md")
	if updating() {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (make transcripts writes it)", err)
	}
	if got.String() != string(want) {
		t.Errorf("a fresh run differs from %s (make transcripts regenerates it after a deliberate change):\n%s", path, Diff(string(want), got.String()))
	}
	back, err := engine.Parse(bytes.NewReader(want))
	if err != nil {
		t.Fatalf("%s does not parse: %v", path, err)
	}
	if len(back.Steps) != len(rec.Steps) {
		t.Errorf("%s parses to %d steps, the run had %d", path, len(back.Steps), len(rec.Steps))
	}
	for i := range back.Steps {
		if i < len(rec.Steps) && !slices.Equal(back.Steps[i].States, rec.Steps[i].States) {
			t.Errorf("step %d's state does not parse back to what was written", i+1)
		}
	}
}

// DryRunMatches holds the lesson to its printed commands: the --dry-run
// script, run with bash in a fresh `lab LESSON shell`, must give the same
// normalised state on every host as the lesson's own run, and check must
// pass on it.
func DryRunMatches(t *testing.T, l *engine.Lesson) {
	t.Helper()
	NeedRoot(t)
	Short(t)
	env, _ := EndState(t, l)
	hosts := l.Topology.Names()
	want, err := engine.States(env, hosts)
	if err != nil {
		t.Fatal(err)
	}

	var script bytes.Buffer
	if err := engine.DryRun(l, &script); err != nil {
		t.Fatal(err)
	}
	if err := engine.Clean(l, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Clean(l, &bytes.Buffer{}) })
	// As the script's own first lines say: bash -c "$(lab L --dry-run)".
	var out bytes.Buffer
	code, err := engine.Shell(l, "", []string{"bash", "-c", script.String()}, nil, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("the dry-run script: exit %d, %v\n%s", code, err, out.String())
	}
	w, err := engine.OpenShellWorld(l)
	if err != nil {
		t.Fatal(err)
	}
	got, err := engine.States(engine.Bind(l, w), hosts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if wt, gt := normalize(l, want[i].Text), normalize(l, got[i].Text); wt != gt {
			t.Errorf("state of %s after the script differs from the lesson's:\n%s", want[i].Host, Diff(wt, gt))
		}
	}
	r, err := engine.CheckShell(l, "")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Passed() {
		var b bytes.Buffer
		r.Print(&b, engine.Plain())
		t.Errorf("check fails on the script's result:\n%s", b.String())
	}
}

func normalize(l *engine.Lesson, s string) string {
	if l.Normalize != nil {
		return l.Normalize(s)
	}
	return s
}

// Regrade grades the end state live, then again from the recorded
// readings alone with the world gone, and wants the same result item by
// item. mistake, when set, is applied first so that a failure must be
// reproduced too.
func Regrade(t *testing.T, l *engine.Lesson, mistake func(env *engine.Env)) {
	t.Helper()
	NeedRoot(t)
	w, env, err := engine.NewWorld(l, "test")
	if err != nil {
		t.Fatal(err)
	}
	torn := false
	t.Cleanup(func() {
		if !torn {
			engine.Teardown(l, w)
		}
	})
	s := l.Build(env)
	if err := engine.RunSteps(context.Background(), env, s, engine.Options{Out: &bytes.Buffer{}, Style: engine.Plain()}); err != nil {
		t.Fatal(err)
	}
	if mistake != nil {
		mistake(env)
	}
	live := engine.NewProbe(env, env.Main())
	want := engine.Grade(s, live)
	engine.Teardown(l, w)
	torn = true
	again := engine.Grade(s, engine.ReplayProbe(env, env.Main().Name, live.Observations()))
	if want.Score != again.Score || want.Max != again.Max {
		t.Fatalf("live %d/%d, regraded %d/%d", want.Score, want.Max, again.Score, again.Max)
	}
	if mistake != nil && want.Passed() {
		t.Fatal("the mistake did not fail any item")
	}
	for i := range want.Items {
		if want.Items[i] != again.Items[i] {
			t.Errorf("item %s: live %+v, regraded %+v", want.Items[i].ID, want.Items[i], again.Items[i])
		}
	}
}

// Failing grades the lesson's shell world and wants a half-done exercise:
// item fails with exactly hint. It returns every result by item ID.
func Failing(t *testing.T, l *engine.Lesson, item, hint string) map[string]engine.Result {
	t.Helper()
	r, err := engine.CheckShell(l, "")
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
	got, ok := byID[item]
	if !ok {
		t.Fatalf("no item %s", item)
	}
	if got.OK {
		t.Fatalf("item %s passed", item)
	}
	if got.Hint != hint {
		t.Errorf("hint for %s = %q, want %q (found: %s)", item, got.Hint, hint, got.Found)
	}
	return byID
}

// Passing wants each of ids to have passed.
func Passing(t *testing.T, byID map[string]engine.Result, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if !byID[id].OK {
			t.Errorf("item %s should pass: %s", id, byID[id].Found)
		}
	}
}

// ShellRun runs script with `bash -c` on the main host of a fresh shell
// world of l (as a student typing in `lab L shell`), removed when the test
// ends; a non-zero exit fails the test.
func ShellRun(t *testing.T, l *engine.Lesson, script string) {
	t.Helper()
	if err := engine.Clean(l, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Clean(l, &bytes.Buffer{}) })
	var out bytes.Buffer
	code, err := engine.Shell(l, "", []string{"bash", "-c", script}, nil, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("script: exit %d, %v\n%s\n%s", code, err, script, out.String())
	}
}
