package bridgenat

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/labs/labtest"
	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/httpd"
	"github.com/containers-underneath/lab/primitives/iptables"
	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/simhost"
)

func TestMain(m *testing.M) { labtest.Main(m) }

func needTools(t *testing.T) {
	t.Helper()
	labtest.NeedRoot(t)
	for _, tool := range []string{"iptables", "conntrack"} {
		if _, _, err := iptables.Run("/proc/self/ns/net", tool, "--version"); err != nil {
			t.Skipf("%s: make setup installs it", err)
		}
	}
}

// newWorld makes a world of the lesson's own for one test.
func newWorld(t *testing.T) *simhost.World {
	t.Helper()
	w, _, err := engine.NewWorld(Lesson, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Teardown(Lesson, w) })
	return w
}

func TestLessonLeavesMachineAsItWas(t *testing.T) {
	needTools(t)
	labtest.LabOnPath(t)
	// Everything iptables did happened in docker01's namespace: the
	// machine's own rules are part of what must not change.
	out := labtest.RunLeavesMachine(t, Lesson,
		"[root@docker01 ~]# ip link add vethfe02329 type veth peer name eth0 netns c1",
		"master docker0 state forwarding priority 32 cost 2",
		"From 203.0.113.1 icmp_seq=1 Destination Net Unreachable",
		"curl: (28) Connection timed out after 1000 milliseconds",
		"lab-httpd at 172.17.0.2:80 answers 203.0.113.4, who asked for 10.0.0.81:8000",
		"lab-httpd at 172.17.0.2:80 answers 10.0.0.81, who asked for 10.0.0.81:32768",
		"✔ the lesson's rules, containers and docker0 are gone from docker01",
	)
	if !strings.Contains(out, ", all pass") {
		t.Errorf("the self-check did not pass:\n%s", out)
	}
}

func TestTranscript(t *testing.T) {
	needTools(t)
	env, rec := labtest.EndState(t, Lesson)
	kernelFacts(t, env.Main())
	labtest.Golden(t, Lesson, rec)
}

// kernelFacts checks the end state in the kernel itself, not through the
// lesson's own items: the translations in conntrack and the rule counters.
func kernelFacts(t *testing.T, h *host.Host) {
	t.Helper()
	ns := h.NetnsPath("")
	icmp, err := iptables.Flows(ns, "-p", "icmp", "-s", C1.Addr, "-d", simhost.InternetAddr)
	if err != nil {
		t.Fatal(err)
	}
	// MASQUERADE: the reply comes back to docker01's address.
	if len(icmp) == 0 || icmp[0].Reply.Dst != "10.0.0.81" || icmp[0].Reply.Src != simhost.InternetAddr {
		t.Errorf("icmp flows of c1: %+v", icmp)
	}
	tcp, err := iptables.Flows(ns, "-p", "tcp", "--dport", HostPort)
	if err != nil {
		t.Fatal(err)
	}
	// DNAT: the reply comes from c1's port 80, to the client's own address
	// (the lesson's request, and the check's after the step).
	if len(tcp) == 0 {
		t.Error("no tcp flow to port 8000")
	}
	for _, f := range tcp {
		if f.Orig.Dst != "10.0.0.81" || f.Reply.Src != C1.Addr || f.Reply.SPort != 80 || f.Reply.Dst != simhost.InternetAddr || !f.Assured {
			t.Errorf("tcp flow to 8000: %+v", f)
		}
	}
	stdout, _, err := iptables.Run(ns, "iptables", "-t", "nat", "-L", "POSTROUTING", "-n", "-v", "-x")
	if err != nil {
		t.Fatal(err)
	}
	// At least the lesson's two answered pings to the internet (the checks
	// after steps ping too); NAT sees a connection's first packet only.
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if n, err := strconv.Atoi(f[0]); err != nil || n < 2 || len(f) < 3 || f[2] != "MASQUERADE" {
		t.Errorf("MASQUERADE counter: %q", lines[len(lines)-1])
	}
}

// The printed commands are the truth: the --dry-run script, run with bash
// on a fresh simulated host, gives the lesson's own end state, and check
// passes.
func TestDryRunScriptGivesTheLessonsState(t *testing.T) {
	needTools(t)
	for _, tool := range []string{"ping", "curl", "bridge"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the script uses %s: make setup installs it", tool)
		}
	}
	labtest.LabOnPath(t)
	labtest.DryRunMatches(t, Lesson)
}

