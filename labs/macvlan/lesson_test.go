package macvlan

import (
	"bytes"
	"strings"
	"testing"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/labs/grade"
	"github.com/containers-underneath/lab/labs/labtest"
)

func TestMain(m *testing.M) { labtest.Main(m) }

func TestLessonLeavesMachineAsItWas(t *testing.T) {
	labtest.RunLeavesMachine(t, Lesson,
		"[root@docker02 ~]# ip link add link eth0 name c1-mv type macvlan mode bridge",
		"[root@docker01 ~]# ip netns exec c1 ping -c 1 -W 1 172.29.0.82",
		"[root@docker02 ~]# ip netns exec c1 ping -c 1 -W 1 172.29.0.81",
		"✔ fails, as expected: eth0 is c1's parent",
		"Score: 13/13, all pass",
		"✔ c1 and what the lesson added are gone from docker02",
	)
}

func TestTranscript(t *testing.T) {
	labtest.NeedRoot(t)
	_, rec := labtest.EndState(t, Lesson)
	labtest.Golden(t, Lesson, rec)
	// Each host's own steps show that host's state; the docker01 steps do
	// not show docker02.
	want := map[string][]string{"run1": {Host1}, "run2": {Host2}, "cross": {Host1, Host2}, "modprobe": {Host1, Host2}}
	for _, st := range rec.Steps {
		if hosts, ok := want[st.ID]; ok {
			var got []string
			for _, s := range st.States {
				got = append(got, s.Host)
			}
			if strings.Join(got, " ") != strings.Join(hosts, " ") {
				t.Errorf("step %s shows the state of %v, want %v", st.ID, got, hosts)
			}
		}
	}
}

// An op knows its host: every command of the lesson is typed on docker01
// or docker02, and nothing else says which.
func TestEveryOpNamesItsHost(t *testing.T) {
	s := Lesson.Build(engine.Bind(Lesson, nil))
	for _, st := range append(s.Steps, s.Teardown) {
		for _, a := range st.Actions {
			if a.Op.Host != Host1 && a.Op.Host != Host2 {
				t.Errorf("step %s: %q is typed on %q", st.ID, a.Op.Cmd, a.Op.Host)
			}
		}
	}
}

// The printed commands are the truth: the --dry-run script, one bash script
// that enters docker02 itself for its part, gives the lesson's own state on
// both hosts, and check passes.
func TestDryRunScriptGivesTheLessonsState(t *testing.T) {
	labtest.LabOnPath(t)
	labtest.DryRunMatches(t, Lesson)
}

// Readings of two hosts regrade exactly from a record, including a failure
// on the second host.
func TestRegradeFromRecord(t *testing.T) {
	labtest.LabOnPath(t)
	labtest.Regrade(t, Lesson, nil)
	labtest.Regrade(t, Lesson, func(env *engine.Env) {
		labtest.Must(t, env.Host(Host2), "ip netns exec c1 ip link set eth0 type macvlan mode private")
	})
}

// The record written by `check --record` keeps each host's readings apart,
// and `lab grade` recomputes the same result from the file alone.
func TestRecordAndGrade(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	labtest.LabOnPath(t)
	labtest.ShellRun(t, Lesson, docker01+"\nlab macvlan shell --host docker02 -- bash -c "+quote(docker02(" ip addr add 172.29.0.82/24 dev mv1")))
	rec, err := engine.RecordShell(Lesson, "")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := rec.Write(&b); err != nil {
		t.Fatal(err)
	}
	back, err := engine.ParseRecord(&b)
	if err != nil {
		t.Fatal(err)
	}
	hosts := map[string]bool{}
	for k := range back.Observations {
		h, _, _ := strings.Cut(k, ": ")
		hosts[h] = true
	}
	if !hosts[Host1] || !hosts[Host2] {
		t.Errorf("readings of %v, want both hosts", hosts)
	}
	if len(back.States) != 2 || back.States[1].Host != Host2 || !strings.Contains(back.States[1].Text, "172.29.0.82/24") {
		t.Errorf("states %+v", back.States)
	}
	again, err := grade.Recompute(back)
	if err != nil {
		t.Fatal(err)
	}
	if d := grade.Compare(back, again); len(d) > 0 || again.Score != rec.Score {
		t.Errorf("regraded %d/%d from the file, recorded %d: %v", again.Score, again.Max, rec.Score, d)
	}
	for _, it := range again.Items {
		if it.ID == "addr@"+Host2 && (it.OK || !strings.Contains(it.Found, "/24")) {
			t.Errorf("docker02's /24 graded %+v", it)
		}
	}
}

