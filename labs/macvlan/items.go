package macvlan

import (
	"fmt"
	"strings"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/iptables"
	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/netstate"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/simhost"
)

// hostItems are the items one `docker run` on a host makes true.
func hostItems(h string) []string {
	ids := []string{"c1@" + h, "mv@" + h, "addr@" + h}
	if h == Host2 {
		ids = append(ids, "gw@"+h)
	}
	return ids
}

// items are the graded self-check, on both hosts. They grade what the
// kernel holds, not how it was typed: any name for c1's macvlan, made in c1
// or moved there. Each mistake gets its own hint, the command of the op
// that fixes it: a child in private or vepa mode, the same address on both
// hosts, the child left on the host, a wrong prefix, a host that expects
// to reach its own child through eth0.
func items(env *engine.Env) []engine.Item {
	var its []engine.Item
	for _, h := range []string{Host1, Host2} {
		its = append(its,
			engine.OnHost(h, engine.Item{ID: "c1@" + h, Text: "container c1 (namespace c1) exists on " + h, Eval: nsItem}),
			engine.OnHost(h, engine.Item{ID: "mv@" + h, Text: "c1 on " + h + " has a macvlan child of " + h + "'s eth0, in bridge mode", Eval: childItem}),
			engine.OnHost(h, engine.Item{ID: "addr@" + h, Text: fmt.Sprintf("c1's macvlan on %s has %s/16 and is up", h, Addr[h]), Eval: addrItem}),
			engine.OnHost(h, engine.PingItem("ping@"+h, Ctr, Addr[other(h)], fmt.Sprintf("c1 on %s reaches c1 on %s (%s) across the LAN", h, other(h), Addr[other(h)]))),
		)
	}
	its = append(its,
		engine.OnHost(Host2, engine.Item{ID: "gw@" + Host2, Text: "c1 on docker02 has the network's gateway 172.29.0.254 as default route", Eval: gwItem}),
		engine.OnHost(Host2, engine.Item{ID: "nointernet@" + Host2, Text: "c1 on docker02, on macvlan alone, does not reach the internet (" + simhost.InternetAddr + ")", Eval: noInternet}),
		engine.OnHost(Host1, engine.Item{ID: "bridge", Text: "c1 on docker01 is on docker0 too (eth1 172.17.0.2/16), its default route via 172.17.0.1", Eval: bridgeItem}),
		engine.OnHost(Host1, engine.Item{ID: "internet", Text: "c1 on docker01 reaches the internet (" + simhost.InternetAddr + ") through docker0 and NAT", Eval: internetItem}),
		engine.OnHost(Host1, engine.Item{ID: "shim", Text: "docker01 reaches its own c1 (172.29.0.81) through a macvlan shim", Eval: shimItem}),
	)
	return its
}

func nsItem(p *engine.Probe) engine.Verdict {
	if p.HasNetns(Ctr) {
		return engine.Pass()
	}
	return engine.Miss("no /var/run/netns/c1 on "+p.Name(), "%s", netops.NetnsAdd(p.Host, Ctr).Cmd)
}

// child is c1's macvlan link, whatever its name.
func child(p *engine.Probe) (*netstate.NS, *netstate.Link) {
	st := p.NS(Ctr)
	if st == nil {
		return nil, nil
	}
	for i := range st.Links {
		if st.Links[i].Kind == "macvlan" {
			return st, &st.Links[i]
		}
	}
	return st, nil
}