// A check graded again from its recorded readings (`lab grade`) comes to
// the same result as the live one, passing or not: every item reads
// through the probe.
func TestRegradeFromRecord(t *testing.T) {
	needTools(t)
	labtest.Short(t)
	labtest.LabOnPath(t)
	labtest.Regrade(t, Lesson, nil)
	labtest.Regrade(t, Lesson, func(env *engine.Env) {
		h := env.Main()
		if err := iptables.Delete(h, "", fwdAccept).Do(io.Discard); err != nil {
			t.Fatal(err)
		}
	})
}

// What a student types by hand: Docker's commands, without the lab's tag.
var byHand = []string{
	"ip link add docker0 type bridge",
	"ip addr add 172.17.0.1/16 dev docker0",
	"ip link set docker0 up",
	"ip netns add c1",
	"ip link add vethfe02329 type veth peer name eth0 netns c1",
	"ip link set vethfe02329 master docker0",
	"ip link set vethfe02329 up",
	"ip netns exec c1 ip link set lo up",
	"ip netns exec c1 ip addr add 172.17.0.2/16 dev eth0",
	"ip netns exec c1 ip link set eth0 up",
	"ip netns exec c1 ip route add default via 172.17.0.1",
	"ip netns add c2",
	"ip link add veth7083571 type veth peer name eth0 netns c2",
	"ip link set veth7083571 master docker0",
	"ip link set veth7083571 up",
	"ip netns exec c2 ip link set lo up",
	"ip netns exec c2 ip addr add 172.17.0.3/16 dev eth0",
	"ip netns exec c2 ip link set eth0 up",
	"ip netns exec c2 ip route add default via 172.17.0.1",
	"sysctl -w net.ipv4.ip_forward=1",
	"iptables -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
	"iptables -P FORWARD DROP",
	"iptables -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
	"iptables -A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
	"iptables -A FORWARD -i docker0 -o docker0 -j ACCEPT",
	"ip netns exec c1 lab tool httpd --listen :80 --detach",
	"iptables -t nat -N DOCKER",
	"iptables -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
	"iptables -t nat -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER",
	"iptables -t nat -A DOCKER -i docker0 -j RETURN",
	"iptables -t nat -A DOCKER ! -i docker0 -p tcp --dport 8000 -j DNAT --to-destination 172.17.0.2:80",
	"iptables -N DOCKER",
	"iptables -A FORWARD -o docker0 -j DOCKER",
	"iptables -A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp --dport 80 -j ACCEPT",
	"HOSTPORT=$(lab tool free-port)",
	`iptables -t nat -A DOCKER ! -i docker0 -p tcp --dport "$HOSTPORT" -j DNAT --to-destination 172.17.0.2:80`,
}

// mistake is byHand with one line replaced ("" deletes it) or, for a line
// not in byHand, one line added at the end.
type mistake struct{ line, with string }