// docker01 is the base of the by-hand exercises: c1 with a macvlan child
// named otherwise than the lab's, made and moved as a student would.
const docker01 = `set -e
ip netns add c1
ip link add link eth0 name mv1 type macvlan mode bridge
ip link set mv1 netns c1
ip netns exec c1 ip addr add 172.29.0.81/16 dev mv1
ip netns exec c1 ip link set mv1 up`

// docker02 is the same on docker02, with the given address command.
func docker02(addr string) string {
	return `set -e
ip netns add c1
ip link add link eth0 name mv1 type macvlan mode bridge
ip link set mv1 netns c1
ip netns exec c1` + addr + `
ip netns exec c1 ip link set mv1 up`
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Each typical mistake gets its own hint, the command that fixes it.
func TestCheckHintsForCommonMistakes(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	labtest.LabOnPath(t)
	good2 := docker02(" ip addr add 172.29.0.82/16 dev mv1")
	on2 := func(script string) string { return "lab macvlan shell --host docker02 -- bash -c " + quote(script) }
	cases := []struct {
		name   string
		script string
		item   string
		hint   string
		passes []string
	}{
		{"private mode", docker01 + "\n" + on2(strings.Replace(good2, "mode bridge", "mode private", 1)),
			"mv@docker02", "ip netns exec c1 ip link set mv1 type macvlan mode bridge", []string{"c1@docker02", "addr@docker02", "ping@docker01", "ping@docker02"}},
		{"vepa mode", strings.Replace(docker01, "mode bridge", "mode vepa", 1) + "\n" + on2(good2),
			"mv@docker01", "ip netns exec c1 ip link set mv1 type macvlan mode bridge", []string{"addr@docker01", "mv@docker02"}},
		{"same address on both hosts", docker01 + "\n" + on2(docker02(" ip addr add 172.29.0.81/16 dev mv1")),
			"addr@docker02", "ip netns exec c1 ip addr del 172.29.0.81/16 dev mv1 && ip netns exec c1 ip addr add 172.29.0.82/16 dev mv1", []string{"mv@docker02", "addr@docker01"}},
		{"child left on the host", docker01 + "\n" + on2("ip netns add c1 && ip link add link eth0 name mv1 type macvlan mode bridge && ip addr add 172.29.0.82/16 dev mv1"),
			"mv@docker02", "ip link set mv1 netns c1", []string{"c1@docker02", "mv@docker01"}},
		{"wrong prefix", strings.Replace(docker01, "172.29.0.81/16", "172.29.0.81/24", 1) + "\n" + on2(good2),
			"addr@docker01", "ip netns exec c1 ip addr del 172.29.0.81/24 dev mv1 && ip netns exec c1 ip addr add 172.29.0.81/16 dev mv1", []string{"mv@docker01", "addr@docker02"}},
		{"host reaches its child through eth0", docker01 + "\nip route add 172.29.0.81 dev eth0\n" + on2(good2),
			"shim", "ip route del 172.29.0.81 dev eth0 && ip link add link eth0 name mv-shim type macvlan mode bridge && ip addr add 172.29.0.181/32 dev mv-shim && ip link set mv-shim up && ip route add 172.29.0.81 dev mv-shim",
			[]string{"ping@docker01", "ping@docker02"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			labtest.ShellRun(t, Lesson, c.script)
			byID := labtest.Failing(t, Lesson, c.item, c.hint)
			labtest.Passing(t, byID, c.passes...)
		})
	}
}

// Ctrl-C or SIGTERM at any step, and SIGKILL then clean, leave nothing on
// either host or the machine.
func TestInterruptAtEveryStep(t *testing.T) { labtest.InterruptAtEveryStep(t, Lesson, 6) }