func childItem(p *engine.Probe) engine.Verdict {
	st, l := child(p)
	if st == nil {
		return engine.Miss("c1 does not exist", "%s", netops.NetnsAdd(p.Host, Ctr).Cmd)
	}
	hostNS := p.NS("")
	eth0 := hostNS.Link(Parent)
	if l == nil {
		// The mistake of leaving the child where it was made.
		for _, hl := range hostNS.Links {
			if hl.Kind == "macvlan" && eth0 != nil && hl.Parent == eth0.Index && !hasAddr(hl, ShimAddr) {
				return engine.Miss(fmt.Sprintf("%s is a macvlan child of eth0, but it is still on %s, not in c1", hl.Name, p.Name()),
					"%s", netops.LinkSetNetns(p.Host, "", hl.Name, Ctr).Cmd)
			}
		}
		return engine.Miss("c1 has no macvlan interface", "%s && %s", netops.MacvlanAdd(p.Host, "", Parent, Tmp, Mode).Cmd, netops.LinkSetNetns(p.Host, "", Tmp, Ctr).Cmd)
	}
	if !l.ParentAway || eth0 == nil || l.Parent != eth0.Index {
		return engine.Miss(fmt.Sprintf("c1's %s is a macvlan, but not a child of %s's eth0", l.Name, p.Name()),
			"ip netns exec c1 ip link del %s && %s && %s", l.Name, netops.MacvlanAdd(p.Host, "", Parent, Tmp, Mode).Cmd, netops.LinkSetNetns(p.Host, "", Tmp, Ctr).Cmd)
	}
	if l.Mode != Mode {
		why := map[string]string{
			"private": "private children may not talk to any sibling, so the host's shim can never reach c1",
			"vepa":    "vepa sends even sibling traffic out to the switch, which would have to send it back (hairpin)",
		}[l.Mode]
		if why == "" {
			why = "Docker's macvlan driver makes bridge-mode children"
		}
		return engine.Miss(fmt.Sprintf("c1's %s is in mode %s: %s", l.Name, l.Mode, why), "%s", netops.MacvlanSetMode(p.Host, Ctr, l.Name, Mode).Cmd)
	}
	return engine.Pass()
}

func hasAddr(l netstate.Link, addr string) bool {
	for _, a := range l.Addrs {
		if strings.HasPrefix(a, addr+"/") {
			return true
		}
	}
	return false
}

func addrItem(p *engine.Probe) engine.Verdict {
	me, them := Addr[p.Name()], Addr[other(p.Name())]
	want := me + Prefix
	st, l := child(p)
	if st == nil || l == nil {
		return engine.Miss("c1 has no macvlan interface", "the items above first")
	}
	in := func(o op.Op) string { return o.Cmd }
	for _, a := range l.Addrs {
		switch {
		case a == want:
			if l.State == "DOWN" {
				return engine.Miss(l.Name+" is DOWN", "%s", in(netops.LinkUp(p.Host, Ctr, l.Name)))
			}
			return engine.Pass()
		case strings.HasPrefix(a, me+"/"):
			return engine.Miss(fmt.Sprintf("%s has %s: the subnet is 172.29.0.0/16, so the prefix is /16", l.Name, a),
				"%s && %s", in(netops.AddrDel(p.Host, Ctr, a, l.Name)), in(netops.AddrAdd(p.Host, Ctr, want, l.Name)))
		case strings.HasPrefix(a, them+"/"):
			return engine.Miss(fmt.Sprintf("%s has %s, c1's address on %s: two containers on one LAN would answer ARP for it", l.Name, a, other(p.Name())),
				"%s && %s", in(netops.AddrDel(p.Host, Ctr, a, l.Name)), in(netops.AddrAdd(p.Host, Ctr, want, l.Name)))
		}
	}
	found := "no address"
	if len(l.Addrs) > 0 {
		found = strings.Join(l.Addrs, " ")
	}
	return engine.Miss(fmt.Sprintf("%s has %s", l.Name, found), "%s", in(netops.AddrAdd(p.Host, Ctr, want, l.Name)))
}

func gwItem(p *engine.Probe) engine.Verdict {
	st := p.NS(Ctr)
	if st == nil {
		return engine.Miss("c1 does not exist", "%s", netops.NetnsAdd(p.Host, Ctr).Cmd)
	}
	if st.HasRoute("default via " + Gateway + " ") {
		return engine.Pass()
	}
	return engine.Miss(defaultRoute(st), "%s", netops.RouteAddDefault(p.Host, Ctr, Gateway).Cmd)
}

func defaultRoute(st *netstate.NS) string {
	for _, r := range st.Routes {
		if strings.HasPrefix(r, "default") {
			return "the default route is `" + r + "`"
		}
	}
	return "no default route"
}

func noInternet(p *engine.Probe) engine.Verdict {
	r, err := p.Ping(Ctr, simhost.InternetAddr)
	if err != nil {
		return engine.Miss(err.Error(), "%s", netops.NetnsAdd(p.Host, Ctr).Cmd)
	}
	if r.Reply {
		return engine.Miss("it answers: c1 on docker02 was given another way out than its macvlan", "")
	}
	return engine.Pass()
}

