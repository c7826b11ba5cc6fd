package netnsveth

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/labs/labtest"
)

func TestMain(m *testing.M) { labtest.Main(m) }

func TestLessonLeavesMachineAsItWas(t *testing.T) {
	labtest.RunLeavesMachine(t, Lesson,
		"[root@docker01 ~]# ip netns add linux_yuan",
		"[root@docker01 ~]# ip link add veth100 type veth peer name veth200",
		"ping: connect: Network is unreachable",
		"Score: 20/20, all pass",
		"✔ linux_yuan, ns1, ns2 and veth100 are gone from docker01",
	)
}

func TestTranscript(t *testing.T) {
	labtest.NeedRoot(t)
	_, rec := labtest.EndState(t, Lesson)
	labtest.Golden(t, Lesson, rec)
}

// The printed commands are the truth: the --dry-run script, run with bash on
// a fresh simulated host, gives the lesson's own end state, and check passes.
func TestDryRunScriptGivesTheLessonsState(t *testing.T) {
	if _, err := exec.LookPath("ping"); err != nil {
		t.Skip("the script uses iputils ping: make setup installs it")
	}
	labtest.DryRunMatches(t, Lesson)
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
			labtest.ShellRun(t, Lesson, strings.Join(append(append([]string{"set -e"}, base...), c.cmds...), "\n"))
			byID := labtest.Failing(t, Lesson, c.item, c.hint)
			labtest.Passing(t, byID, c.passes...)
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

// A check graded again from its recorded readings, with no kernel to look
// at, comes to the same result item by item, a failure included.
func TestGradeFromRecordedObservations(t *testing.T) {
	labtest.Regrade(t, Lesson, func(env *engine.Env) {
		code, err := engine.Exec(env.Main(), []string{"ip", "netns", "exec", NS, "ip", "link", "set", "lo", "down"}, os.Environ(), nil, nil, nil)
		if err != nil || code != 0 {
			t.Fatalf("lo down: %d %v", code, err)
		}
	})
}

// The document, typed in the shell as a student does (an interactive
// bash keeps the history), passes in full; after the document's own
// cleanup the check says where the student is, once, instead of twenty
// reasons.
func TestDocumentsCleanupIsToldOnce(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	doc := []string{
		"ip netns add linux_yuan",
		"ip netns exec linux_yuan ip link set lo up",
		"ip link add veth100 type veth peer name veth200",
		"ip link set veth200 netns linux_yuan",
		"ip netns exec linux_yuan ip addr add 172.31.100.200/24 dev veth200",
		"ip netns exec linux_yuan ip link set veth200 up",
		"ip addr add 172.31.100.100/24 dev veth100",
		"ip link set veth100 up",
		"ip netns exec linux_yuan ip route add default via 172.31.100.100",
		"ip netns add ns1",
		"ip netns add ns2",
		"ip link add veth-ns1 type veth peer name veth-ns2",
		"ip link set veth-ns1 netns ns1",
		"ip link set veth-ns2 netns ns2",
		"ip netns exec ns1 ip addr add 192.168.1.1/24 dev veth-ns1",
		"ip netns exec ns2 ip addr add 192.168.1.2/24 dev veth-ns2",
		"ip netns exec ns1 ip link set veth-ns1 up",
		"ip netns exec ns2 ip link set veth-ns2 up",
	}
	cleanup := []string{"ip netns del linux_yuan", "ip netns del ns1", "ip netns del ns2"}
	if err := engine.Clean(Lesson, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Clean(Lesson, &bytes.Buffer{}) })
	typeIn := func(cmds []string) {
		t.Helper()
		var out bytes.Buffer
		code, err := engine.Shell(Lesson, "", nil, strings.NewReader(strings.Join(cmds, "\n")+"\nexit\n"), &out, &out)
		if err != nil || code != 0 {
			t.Fatalf("shell: %v, exit %d\n%s", err, code, out.String())
		}
	}
	check := func() *engine.Report {
		t.Helper()
		r, err := engine.CheckShell(Lesson, "")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// A fresh shell: the usual first failure, not the cleanup's.
	typeIn([]string{"true"})
	if r := check(); r.Items[0].OK || strings.Contains(r.Items[0].Found, "cleanup") || r.Items[1].Hint == "" {
		t.Errorf("fresh shell: %+v / %+v", r.Items[0], r.Items[1])
	}
	typeIn(doc)
	if r := check(); !r.Passed() {
		var b bytes.Buffer
		r.Print(&b, engine.Plain())
		t.Fatalf("the document's commands do not pass:\n%s", b.String())
	}
	typeIn(cleanup)
	r := check()
	first := r.Items[0]
	if first.OK || !strings.Contains(first.Found, "you ran the document's cleanup (`ip netns del linux_yuan`)") || first.Hint != "ip netns add linux_yuan" {
		t.Errorf("first item after the cleanup: %+v", first)
	}
	for _, it := range r.Items[1:] {
		if it.OK || it.Found != "" || it.Hint != "" {
			t.Errorf("item %s after the cleanup: %+v", it.ID, it)
		}
	}
	var b bytes.Buffer
	r.Print(&b, engine.Plain())
	if n := strings.Count(b.String(), "found:"); n != 1 {
		t.Errorf("%d found: lines after the cleanup, want 1:\n%s", n, b.String())
	}
}
