// Package macvlan is the macvlan lesson: containers on two hosts joined
// across the LAN by macvlan children of each host's eth0, after document
// 000 ("Macvlan实现容器跨主机网络互联"). It is the first lesson on two hosts
// at once:
//
//	docker01                                docker02
//	  c1: eth0 172.29.0.81/16 (macvlan)       c1: eth0 172.29.0.82/16 (macvlan)
//	        │ child of                                │ child of
//	  eth0 10.0.0.81 ─────────── lan ─────────── eth0 10.0.0.82
//
// A macvlan child has a MAC address of its own on the parent's wire, so the
// LAN switch delivers to it directly; what it cannot do is talk to its own
// parent, and the gateway Docker was told (172.29.0.254) does not exist.
package macvlan

import (
	_ "embed"
	"fmt"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/primitives/features"
	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/iptables"
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
	Host1, Host2 = "docker01", "docker02"
	Parent       = "eth0"
	Ctr          = "c1"
	Subnet       = "172.29.0.0/16"
	Prefix       = "/16"
	Gateway      = "172.29.0.254" // --gateway: nobody on the LAN has it
	Mode         = "bridge"
	// Tmp is the child's name on the host before it moves into c1 and
	// becomes eth0 there, as Docker's driver does.
	Tmp = "c1-mv"

	// docker network connect bridge c1, on docker01.
	Bridge    = "docker0"
	BridgeIP  = "172.17.0.1"
	BridgeNet = "172.17.0.0/16"
	VethHost  = "veth-c1"
	Eth1      = "eth1"
	Eth1Addr  = "172.17.0.2"
	Tag       = "lab:macvlan"

	// The shim: a macvlan sibling through which the host reaches c1.
	Shim     = "mv-shim"
	ShimAddr = "172.29.0.181"
)

// Addr is c1's address on each host (the document's --ip).
var Addr = map[string]string{Host1: "172.29.0.81", Host2: "172.29.0.82"}

func other(h string) string {
	if h == Host1 {
		return Host2
	}
	return Host1
}

// Lesson is macvlan.
var Lesson = &engine.Lesson{
	Name:    "macvlan",
	Sources: "000 (Macvlan实现容器跨主机网络互联: docker01, docker02, mynet_macvlan, c1)",
	Topology: simhost.Topology{Hosts: []simhost.HostSpec{
		{Name: Host1, Addr: "10.0.0.81"},
		{Name: Host2, Addr: "10.0.0.82"},
	}},
	Main:  Host1,
	Needs: []string{"netns", "veth", "bridge", "macvlan", "iptables"},
	Text:  engine.MustText(textEN),
	Translations: map[string]engine.Text{
		"zh": engine.MustText(textZH),
	},
	Build: build,
}

func init() { engine.Register(Lesson) }

var masquerade = iptables.R("nat", "POSTROUTING", "-s", BridgeNet, "!", "-o", Bridge, "-j", "MASQUERADE").Tagged(Tag)

