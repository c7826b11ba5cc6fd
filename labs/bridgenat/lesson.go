// Package bridgenat is the bridge-nat lesson: Docker's default network
// built by hand on docker01, after documents 000, 001, 003 and 004. A
// bridge docker0, two containers cabled to it with veth pairs, forwarding
// and MASQUERADE for the way out, and DNAT for `docker run -p 8000:80` and
// `-P` for the way in, with the iptables rules Docker itself writes.
package bridgenat

import (
	_ "embed"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/httpd"
	"github.com/containers-underneath/lab/primitives/iptables"
	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/netstate"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/simhost"
)

//go:embed text/en.txt
var textEN string

// The documents' names and addresses, and Docker's defaults.
const (
	Tag      = "lab:bridge-nat" // the comment on every rule the lesson adds
	Bridge   = "docker0"
	BridgeIP = "172.17.0.1"
	Subnet   = "172.17.0.0/16"
	Prefix   = "/16"
	HostPort = "8000" // -p 8000:80 (document 001)
	CtrPort  = "80"
	PortVar  = "$HOSTPORT" // the -P port, picked when the lesson runs
	Internet = simhost.InternetName
)

// Container is one container of the lesson: a network namespace made with
// `ip netns add`, and the host end of its veth, named as in document 000.
type Container struct {
	Name, Veth, Addr string
}

var (
	C1 = Container{"c1", "vethfe02329", "172.17.0.2"}
	C2 = Container{"c2", "veth7083571", "172.17.0.3"}
)

// Target is where the port mappings lead: nginx's port 80 in c1.
var Target = C1.Addr + ":" + CtrPort

// Lesson is bridge-nat.
var Lesson = &engine.Lesson{
	Name:      "bridge-nat",
	Sources:   "000 (docker0, vethfe02329), 001 (MASQUERADE, -p 8000:80, -P), 003 (DNAT and SNAT), 004 (brctl show)",
	Topology:  simhost.Topology{Hosts: []simhost.HostSpec{{Name: "docker01", Addr: "10.0.0.81"}}},
	Main:      "docker01",
	Needs:     []string{"netns", "veth", "bridge", "iptables", "conntrack"},
	Text:      engine.MustText(textEN),
	State:     state,
	StateNote: "links, addresses and routes of docker01 and of each namespace on it, then ip_forward and docker01's iptables rules, ACCEPT policies left out; IPv6, MACs and interface numbers left out",
	Normalize: normalize,
	Build:     build,
}

func init() { engine.Register(Lesson) }

