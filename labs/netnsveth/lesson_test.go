package netnsveth

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/labs/labtest"
	"github.com/containers-underneath/lab/primitives/netstate"
	"github.com/containers-underneath/lab/primitives/reexec"
	"github.com/containers-underneath/lab/primitives/simhost"
)

var update = flag.Bool("update", false, "rewrite transcripts/netns-veth.md from a fresh run")

func TestMain(m *testing.M) {
	reexec.Init()
	flag.Parse()
	_, done := labtest.StateDir()
	code := m.Run()
	done()
	os.Exit(code)
}

// endState runs the lesson's steps (not its teardown) in a fresh world and
// returns that world with the transcript.
func endState(t *testing.T) (*simhost.World, *engine.Transcript) {
	t.Helper()
	w, err := simhost.Create(Lesson.Name, engine.NewWorldID(), Lesson.Topology, simhost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Destroy() })
	env := engine.Bind(Lesson, w)
	rec := &engine.Transcript{}
	var out bytes.Buffer
	if err := engine.RunSteps(context.Background(), env, Lesson.Build(env), engine.Options{Out: &out, Style: engine.Plain(), Record: rec}); err != nil {
		t.Fatalf("lesson failed: %v\n%s", err, out.String())
	}
	return w, rec
}

func TestLessonLeavesMachineAsItWas(t *testing.T) {
	labtest.NeedRoot(t)
	before := labtest.MachineState(t)
	var out bytes.Buffer
	if err := engine.Run(context.Background(), Lesson, engine.Options{Out: &out, Style: engine.Plain()}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"[root@docker01 ~]# ip netns add linux_yuan",
		"[root@docker01 ~]# ip link add veth100 type veth peer name veth200",
		"ping: connect: Network is unreachable",
		"Score: 20/20, all pass",
		"✔ linux_yuan, ns1, ns2 and veth100 are gone from docker01",
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
}

func TestTranscript(t *testing.T) {
	labtest.NeedRoot(t)
	_, rec := endState(t)
	var got bytes.Buffer
	if err := rec.Write(&got); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "transcripts", "netns-veth.md")
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
	// The handout parses back into the same steps.
	back, err := engine.Parse(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Steps) != len(rec.Steps) || back.Steps[3].State != rec.Steps[3].State {
		t.Errorf("transcript does not parse back to what was written")
	}
}

// The printed commands are the truth: the --dry-run script, run with bash on
// a fresh simulated host, gives the lesson's own end state, and check passes.
func TestDryRunScriptGivesTheLessonsState(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	if _, err := exec.LookPath("ping"); err != nil {
		t.Skip("the script uses iputils ping: make setup installs it")
	}
	w, _ := endState(t)
	want, err := netstate.Snapshot(w.Host("docker01"))
	if err != nil {
		t.Fatal(err)
	}

	var script bytes.Buffer
	if err := engine.DryRun(Lesson, &script); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "netns-veth.sh")
	os.WriteFile(file, script.Bytes(), 0o755)
	t.Cleanup(func() { engine.Clean(Lesson, &bytes.Buffer{}) })
	var out bytes.Buffer
	code, err := engine.Shell(Lesson, "", []string{"bash", file}, nil, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("script: exit %d, %v\n%s", code, err, out.String())
	}
	sw, err := engine.OpenShellWorld(Lesson)
	if err != nil {
		t.Fatal(err)
	}
	got, err := netstate.Snapshot(sw.Host("docker01"))
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

// Each common mistake gets its own hint.
func TestCheckHintsForCommonMistakes(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	base := []string{
		"ip netns add linux_yuan",
		"ip link add veth100 type veth peer name veth200",
	}
	cases := []struct {
		name   string
		cmds   []string
		item   string
		hint   string
		passes []string
	}{
		{"lo left down", []string{"ip link set veth200 netns linux_yuan"}, "lo", "ip netns exec linux_yuan ip link set lo up", []string{"netns", "veth200"}},
		{"/16 instead of /24", []string{"ip link set veth200 netns linux_yuan", "ip netns exec linux_yuan ip addr add 172.31.100.200/16 dev veth200"}, "addr200",
			"ip netns exec linux_yuan ip addr del 172.31.100.200/16 dev veth200 && ip netns exec linux_yuan ip addr add 172.31.100.200/24 dev veth200", []string{"veth200"}},
		{"veth200 not moved", []string{"ip addr add 172.31.100.200/24 dev veth200"}, "veth200", "ip link set veth200 netns linux_yuan", []string{"veth100"}},
		{"link down", []string{"ip link set veth200 netns linux_yuan", "ip addr add 172.31.100.100/24 dev veth100"}, "up100", "ip link set veth100 up", []string{"addr100"}},
		{"no default route", []string{"ip link set veth200 netns linux_yuan", "ip netns exec linux_yuan ip link set veth200 up",
			"ip netns exec linux_yuan ip addr add 172.31.100.200/24 dev veth200"}, "route", "ip netns exec linux_yuan ip route add default via 172.31.100.100", []string{"addr200", "up200"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := engine.Clean(Lesson, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { engine.Clean(Lesson, &bytes.Buffer{}) })
			script := strings.Join(append(append([]string{"set -e"}, base...), c.cmds...), "\n")
			var out bytes.Buffer
			if code, err := engine.Shell(Lesson, "", []string{"bash", "-c", script}, nil, &out, &out); err != nil || code != 0 {
				t.Fatalf("exit %d %v\n%s", code, err, out.String())
			}
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
			for _, id := range c.passes {
				if !byID[id].OK {
					t.Errorf("item %s should pass: %s", id, byID[id].Found)
				}
			}
		})
	}
}

