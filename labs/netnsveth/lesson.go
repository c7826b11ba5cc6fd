// Package netnsveth is the netns-veth lesson: network namespaces and veth
// pairs, after documents 000 (linux_yuan, veth100/veth200 on docker01) and
// 004 (ns1/ns2).
package netnsveth

import (
	_ "embed"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/netstate"
	"github.com/containers-underneath/lab/primitives/simhost"
)

//go:embed text/en.txt
var textEN string

//go:embed text/zh.txt
var textZH string

// The document's names and addresses.
const (
	NS       = "linux_yuan"
	HostEnd  = "veth100"
	NSEnd    = "veth200"
	HostAddr = "172.31.100.100"
	NSAddr   = "172.31.100.200"
	Prefix   = "/24"

	NS1, NS2     = "ns1", "ns2"
	Veth1, Veth2 = "veth-ns1", "veth-ns2"
	Addr1, Addr2 = "192.168.1.1", "192.168.1.2"
)

// Lesson is netns-veth.
var Lesson = &engine.Lesson{
	Name:     "netns-veth",
	Sources:  "000 (docker01, linux_yuan), 004 (ns1, ns2)",
	Topology: simhost.Topology{Hosts: []simhost.HostSpec{{Name: "docker01", Addr: "10.0.0.81"}}},
	Main:     "docker01",
	Needs:    []string{"netns", "veth"},
	Text:     engine.MustText(textEN),
	Translations: map[string]engine.Text{
		"zh": engine.MustText(textZH),
	},
	Build: build,
}

func init() { engine.Register(Lesson) }

func build(env *engine.Env) *engine.Script {
	h := env.Main()
	do, fail := engine.Do, engine.Fail
	return &engine.Script{
		Steps: []engine.Step{
			{ID: "netns-add", Actions: []engine.Action{
				do(netops.NetnsAdd(h, NS)),
				do(netstate.NetnsList(h)),
			}, Verify: []string{"netns"}},
			{ID: "lo-up", Actions: []engine.Action{
				fail(netops.Ping(h, NS, "127.0.0.1"), "lo is down, so not even 127.0.0.1 has a route"),
				do(netops.LinkUp(h, NS, "lo")),
				do(netops.Ping(h, NS, "127.0.0.1")),
			}, Verify: []string{"lo"}},
			{ID: "veth-add", Actions: []engine.Action{
				do(netops.VethAdd(h, "", HostEnd, NSEnd)),
				do(netstate.ShowAddr(h, "")),
			}, Verify: []string{"veth100"}},
			{ID: "veth-move", Actions: []engine.Action{
				do(netops.LinkSetNetns(h, "", NSEnd, NS)),
				do(netstate.ShowAddr(h, "")),
				do(netstate.ShowAddr(h, NS)),
			}, Verify: []string{"veth200"}},
			{ID: "addrs", Actions: []engine.Action{
				do(netops.AddrAdd(h, NS, NSAddr+Prefix, NSEnd)),
				do(netops.LinkUp(h, NS, NSEnd)),
				do(netops.AddrAdd(h, "", HostAddr+Prefix, HostEnd)),
				do(netops.LinkUp(h, "", HostEnd)),
				do(netstate.ShowAddr(h, NS)),
			}, Verify: []string{"addr200", "up200", "addr100", "up100"}},
			{ID: "ping-pair", Actions: []engine.Action{
				do(netops.Ping(h, NS, HostAddr)),
				do(netops.Ping(h, "", NSAddr)),
			}, Verify: []string{"ping100", "ping200"}},
			{ID: "route", Actions: []engine.Action{
				fail(netops.Ping(h, NS, env.MainAddr), "linux_yuan has no route to "+env.MainAddr),
				do(netops.RouteAddDefault(h, NS, HostAddr)),
				do(netstate.ShowRoute(h, NS)),
				do(netops.Ping(h, NS, env.MainAddr)),
				fail(netops.Ping(h, NS, simhost.InternetAddr), "docker01 does not forward, and there is no NAT"),
			}, Verify: []string{"route", "pinghost"}},
			{ID: "ns-pair", Actions: []engine.Action{
				do(netops.NetnsAdd(h, NS1)),
				do(netops.NetnsAdd(h, NS2)),
				do(netops.VethAdd(h, "", Veth1, Veth2)),
				do(netops.LinkSetNetns(h, "", Veth1, NS1)),
				do(netops.LinkSetNetns(h, "", Veth2, NS2)),
			}, Verify: []string{"ns12", "vethns1", "vethns2"}},
			{ID: "ns-ping", Actions: []engine.Action{
				do(netops.AddrAdd(h, NS1, Addr1+Prefix, Veth1)),
				do(netops.AddrAdd(h, NS2, Addr2+Prefix, Veth2)),
				do(netops.LinkUp(h, NS1, Veth1)),
				do(netops.LinkUp(h, NS2, Veth2)),
				do(netops.Ping(h, NS1, Addr2)),
				do(netops.Ping(h, NS2, Addr1)),
			}, Verify: []string{"ns1addr", "ns2addr", "ping12", "ping21"}},
		},
		Items:    items(env),
		Teardown: teardown(env),
	}
}