// The rules Docker writes for the default bridge and one -p mapping, each
// tagged so that teardown removes exactly these.
var (
	masquerade = rule("nat", "POSTROUTING", "-s", Subnet, "!", "-o", Bridge, "-j", "MASQUERADE")

	fwdReplies  = rule("filter", "FORWARD", "-o", Bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
	fwdOut      = rule("filter", "FORWARD", "-i", Bridge, "!", "-o", Bridge, "-j", "ACCEPT")
	fwdInternal = rule("filter", "FORWARD", "-i", Bridge, "-o", Bridge, "-j", "ACCEPT")

	preJump      = rule("nat", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER")
	outJump      = rule("nat", "OUTPUT", "!", "-d", "127.0.0.0/8", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER")
	dockerReturn = rule("nat", "DOCKER", "-i", Bridge, "-j", "RETURN")

	fwdJump   = rule("filter", "FORWARD", "-o", Bridge, "-j", "DOCKER")
	fwdAccept = rule("filter", "DOCKER", "-d", C1.Addr+"/32", "!", "-i", Bridge, "-o", Bridge, "-p", "tcp", "--dport", CtrPort, "-j", "ACCEPT")
)

func rule(table, chain string, spec ...string) iptables.Rule {
	return iptables.R(table, chain, spec...).Tagged(Tag)
}

// dnat is `-p PORT:80` in the nat DOCKER chain.
func dnat(port string) iptables.Rule {
	return rule("nat", "DOCKER", "!", "-i", Bridge, "-p", "tcp", "--dport", port, "-j", "DNAT", "--to-destination", Target)
}

// picked is the host port -P chose, shared by the ops of one run.
type picked struct{ port int }

func (p *picked) String() string { return strconv.Itoa(p.port) }

// late prints the command of an op written with $HOSTPORT and runs the op
// made with the port picked a moment earlier.
func late(printed op.Op, real func() op.Op) op.Op {
	return op.Op{Host: printed.Host, Cmd: printed.Cmd, Do: func(out io.Writer) error { return real().Do(out) }}
}

func build(env *engine.Env) *engine.Script {
	h := env.Main()
	inet := env.Host(Internet)
	do, fail := engine.Do, engine.Fail
	ipt := func(r iptables.Rule) engine.Action { return do(iptables.Append(h, "", r)) }
	hostAddr := env.MainAddr
	mapped := "http://" + hostAddr + ":" + HostPort + "/"
	pick := &picked{}
	pPort := pick.String
	steps := []engine.Step{
		{ID: "bridge", Actions: []engine.Action{
			do(netops.BridgeAdd(h, "", Bridge)),
			do(netops.AddrAdd(h, "", BridgeIP+Prefix, Bridge)),
			do(netops.LinkUp(h, "", Bridge)),
			do(netstate.ShowAddr(h, "")),
		}, Verify: []string{"bridge"}},
		{ID: "c1", Actions: container(h, C1), Verify: []string{"c1ns", "c1port", "c1addr", "c1route"}},
		{ID: "c2", Actions: append(container(h, C2), do(netops.BridgeLink(h, ""))),
			Verify: []string{"c2ns", "c2port", "c2addr", "c2route"}},
		{ID: "ping", Actions: []engine.Action{
			do(netops.Ping(h, C1.Name, C2.Addr)),
			do(netops.Ping(h, C2.Name, C1.Addr)),
			do(netops.Ping(h, "", C1.Addr)),
			do(netops.Ping(h, C1.Name, BridgeIP)),
		}, Verify: []string{"ping12", "pinghost"}},
		{ID: "forwarding", Actions: []engine.Action{
			do(showSysctl(h, "net.ipv4.ip_forward")),
			fail(netops.Ping(h, C1.Name, simhost.InternetAddr), "docker01 does not forward (ip_forward = 0): the packet stops at docker0"),
			do(netops.Sysctl(h, "", "net.ipv4.ip_forward", "1")),
			fail(netops.Ping(h, C1.Name, simhost.InternetAddr), "the request goes out from 172.17.0.2, and nothing outside knows the way back to it"),
		}, Verify: []string{"forward"}},
		{ID: "masquerade", Actions: []engine.Action{
			ipt(masquerade),
			do(iptables.List(h, "", "nat", "POSTROUTING")),
			do(netops.Ping(h, C1.Name, simhost.InternetAddr)),
			do(iptables.List(h, "", "nat", "POSTROUTING")),
			do(iptables.Conntrack(h, "", "-p", "icmp")),
		}, Verify: []string{"masq", "outbound"}},
		{ID: "forward-policy", Actions: []engine.Action{
			do(iptables.Policy(h, "", "filter", "FORWARD", "DROP")),
			fail(netops.Ping(h, C1.Name, simhost.InternetAddr), "FORWARD's policy now drops everything docker01 routes"),
			ipt(fwdReplies),
			ipt(fwdOut),
			ipt(fwdInternal),
			do(netops.Ping(h, C1.Name, simhost.InternetAddr)),
			do(netops.Ping(h, C1.Name, C2.Addr)),
		}, Verify: []string{"fwdout", "outbound", "ping12"}},
		{ID: "server", Actions: []engine.Action{
			do(httpd.Start(h, C1.Name, ":"+CtrPort, filepath.Join(simhost.StateRoot(), env.Lesson.Name))),
			do(httpd.Get(h, "", "http://"+C1.Addr+"/", time.Second)),
			fail(netops.Ping(inet, "", C1.Addr), "172.17.0.0/16 exists only inside docker01: the internet has no route to it"),
		}, Verify: []string{"httpd"}},
		{ID: "dnat", Actions: []engine.Action{
			do(iptables.NewChain(h, "", "nat", "DOCKER")),
			ipt(preJump),
			ipt(outJump),
			ipt(dockerReturn),
			ipt(dnat(HostPort)),
			fail(httpd.Get(inet, "", mapped, time.Second), "the DNAT works, but FORWARD's policy drops the translated connection"),
		}, Verify: []string{"dnat"}},
		{ID: "forward-accept", Actions: []engine.Action{
			do(iptables.NewChain(h, "", "filter", "DOCKER")),
			ipt(fwdJump),
			ipt(fwdAccept),
			do(httpd.Get(inet, "", mapped, time.Second)),
			do(iptables.Conntrack(h, "", "-p", "tcp", "--dport", HostPort)),
		}, Verify: []string{"fwd", "http"}},
		{ID: "publish-all", Actions: []engine.Action{
			do(showSysctl(h, "net.ipv4.ip_local_port_range")),
			do(op.Op{Host: h.Name, Cmd: "HOSTPORT=$(lab tool free-port)", Do: func(io.Writer) error {
				p, err := FreePort(h.NetnsPath(""))
				pick.port = p
				return err
			}}),
			do(op.Op{Host: h.Name, Cmd: `echo "$HOSTPORT"`, Do: func(out io.Writer) error {
				_, err := fmt.Fprintln(out, pick.port)
				return err
			}}),
			do(late(iptables.Append(h, "", dnat(PortVar)), func() op.Op { return iptables.Append(h, "", dnat(pPort())) })),
			do(iptables.ListRules(h, "", "nat", "DOCKER")),
			do(late(httpd.Get(h, "", "http://"+hostAddr+":"+PortVar+"/", time.Second),
				func() op.Op { return httpd.Get(h, "", "http://"+hostAddr+":"+pPort()+"/", time.Second) })),
		}, Verify: []string{"publishall", "outputjump"}},
	}
	return &engine.Script{Steps: steps, Items: items(env), Teardown: teardown(env, pick)}
}

// container is what `docker run` does for a container's network: a
// namespace, a veth pair with eth0 born inside, the host end a port of
// docker0, an address, and a default route through docker0.
func container(h *host.Host, c Container) []engine.Action {
	do := engine.Do
	return []engine.Action{
		do(netops.NetnsAdd(h, c.Name)),
		do(netops.VethAddInto(h, "", c.Veth, "eth0", c.Name)),
		do(netops.SetMaster(h, "", c.Veth, Bridge)),
		do(netops.LinkUp(h, "", c.Veth)),
		do(netops.LinkUp(h, c.Name, "lo")),
		do(netops.AddrAdd(h, c.Name, c.Addr+Prefix, "eth0")),
		do(netops.LinkUp(h, c.Name, "eth0")),
		do(netops.RouteAddDefault(h, c.Name, BridgeIP)),
	}
}

// teardown undoes the lesson as `docker rm -f` and stopping dockerd would:
// the server, the containers, then every rule the lesson added, by its
// full spec (comment included), newest first, and nothing else.
func teardown(env *engine.Env, pick *picked) engine.Step {
	h := env.Main()
	do := engine.Do
	del := func(r iptables.Rule) engine.Action { return do(iptables.Delete(h, "", r)) }
	return engine.Step{ID: "teardown", Actions: []engine.Action{
		do(netops.KillNetns(h, C1.Name)),
		do(netops.LinkDel(h, "", C1.Veth)),
		do(netops.NetnsDel(h, C1.Name)),
		do(netops.LinkDel(h, "", C2.Veth)),
		do(netops.NetnsDel(h, C2.Name)),
		do(late(iptables.Delete(h, "", dnat(PortVar)), func() op.Op { return iptables.Delete(h, "", dnat(pick.String())) })),
		del(fwdAccept),
		del(fwdJump),
		do(iptables.DeleteChain(h, "", "filter", "DOCKER")),
		del(dnat(HostPort)),
		del(dockerReturn),
		del(outJump),
		del(preJump),
		do(iptables.DeleteChain(h, "", "nat", "DOCKER")),
		del(fwdInternal),
		del(fwdOut),
		del(fwdReplies),
		do(iptables.Policy(h, "", "filter", "FORWARD", "ACCEPT")),
		del(masquerade),
		do(netops.Sysctl(h, "", "net.ipv4.ip_forward", "0")),
		do(netops.LinkDel(h, "", Bridge)),
	}, Extra: []engine.Item{{ID: "gone", Text: "the lesson's rules, containers and docker0 are gone from docker01", Eval: gone}}}
}

func gone(p *engine.Probe) engine.Verdict {
	for _, c := range []Container{C1, C2} {
		if p.HasNetns(c.Name) {
			return engine.Miss(c.Name+" still exists", "ip netns del %s", c.Name)
		}
	}
	if st := p.NS(""); st != nil {
		for _, n := range []string{Bridge, C1.Veth, C2.Veth} {
			if st.Link(n) != nil {
				return engine.Miss(n+" still exists", "ip link del %s", n)
			}
		}
	}
	for _, name := range []string{"filter", "nat"} {
		t, err := table(p, name)
		if err != nil {
			return engine.Miss(err.Error(), "")
		}
		var left []iptables.Line
		for _, l := range t.Rules {
			if l.Comment() == Tag {
				left = append(left, l)
			}
		}
		if len(left) > 0 {
			return engine.Miss(fmt.Sprintf("%d rule(s) tagged %s are left, e.g. %s", len(left), Tag, left[0].Text), "%s", left[0].Command(name, "-D"))
		}
	}
	return engine.Pass()
}

// showSysctl is `sysctl KEY` for a net.* key: per network namespace.
func showSysctl(h *host.Host, key string) op.Op {
	return op.Op{Host: h.Name, Cmd: "sysctl " + key, Do: func(out io.Writer) error {
		v, err := netops.ReadSysctl(h, "", key)
		if err != nil {
			return fmt.Errorf("failed to read %s: %w", key, err)
		}
		_, err = fmt.Fprintf(out, "%s = %s\n", key, v)
		return err
	}}
}

// state is what transcripts record after each step: the network state of
// docker01 and its containers, then forwarding and the rules that are not
// a fresh namespace's (policies other than ACCEPT, chains, rules).
func state(env *engine.Env) (string, error) {
	h := env.Main()
	s, err := netstate.Snapshot(h)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(s)
	fwd, err := netops.ReadSysctl(h, "", "net.ipv4.ip_forward")
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "[%s sysctl]\nnet.ipv4.ip_forward = %s\n[%s iptables]\n", h.Name, fwd, h.Name)
	n := 0
	for _, table := range []string{"filter", "nat"} {
		t, err := iptables.Read(h.NetnsPath(""), table)
		if err != nil {
			return "", err
		}
		prefix := ""
		if table != "filter" {
			prefix = "-t " + table + " "
		}
		for _, l := range t.Lines("") {
			if strings.HasPrefix(l, "-P ") && strings.HasSuffix(l, " ACCEPT") {
				continue
			}
			b.WriteString(prefix + l + "\n")
			n++
		}
	}
	if n == 0 {
		b.WriteString("(no rules; every policy ACCEPT)\n")
	}
	return b.String(), nil
}

var (
	ctHead    = regexp.MustCompile(`^(icmp|tcp|udp)(\s+\d+\s+)\d+ (?:[A-Z_]+ )?`)
	ctID      = regexp.MustCompile(`\bid=\d+`)
	ctVersion = regexp.MustCompile(`^conntrack v[0-9.]+ `)
	portIndex = regexp.MustCompile(`^\d+: (\S+@if<n>:)`)
	ctPort    = regexp.MustCompile(`\b[sd]port=\d+`)
)

// normalize removes what changes from run to run in the lesson's output:
// conntrack's timers, ICMP ids, TCP states and the client's ephemeral
// port (the source port of the original tuple, the destination port of
// the reply), conntrack's version, and `bridge link`'s ifindex.
func normalize(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if m := ctHead.FindStringSubmatch(l); m != nil {
			state := ""
			if m[1] == "tcp" {
				state = "<state> "
			}
			l = m[1] + m[2] + "<t> " + state + l[len(m[0]):]
			l = ctID.ReplaceAllString(l, "id=<id>")
			l = ctClientPort(l)
		}
		l = ctVersion.ReplaceAllString(l, "conntrack v<ver> ")
		l = portIndex.ReplaceAllString(l, "<n>: $1")
		lines[i] = l
	}
	return strings.Join(lines, "\n")
}

// ctClientPort replaces the first sport= and the second dport= of a
// conntrack line: the client's port, chosen at random.
func ctClientPort(l string) string {
	n := map[string]int{}
	return ctPort.ReplaceAllStringFunc(l, func(w string) string {
		k, _, _ := strings.Cut(w, "=")
		n[k]++
		if (k == "sport" && n[k] == 1) || (k == "dport" && n[k] == 2) {
			return k + "=<port>"
		}
		return w
	})
}