func bridgeItem(p *engine.Probe) engine.Verdict {
	br := p.NS("").Link(Bridge)
	if br == nil || br.Kind != "bridge" {
		return engine.Miss("docker01 has no bridge docker0", "%s && %s && %s", netops.BridgeAdd(p.Host, "", Bridge).Cmd,
			netops.AddrAdd(p.Host, "", BridgeIP+Prefix, Bridge).Cmd, netops.LinkUp(p.Host, "", Bridge).Cmd)
	}
	if !hasAddr(*br, BridgeIP) {
		return engine.Miss("docker0 has no 172.17.0.1", "%s", netops.AddrAdd(p.Host, "", BridgeIP+Prefix, Bridge).Cmd)
	}
	st := p.NS(Ctr)
	if st == nil {
		return engine.Miss("c1 does not exist", "%s", netops.NetnsAdd(p.Host, Ctr).Cmd)
	}
	var port *netstate.Link
	for i := range st.Links {
		if hasAddr(st.Links[i], Eth1Addr) {
			port = &st.Links[i]
		}
	}
	if port == nil {
		return engine.Miss("c1 has no interface with 172.17.0.2", "%s && %s && %s && %s", netops.VethAddInto(p.Host, "", VethHost, Eth1, Ctr).Cmd,
			netops.SetMaster(p.Host, "", VethHost, Bridge).Cmd, netops.AddrAdd(p.Host, Ctr, Eth1Addr+Prefix, Eth1).Cmd, netops.LinkUp(p.Host, Ctr, Eth1).Cmd)
	}
	if !st.HasRoute("default via " + BridgeIP + " ") {
		return engine.Miss(defaultRoute(st)+": replies to the internet would still go to 172.29.0.254, which does not exist",
			"%s", netops.RouteReplace(p.Host, Ctr, "default", BridgeIP, "").Cmd)
	}
	return engine.Pass()
}

func internetItem(p *engine.Probe) engine.Verdict {
	r, err := p.Ping(Ctr, simhost.InternetAddr)
	if err != nil {
		return engine.Miss(err.Error(), "%s", netops.NetnsAdd(p.Host, Ctr).Cmd)
	}
	if r.Reply {
		return engine.Pass()
	}
	found := fmt.Sprintf("`%s`: %s", netops.In(Ctr, "ping "+simhost.InternetAddr), r.Summary())
	if p.Sysctl("", "net.ipv4.ip_forward") != "1" {
		return engine.Miss(found+"; docker01 does not forward", "%s", netops.Sysctl(p.Host, "", "net.ipv4.ip_forward", "1").Cmd)
	}
	return engine.Miss(found+"; nothing translates 172.17.0.2 for the way back", "%s", iptables.Append(p.Host, "", masquerade).Cmd)
}

func shimItem(p *engine.Probe) engine.Verdict {
	r, err := p.Ping("", Addr[Host1])
	if err != nil {
		return engine.Miss(err.Error(), "")
	}
	if r.Reply {
		return engine.Pass()
	}
	shim := shimHint(p.Host)
	st := p.NS("")
	for _, rt := range st.Routes {
		dst, rest, _ := strings.Cut(rt, " ")
		if (dst == Addr[Host1]+"/32" || dst == Subnet) && strings.HasPrefix(rest, "dev "+Parent+" ") {
			dst = strings.TrimSuffix(dst, "/32") // as ip prints a host route
			return engine.Miss(fmt.Sprintf("docker01 sends to %s out of eth0 (`%s`): eth0 is c1's parent, and a parent never hears its own macvlan children", Addr[Host1], rt),
				"%s && %s", netops.RouteDel(p.Host, "", dst, "", Parent).Cmd, shim)
		}
	}
	return engine.Miss(fmt.Sprintf("`ping %s`: %s", Addr[Host1], r.Summary()), "%s", shim)
}

// shimHint is the shim as the ops that make it.
func shimHint(h *host.Host) string {
	return strings.Join([]string{
		netops.MacvlanAdd(h, "", Parent, Shim, Mode).Cmd,
		netops.AddrAdd(h, "", ShimAddr+"/32", Shim).Cmd,
		netops.LinkUp(h, "", Shim).Cmd,
		netops.RouteAdd(h, "", Addr[Host1], "", Shim).Cmd,
	}, " && ")
}