func teardown(env *engine.Env) engine.Step {
	h := env.Main()
	return engine.Step{ID: "teardown", Actions: []engine.Action{
		engine.Do(netops.NetnsDel(h, NS)),
		engine.Maybe(netops.LinkDel(h, "", HostEnd), "veth100 usually went already, with its peer"),
		engine.Do(netops.NetnsDel(h, NS1)),
		engine.Do(netops.NetnsDel(h, NS2)),
	}, Extra: []engine.Item{
		{ID: "gone", Text: "linux_yuan, ns1, ns2 and veth100 are gone from docker01", Eval: func(p *engine.Probe) engine.Verdict {
			for _, n := range []string{NS, NS1, NS2} {
				if p.HasNetns(n) {
					return engine.Fix(n+" still exists", netops.NetnsDel(p.Host, n))
				}
			}
			if st := p.NS(""); st != nil && st.Link(HostEnd) != nil {
				return engine.Fix("veth100 still exists", netops.LinkDel(p.Host, "", HostEnd))
			}
			return engine.Pass()
		}},
	}}
}

// items are the graded self-check. Each failure names its own cause and the
// command that fixes it: the common mistakes are lo left down, /16 for /24,
// veth200 not moved, an end left down, no default route.
func items(env *engine.Env) []engine.Item {
	host := env.Lesson.Main
	nsExists := func(id, ns string) engine.Item {
		return engine.Item{ID: id, Text: fmt.Sprintf("namespace %s exists on %s", ns, host), Eval: func(p *engine.Probe) engine.Verdict {
			if p.HasNetns(ns) {
				return engine.Pass()
			}
			return engine.Fix("no /var/run/netns/"+ns, netops.NetnsAdd(p.Host, ns))
		}}
	}
	its := []engine.Item{
		nsExists("netns", NS),
		{ID: "lo", Text: "lo is up in linux_yuan", Eval: func(p *engine.Probe) engine.Verdict {
			st := p.NS(NS)
			if st == nil {
				return engine.Fix("linux_yuan does not exist", netops.NetnsAdd(p.Host, NS))
			}
			if l := st.Link("lo"); l == nil || l.State != "UP" {
				return engine.Fix("lo is DOWN, so 127.0.0.1 does not answer", netops.LinkUp(p.Host, NS, "lo"))
			}
			return engine.Pass()
		}},
		{ID: "veth100", Text: "veth100 is on " + host, Eval: func(p *engine.Probe) engine.Verdict {
			if l := p.NS("").Link(HostEnd); l != nil && l.Kind == "veth" {
				return engine.Pass()
			}
			if st := p.NS(NS); st != nil && st.Link(HostEnd) != nil {
				// Not "ip link set veth100 netns 1": on a simulated host PID 1
				// is the machine's init, so that would move the link out of
				// the lesson altogether. Deleting one end deletes the pair.
				return engine.Fix("veth100 was moved into linux_yuan; the other end belongs there",
					netops.LinkDel(p.Host, NS, HostEnd), netops.VethAdd(p.Host, "", HostEnd, NSEnd), netops.LinkSetNetns(p.Host, "", NSEnd, NS))
			}
			return engine.Fix("no veth100", netops.VethAdd(p.Host, "", HostEnd, NSEnd))
		}},
		{ID: "veth200", Text: "veth200 is in linux_yuan, not on " + host, Eval: func(p *engine.Probe) engine.Verdict {
			if p.NS("").Link(NSEnd) != nil {
				return engine.Fix("veth200 is still on "+host, netops.LinkSetNetns(p.Host, "", NSEnd, NS))
			}
			st := p.NS(NS)
			if st == nil || st.Link(NSEnd) == nil {
				return engine.Fix("no veth200 in linux_yuan", netops.VethAdd(p.Host, "", HostEnd, NSEnd), netops.LinkSetNetns(p.Host, "", NSEnd, NS))
			}
			return engine.Pass()
		}},
		addrItem("addr200", NS, NSEnd, NSAddr),
		upItem("up200", NS, NSEnd),
		addrItem("addr100", "", HostEnd, HostAddr),
		upItem("up100", "", HostEnd),
		{ID: "route", Text: "linux_yuan has a default route via 172.31.100.100", Eval: func(p *engine.Probe) engine.Verdict {
			st := p.NS(NS)
			if st != nil && st.HasRoute("default via "+HostAddr+" ") {
				return engine.Pass()
			}
			found := "no default route"
			if st != nil {
				for _, r := range st.Routes {
					if len(r) > 7 && r[:7] == "default" {
						found = "the default route is `" + r + "`"
					}
				}
			}
			return engine.Fix(found, netops.RouteAddDefault(p.Host, NS, HostAddr))
		}},
		engine.PingItem("ping100", NS, HostAddr, "linux_yuan reaches 172.31.100.100 (veth100)"),
		engine.PingItem("ping200", "", NSAddr, host+" reaches 172.31.100.200 (veth200)"),
	}
	if env.MainAddr != "" {
		its = append(its, engine.PingItem("pinghost", NS, env.MainAddr, "linux_yuan reaches "+host+"'s own address "+env.MainAddr))
	} else {
		its = append(its, engine.Item{ID: "pinghost", Text: "linux_yuan reaches the host's own address", Eval: func(*engine.Probe) engine.Verdict {
			return engine.Verdict{Skip: "this machine has no global IPv4 address to try"}
		}})
	}
	its = append(its,
		engine.Item{ID: "nointernet", Text: "linux_yuan does not reach the internet (" + simhost.InternetAddr + ") without forwarding and NAT", Eval: func(p *engine.Probe) engine.Verdict {
			if p.Env.OnMachine {
				return engine.Verdict{Skip: "the self-check sends no traffic off this machine"}
			}
			r, err := p.Ping(NS, simhost.InternetAddr)
			if err != nil {
				return engine.Fix(err.Error(), netops.NetnsAdd(p.Host, NS))
			}
			if r.Reply {
				return engine.Miss("it answers: something forwards and translates for linux_yuan",
					"sysctl -w net.ipv4.ip_forward=0 (and remove any MASQUERADE rule you added)")
			}
			return engine.Pass()
		}},
		engine.Item{ID: "ns12", Text: "namespaces ns1 and ns2 exist on " + host, Eval: func(p *engine.Probe) engine.Verdict {
			for _, n := range []string{NS1, NS2} {
				if !p.HasNetns(n) {
					return engine.Fix("no /var/run/netns/"+n, netops.NetnsAdd(p.Host, n))
				}
			}
			return engine.Pass()
		}},
		inNSItem("vethns1", Veth1, NS1, Veth2),
		inNSItem("vethns2", Veth2, NS2, Veth1),
		addrItem("ns1addr", NS1, Veth1, Addr1),
		addrItem("ns2addr", NS2, Veth2, Addr2),
		engine.PingItem("ping12", NS1, Addr2, "ns1 reaches 192.168.1.2"),
		engine.PingItem("ping21", NS2, Addr1, "ns2 reaches 192.168.1.1"),
	)
	// After the document's own cleanup every item fails for one reason:
	// the first says it, the others stay one line each.
	for i := range its {
		eval, first := its[i].Eval, i == 0
		its[i].Eval = func(p *engine.Probe) engine.Verdict {
			msg := cleanedUp(p)
			switch {
			case msg == "":
				return eval(p)
			case first:
				return engine.Fix(msg, netops.NetnsAdd(p.Host, NS))
			}
			return engine.Miss("", "")
		}
	}
	return its
}