func build(env *engine.Env) *engine.Script {
	h1, h2 := env.Host(Host1), env.Host(Host2)
	do, fail, maybe := engine.Do, engine.Fail, engine.Maybe
	// Preflight has made sure the kernel makes macvlan links.
	const builtIn = "a kernel with macvlan built in has no module to load or list"
	return &engine.Script{
		Steps: []engine.Step{
			{ID: "hosts", Actions: []engine.Action{
				do(netstate.ShowAddr(h1, "")),
				do(netstate.ShowAddr(h2, "")),
				do(netops.Ping(h1, "", env.Lesson.Topology.LANAddr(Host2))),
			}},
			{ID: "modprobe", Actions: []engine.Action{
				maybe(features.Modprobe(h1, "macvlan"), builtIn),
				maybe(features.Lsmod(h1, "macvlan"), builtIn),
				maybe(features.Modprobe(h2, "macvlan"), builtIn),
				maybe(features.Lsmod(h2, "macvlan"), builtIn),
			}},
			{ID: "run1", Actions: container(h1), Verify: hostItems(Host1), Extra: []engine.Item{
				engine.OnHost(Host1, engine.Item{ID: "gw@" + Host1, Text: "c1 on docker01 has the network's gateway 172.29.0.254 as default route", Eval: gwItem}),
			}},
			{ID: "run2", Actions: container(h2), Verify: hostItems(Host2)},
			{ID: "cross", Actions: []engine.Action{
				do(netops.Ping(h1, Ctr, Addr[Host2])),
				do(netops.Ping(h2, Ctr, Addr[Host1])),
			}, Verify: []string{"ping@" + Host1, "ping@" + Host2}},
			{ID: "limits", Actions: []engine.Action{
				fail(netops.Ping(h1, Ctr, simhost.InternetAddr), "the gateway 172.29.0.254 the network was given does not exist: nobody answers c1's ARP for it"),
				fail(netops.Ping(h1, Ctr, env.MainAddr), "c1 has no way to its own host but the same dead gateway"),
				do(netstate.ShowNeigh(h1, Ctr, Gateway)),
				do(netops.RouteAdd(h1, "", Addr[Host1], "", Parent)),
				fail(netops.Ping(h1, "", Addr[Host1]), "eth0 is c1's parent: what eth0 sends goes out to the LAN, and the switch never sends a frame back out of the port it came in on"),
				do(netstate.ShowNeigh(h1, "", Addr[Host1])),
				do(netops.RouteDel(h1, "", Addr[Host1], "", Parent)),
			}, Verify: []string{"nointernet@" + Host2}},
			{ID: "connect", Actions: []engine.Action{
				do(netops.BridgeAdd(h1, "", Bridge)),
				do(netops.AddrAdd(h1, "", BridgeIP+Prefix, Bridge)),
				do(netops.LinkUp(h1, "", Bridge)),
				do(netops.VethAddInto(h1, "", VethHost, Eth1, Ctr)),
				do(netops.SetMaster(h1, "", VethHost, Bridge)),
				do(netops.LinkUp(h1, "", VethHost)),
				do(netops.AddrAdd(h1, Ctr, Eth1Addr+Prefix, Eth1)),
				do(netops.LinkUp(h1, Ctr, Eth1)),
				do(netops.RouteReplace(h1, Ctr, "default", BridgeIP, "")),
				do(netops.Sysctl(h1, "", "net.ipv4.ip_forward", "1")),
				do(iptables.Append(h1, "", masquerade)),
				do(netstate.ShowRoute(h1, Ctr)),
				do(netops.Ping(h1, Ctr, simhost.InternetAddr)),
			}, Verify: []string{"bridge", "internet"}},
			{ID: "shim", Actions: []engine.Action{
				do(netops.MacvlanAdd(h1, "", Parent, Shim, Mode)),
				do(netops.AddrAdd(h1, "", ShimAddr+"/32", Shim)),
				do(netops.LinkUp(h1, "", Shim)),
				do(netops.RouteAdd(h1, "", Addr[Host1], "", Shim)),
				do(netops.Ping(h1, "", Addr[Host1])),
				do(netstate.ShowLinksOfKind(h1, "", "macvlan")),
				do(netstate.ShowLinksOfKind(h1, Ctr, "macvlan")),
			}, Verify: []string{"shim"}},
		},
		Items:    items(env),
		Teardown: teardown(env),
	}
}

// container is `docker run --network mynet_macvlan --ip ADDR` on one host,
// as the ip commands that do it: a namespace, a macvlan child of eth0 made
// on the host and moved in, renamed eth0 there, its address and the
// network's gateway.
func container(h *host.Host) []engine.Action {
	do := engine.Do
	return []engine.Action{
		do(netops.NetnsAdd(h, Ctr)),
		do(netops.MacvlanAdd(h, "", Parent, Tmp, Mode)),
		do(netstate.ShowLinksOfKind(h, "", "macvlan")),
		do(netops.LinkSetNetns(h, "", Tmp, Ctr)),
		do(netops.LinkSetName(h, Ctr, Tmp, Parent)),
		do(netops.LinkUp(h, Ctr, "lo")),
		do(netops.AddrAdd(h, Ctr, Addr[h.Name]+Prefix, Parent)),
		do(netops.LinkUp(h, Ctr, Parent)),
		do(netops.RouteAddDefault(h, Ctr, Gateway)),
		do(netstate.ShowAddr(h, Ctr)),
	}
}

// teardown is `docker rm -f c1`, `docker network rm`, and the shim and
// bridge undone, on both hosts. A macvlan child dies with its namespace.
func teardown(env *engine.Env) engine.Step {
	h1, h2 := env.Host(Host1), env.Host(Host2)
	do := engine.Do
	return engine.Step{ID: "teardown", Actions: []engine.Action{
		do(netops.NetnsDel(h1, Ctr)),
		engine.Maybe(netops.LinkDel(h1, "", VethHost), "veth-c1 usually went already, with its peer"),
		do(netops.LinkDel(h1, "", Shim)),
		do(iptables.Delete(h1, "", masquerade)),
		do(netops.Sysctl(h1, "", "net.ipv4.ip_forward", "0")),
		do(netops.LinkDel(h1, "", Bridge)),
		do(netops.NetnsDel(h2, Ctr)),
	}, Extra: []engine.Item{
		engine.OnHost(Host1, goneItem("gone@"+Host1, Shim, Bridge, VethHost)),
		engine.OnHost(Host2, goneItem("gone@"+Host2)),
	}}
}

func goneItem(id string, links ...string) engine.Item {
	return engine.Item{ID: id, Eval: func(p *engine.Probe) engine.Verdict {
		if p.HasNetns(Ctr) {
			return engine.Miss(fmt.Sprintf("c1 still exists on %s", p.Name()), "ip netns del %s", Ctr)
		}
		st := p.NS("")
		for _, l := range links {
			if st != nil && st.Link(l) != nil {
				return engine.Miss(l+" still exists", "ip link del %s", l)
			}
		}
		return engine.Pass()
	}, Text: "c1 and what the lesson added are gone from " + id[len("gone@"):]}
}