// Each mistake of the issue is caught by its own item, with its own hint,
// and the items it does not concern still pass.
func TestCheckHintsForCommonMistakes(t *testing.T) {
	needTools(t)
	labtest.Short(t)
	const masq = "iptables -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"
	const dnatFix = "iptables -t nat -A DOCKER ! -i docker0 -p tcp --dport 8000 -j DNAT --to-destination 172.17.0.2:80"
	cases := []struct {
		name   string
		change mistake
		item   string
		hint   string
		found  string // a part of what the item reports
		fails  []string
		passes []string
	}{
		{name: "all correct", passes: []string{"bridge", "c1port", "masq", "dnat", "fwd", "http", "publishall", "outputjump"}},
		{"veth not attached to docker0", mistake{"ip link set vethfe02329 master docker0", ""}, "c1port",
			"ip link set vethfe02329 master docker0", "is not a port of docker0", []string{"ping12", "outbound", "http"}, []string{"c1ns", "c1addr", "c1route", "c2port"}},
		{"container without default route", mistake{"ip netns exec c2 ip route add default via 172.17.0.1", ""}, "c2route",
			"ip netns exec c2 ip route add default via 172.17.0.1", "no default route", nil, []string{"c2port", "c2addr", "ping12", "c1route"}},
		{"ip_forward off", mistake{"sysctl -w net.ipv4.ip_forward=1", ""}, "forward",
			"sysctl -w net.ipv4.ip_forward=1", "net.ipv4.ip_forward = 0", []string{"outbound", "http"}, []string{"masq", "dnat", "fwd"}},
		{"MASQUERADE missing", mistake{masq, ""}, "masq",
			masq, "no MASQUERADE rule", []string{"outbound"}, []string{"forward", "fwdout", "http"}},
		{"MASQUERADE on the wrong subnet", mistake{masq, "iptables -t nat -A POSTROUTING -s 172.18.0.0/16 ! -o docker0 -j MASQUERADE"}, "masq",
			"iptables -t nat -D POSTROUTING -s 172.18.0.0/16 ! -o docker0 -j MASQUERADE && " + masq, "does not match c1's 172.17.0.2", []string{"outbound"}, []string{"forward", "http"}},
		{"MASQUERADE without ! -o docker0", mistake{masq, "iptables -t nat -A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE"}, "masq",
			"iptables -t nat -D POSTROUTING -s 172.17.0.0/16 -j MASQUERADE && " + masq, "has no `! -o docker0`", nil, []string{"outbound", "http"}},
		{"DNAT to the wrong address", mistake{dnatFix, "iptables -t nat -A DOCKER ! -i docker0 -p tcp --dport 8000 -j DNAT --to-destination 172.17.0.3:80"}, "dnat",
			"iptables -t nat -D DOCKER ! -i docker0 -p tcp -m tcp --dport 8000 -j DNAT --to-destination 172.17.0.3:80 && " + dnatFix, "the server runs in c1", []string{"http"}, []string{"fwd", "publishall", "httpd"}},
		{"DNAT to the wrong port", mistake{dnatFix, "iptables -t nat -A DOCKER ! -i docker0 -p tcp --dport 8000 -j DNAT --to-destination 172.17.0.2:8000"}, "dnat",
			"iptables -t nat -D DOCKER ! -i docker0 -p tcp -m tcp --dport 8000 -j DNAT --to-destination 172.17.0.2:8000 && " + dnatFix, "the server listens on port 80", []string{"http"}, []string{"fwd", "publishall"}},
		{"FORWARD drops the mapped port", mistake{"iptables -I FORWARD -p tcp --dport 80 -j DROP", ""}, "fwd",
			"iptables -D FORWARD -p tcp -m tcp --dport 80 -j DROP", "drops new connections to 172.17.0.2:80", []string{"http"}, []string{"dnat", "fwdout", "outbound"}},
		{"FORWARD accepts the port before DNAT", mistake{"iptables -A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp --dport 80 -j ACCEPT",
			"iptables -A DOCKER ! -i docker0 -o docker0 -p tcp --dport 8000 -j ACCEPT"}, "fwd",
			"iptables -A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp --dport 80 -j ACCEPT", "FORWARD sees the packet after DNAT", []string{"http"}, []string{"dnat", "fwdout"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			labtest.LabOnPath(t)
			lines := slices.Clone(byHand)
			if c.change.line != "" {
				i := slices.Index(lines, c.change.line)
				switch {
				case i < 0:
					lines = append(lines, c.change.line)
				case c.change.with == "":
					lines = slices.Delete(lines, i, i+1)
				default:
					lines[i] = c.change.with
				}
			}
			labtest.ShellRun(t, Lesson, "set -e\n"+strings.Join(lines, "\n"))
			r, err := engine.CheckShell(Lesson, "")
			if err != nil {
				t.Fatal(err)
			}
			byID := map[string]engine.Result{}
			for _, it := range r.Items {
				byID[it.ID] = it
			}
			if len(byID) != len(r.Items) {
				t.Fatal("two items share an ID")
			}
			for _, id := range c.passes {
				if it, ok := byID[id]; !ok || !it.OK {
					t.Errorf("item %s should pass: %s", id, it.Found)
				}
			}
			if c.item == "" {
				if !r.Passed() {
					var b bytes.Buffer
					r.Print(&b, engine.Plain())
					t.Errorf("check fails on work typed by hand:\n%s", b.String())
				}
				return
			}
			got := byID[c.item]
			if got.OK {
				t.Fatalf("item %s passed", c.item)
			}
			if got.Hint != c.hint {
				t.Errorf("hint for %s = %q\nwant %q\n(found: %s)", c.item, got.Hint, c.hint, got.Found)
			}
			if !strings.Contains(got.Found, c.found) {
				t.Errorf("item %s found %q, want it to say %q", c.item, got.Found, c.found)
			}
			for _, id := range c.fails {
				if byID[id].OK {
					t.Errorf("item %s should fail too", id)
				}
			}
		})
	}
}