// deleteRe finds the document's cleanup in the shell's history: `ip netns
// del linux_yuan`, `ip netns delete ns1`, `ip -all netns del`.
var deleteRe = regexp.MustCompile(`\bnetns\s+del(ete)?\b`)

// cleanedUp says, when it is so, that the student ran the document's
// cleanup: none of the exercise's namespaces is left on the host and the
// shell's history deleted namespaces. It is "" otherwise, a fresh shell
// included.
func cleanedUp(p *engine.Probe) string {
	// veth100 is not asked about: it goes with veth200 when linux_yuan
	// goes, a moment later.
	if p.Env.OnMachine || p.HasNetns(NS) || p.HasNetns(NS1) || p.HasNetns(NS2) {
		return ""
	}
	cmd, _ := p.Observe("shell history: the document's cleanup", func() (string, error) {
		cmds, err := engine.ReadHistory(p.Env.StateDir())
		for _, c := range cmds {
			for _, line := range strings.Split(c.Cmd, "\n") {
				if c.Host == p.Host.Name && deleteRe.MatchString(line) {
					return strings.TrimSpace(line), err
				}
			}
		}
		return "", err
	})
	if cmd == "" {
		return ""
	}
	return fmt.Sprintf("you ran the document's cleanup (`%s`): linux_yuan, ns1 and ns2 are gone, so there is nothing left to grade; redo the exercise from step 1 (`lab %s --dry-run` lists its commands) and run check before the cleanup",
		cmd, p.Env.Lesson.Name)
}