// Two runs at once do not see or break each other.
func TestConcurrentRuns(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	outs := make([]bytes.Buffer, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = engine.Run(context.Background(), Lesson, engine.Options{Out: &outs[i], Style: engine.Plain()})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("run %d: %v\n%s", i, err, outs[i].String())
		}
	}
}

func TestDryRunNeedsNothing(t *testing.T) {
	var b bytes.Buffer
	if err := engine.DryRun(Lesson, &b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	lines := []string{
		"ip netns add linux_yuan",
		"ip netns exec linux_yuan ping -c 1 -W 1 127.0.0.1 || echo '(fails, as expected: lo is down, so not even 127.0.0.1 has a route)'",
		"ip link set veth200 netns linux_yuan",
		"ip netns exec linux_yuan ip addr add 172.31.100.200/24 dev veth200",
		"ip netns exec linux_yuan ip route add default via 172.31.100.100",
		"# ip netns del linux_yuan",
	}
	for _, l := range lines {
		if !strings.Contains(s, "\n"+l+"\n") {
			t.Errorf("script lacks the line %q", l)
		}
	}
	if strings.Contains(s, "\nip netns del") {
		t.Error("teardown is not commented out")
	}
	// Every step's commands appear in lesson order.
	idx := -1
	for _, st := range Lesson.Build(engine.Bind(Lesson, nil)).Steps {
		for _, a := range st.Actions {
			i := strings.Index(s[idx+1:], a.Op.Cmd)
			if i < 0 {
				t.Fatalf("%q missing or out of order", a.Op.Cmd)
			}
			idx += i + 1
		}
	}
}

// Every translation has the same sections as the English narration, so no
// step falls back to English unnoticed.
func TestTranslationsCoverEverySection(t *testing.T) {
	for lang, tr := range Lesson.Translations {
		for id := range Lesson.Text {
			if _, ok := tr[id]; !ok {
				t.Errorf("%s narration lacks [%s]", lang, id)
			}
		}
		for id := range tr {
			if _, ok := Lesson.Text[id]; !ok {
				t.Errorf("%s narration has [%s], which the lesson does not", lang, id)
			}
		}
		l := Lesson.Localized(lang)
		if l.Title() == Lesson.Title() {
			t.Errorf("%s title is the English one", lang)
		}
	}
}

// A check graded again from its recorded observations, with no kernel to
// look at, comes to the same result item by item.
func TestGradeFromRecordedObservations(t *testing.T) {
	labtest.NeedRoot(t)
	w, _ := endState(t)
	env := engine.Bind(Lesson, w)
	s := Lesson.Build(env)
	// A mistake, so that the replay must reproduce a failure too.
	h := w.Host("docker01")
	if code, err := engine.Exec(h, []string{"ip", "netns", "exec", NS, "ip", "link", "set", "lo", "down"}, os.Environ(), nil, nil, nil); err != nil || code != 0 {
		t.Fatalf("lo down: %d %v", code, err)
	}
	live := engine.NewProbe(env, h)
	want := engine.Grade(s, live)
	w.Destroy() // nothing left to read: the replay must not need it

	again := engine.Grade(s, engine.ReplayProbe(env, "docker01", live.Observations()))
	if want.Score != again.Score || want.Max != again.Max || want.Passed() {
		t.Fatalf("live %d/%d, replayed %d/%d", want.Score, want.Max, again.Score, again.Max)
	}
	for i := range want.Items {
		if want.Items[i] != again.Items[i] {
			t.Errorf("item %s: live %+v, replayed %+v", want.Items[i].ID, want.Items[i], again.Items[i])
		}
	}
}