// The teardown removes what the lesson added and nothing else: a
// student's own rules, even one shaped like the lesson's, stay.
func TestTeardownRemovesOnlyTheLessonsRules(t *testing.T) {
	needTools(t)
	labtest.Short(t)
	w := newWorld(t)
	h := w.Host("docker01")
	// A rule of the lesson's own shape, untagged, in a DOCKER chain made
	// before the lesson's: the chain must stay for it.
	theirs := []iptables.Rule{
		iptables.R("filter", "FORWARD", "-s", "192.0.2.0/24", "-j", "DROP"),
		iptables.R("filter", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"),
		iptables.R("nat", "DOCKER", "-i", Bridge, "-j", "RETURN"),
	}
	if err := iptables.NewChain(h, "", "nat", "DOCKER").Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, r := range theirs {
		if err := iptables.Append(h, "", r).Do(io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	env := engine.Bind(Lesson, w)
	s := Lesson.Build(env)
	whole := &engine.Script{Steps: append(slices.Clone(s.Steps), s.Teardown), Items: s.Items}
	var out bytes.Buffer
	if err := engine.RunSteps(context.Background(), env, whole, engine.Options{Out: &out, Style: engine.Plain()}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "left chain DOCKER in place: it still holds 1 rule(s) the lesson did not add") {
		t.Errorf("teardown did not say why DOCKER stays:\n%s", out.String())
	}
	ns := h.NetnsPath("")
	for _, table := range []string{"filter", "nat"} {
		tb, err := iptables.Read(ns, table)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, r := range theirs {
			if r.Table == table {
				want = append(want, r.Line())
			}
		}
		var got []string
		for _, l := range tb.Rules {
			got = append(got, strings.ReplaceAll(l.Text, " -m tcp", ""))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s after teardown:\n%s\nwant:\n%s", table, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if want := map[string]int{"filter": 0, "nat": 1}[table]; len(tb.Chains) != want {
			t.Errorf("%s chains left: %v", table, tb.Chains)
		}
		for c, p := range tb.Policies {
			if p != "ACCEPT" {
				t.Errorf("%s %s policy is %s", table, c, p)
			}
		}
	}
	if v, _ := netops.ReadSysctl(h, "", "net.ipv4.ip_forward"); v != "0" {
		t.Errorf("ip_forward = %s", v)
	}
	if names, _ := h.NetnsNames(); len(names) != 0 {
		t.Errorf("namespaces left: %v", names)
	}
	if procs := labtest.LabProcesses(); slices.ContainsFunc(procs, func(p string) bool { return strings.HasPrefix(p, "lab-httpd") }) {
		t.Errorf("lab-httpd left running: %v", procs)
	}
}

func TestFreePortSkipsMappedAndBusyPorts(t *testing.T) {
	needTools(t)
	w := newWorld(t)
	h := w.Host("docker01")
	ns := h.NetnsPath("")
	if p, err := FreePort(ns); err != nil || p != 32768 {
		t.Fatalf("fresh host: %d %v", p, err)
	}
	if err := iptables.NewChain(h, "", "nat", "DOCKER").Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := iptables.Append(h, "", dnat("32768")).Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	l, err := httpd.Listen(ns, ":32769")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if p, err := FreePort(ns); err != nil || p != 32770 {
		t.Errorf("with 32768 mapped and 32769 listening: %d %v", p, err)
	}
	// docker01's namespace is not the test's own: the DNAT there does not
	// count here.
	if p, err := FreePort("/proc/self/ns/net"); err != nil || p == 32770 {
		t.Errorf("the test's own namespace: %d %v", p, err)
	}
}

func TestDryRunNeedsNothing(t *testing.T) {
	var b bytes.Buffer
	if err := engine.DryRun(Lesson, &b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, l := range []string{
		"ip link add docker0 type bridge",
		"ip link add vethfe02329 type veth peer name eth0 netns c1",
		"ip link set vethfe02329 master docker0",
		"iptables -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -m comment --comment lab:bridge-nat -j MASQUERADE",
		"iptables -t nat -A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment lab:bridge-nat -j DOCKER",
		"iptables -t nat -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -m comment --comment lab:bridge-nat -j DOCKER",
		"iptables -t nat -A DOCKER ! -i docker0 -p tcp --dport 8000 -m comment --comment lab:bridge-nat -j DNAT --to-destination 172.17.0.2:80",
		"iptables -A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp --dport 80 -m comment --comment lab:bridge-nat -j ACCEPT",
		"lab bridge-nat shell --host internet -- bash -c 'curl -sS -m 1 http://10.0.0.81:8000/'",
		"HOSTPORT=$(lab tool free-port)",
		`iptables -t nat -A DOCKER ! -i docker0 -p tcp --dport "$HOSTPORT" -m comment --comment lab:bridge-nat -j DNAT --to-destination 172.17.0.2:80`,
		"# iptables -t nat -D POSTROUTING -s 172.17.0.0/16 ! -o docker0 -m comment --comment lab:bridge-nat -j MASQUERADE",
	} {
		if !strings.Contains(s, "\n"+l+"\n") {
			t.Errorf("script lacks the line %q", l)
		}
	}
	// Every rule the lesson adds carries the tag, and teardown deletes
	// each one.
	sc := Lesson.Build(engine.Bind(Lesson, nil))
	var added, deleted []string
	for _, st := range sc.Steps {
		for _, a := range st.Actions {
			if strings.HasPrefix(a.Op.Cmd, "iptables") && strings.Contains(a.Op.Cmd, " -A ") {
				if !strings.Contains(a.Op.Cmd, "--comment "+Tag) {
					t.Errorf("untagged rule: %s", a.Op.Cmd)
				}
				added = append(added, strings.Replace(a.Op.Cmd, " -A ", " -D ", 1))
			}
		}
	}
	for _, a := range sc.Teardown.Actions {
		if strings.Contains(a.Op.Cmd, " -D ") {
			deleted = append(deleted, a.Op.Cmd)
		}
	}
	slices.Sort(added)
	slices.Sort(deleted)
	if !slices.Equal(added, deleted) {
		t.Errorf("teardown deletes\n%s\nbut the lesson adds\n%s", strings.Join(deleted, "\n"), strings.Join(added, "\n"))
	}
}

func TestNormalize(t *testing.T) {
	in := strings.Join([]string{
		"icmp     1 29 src=172.17.0.2 dst=203.0.113.4 type=8 code=0 id=4242 src=203.0.113.4 dst=10.0.0.81 type=0 code=0 id=4242 mark=0 use=1",
		"tcp      6 119 TIME_WAIT src=203.0.113.4 dst=10.0.0.81 sport=45678 dport=8000 src=172.17.0.2 dst=203.0.113.4 sport=80 dport=45678 [ASSURED] mark=0 use=1",
		"conntrack v1.4.7 (conntrack-tools): 1 flow entries have been shown.",
		"4: vethfe02329@if<n>: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master docker0 state forwarding priority 32 cost 2",
		"       1       84 MASQUERADE  0    --  *      !docker0  172.17.0.0/16        0.0.0.0/0            /* lab:bridge-nat */",
	}, "\n")
	want := strings.Join([]string{
		"icmp     1 <t> src=172.17.0.2 dst=203.0.113.4 type=8 code=0 id=<id> src=203.0.113.4 dst=10.0.0.81 type=0 code=0 id=<id> mark=0 use=1",
		"tcp      6 <t> <state> src=203.0.113.4 dst=10.0.0.81 sport=<port> dport=8000 src=172.17.0.2 dst=203.0.113.4 sport=80 dport=<port> [ASSURED] mark=0 use=1",
		"conntrack v<ver> (conntrack-tools): 1 flow entries have been shown.",
		"<n>: vethfe02329@if<n>: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master docker0 state forwarding priority 32 cost 2",
		"       1       84 MASQUERADE  0    --  *      !docker0  172.17.0.0/16        0.0.0.0/0            /* lab:bridge-nat */",
	}, "\n")
	if got := normalize(in); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	flows := iptables.ParseFlows(in)
	if len(flows) != 2 || flows[1].State != "TIME_WAIT" || !flows[1].Assured || flows[1].Orig.DPort != 8000 || flows[1].Reply.Src != "172.17.0.2" || flows[0].Reply.Dst != "10.0.0.81" {
		t.Errorf("flows: %+v", flows)
	}
}