func nsName(ns string) string {
	if ns == "" {
		return "the host"
	}
	return ns
}

// addrItem: dev in ns carries addr/24, and not the same address with a
// wrong prefix (the /16 mistake gets its own hint).
func addrItem(id, ns, dev, addr string) engine.Item {
	want := addr + Prefix
	return engine.Item{ID: id, Text: fmt.Sprintf("%s has %s", dev, want), Eval: func(p *engine.Probe) engine.Verdict {
		st := p.NS(ns)
		if st == nil {
			return engine.Fix(ns+" does not exist", netops.NetnsAdd(p.Host, ns))
		}
		l := st.Link(dev)
		if l == nil {
			return engine.Miss(fmt.Sprintf("no %s in %s", dev, nsName(ns)), "the items above first: %s must be in %s", dev, nsName(ns))
		}
		if slices.Contains(l.Addrs, want) {
			return engine.Pass()
		}
		for _, a := range l.Addrs {
			if len(a) > len(addr) && a[:len(addr)+1] == addr+"/" {
				return engine.Fix(fmt.Sprintf("%s has %s: the prefix is wrong, so the kernel's idea of what is on-link is too", dev, a),
					netops.AddrDel(p.Host, ns, a, dev), netops.AddrAdd(p.Host, ns, want, dev))
			}
		}
		found := "no address"
		if len(l.Addrs) > 0 {
			found = fmt.Sprint(l.Addrs)
		}
		return engine.Fix(fmt.Sprintf("%s has %s", dev, found), netops.AddrAdd(p.Host, ns, want, dev))
	}}
}

func upItem(id, ns, dev string) engine.Item {
	return engine.Item{ID: id, Text: dev + " is up", Eval: func(p *engine.Probe) engine.Verdict {
		st := p.NS(ns)
		if st == nil || st.Link(dev) == nil {
			return engine.Miss(fmt.Sprintf("no %s in %s", dev, nsName(ns)), "the items above first")
		}
		// Admin state only: NO-CARRIER means this end is up and the other
		// one is not, which the other end's own item reports.
		if st.Link(dev).State == "DOWN" {
			return engine.Fix(dev+" is DOWN", netops.LinkUp(p.Host, ns, dev))
		}
		return engine.Pass()
	}}
}

func inNSItem(id, dev, ns, peer string) engine.Item {
	return engine.Item{ID: id, Text: fmt.Sprintf("%s is in %s", dev, ns), Eval: func(p *engine.Probe) engine.Verdict {
		if st := p.NS(ns); st != nil && st.Link(dev) != nil {
			return engine.Pass()
		}
		if p.NS("").Link(dev) != nil {
			return engine.Fix(dev+" is still on the host", netops.LinkSetNetns(p.Host, "", dev, ns))
		}
		return engine.Fix("no "+dev, netops.VethAdd(p.Host, "", Veth1, Veth2))
	}}
}
