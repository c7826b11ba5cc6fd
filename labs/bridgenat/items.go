package bridgenat

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/primitives/httpd"
	"github.com/containers-underneath/lab/primitives/iptables"
	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/simhost"
	"golang.org/x/sys/unix"
)

// The commands a student types for each fix: Docker's rules, untagged.
var (
	masqCmd       = "iptables -t nat -A POSTROUTING -s " + Subnet + " ! -o " + Bridge + " -j MASQUERADE"
	fwdOutCmd     = "iptables -A FORWARD -i " + Bridge + " ! -o " + Bridge + " -j ACCEPT"
	fwdRepliesCmd = "iptables -A FORWARD -o " + Bridge + " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
	fwdInnerCmd   = "iptables -A FORWARD -i " + Bridge + " -o " + Bridge + " -j ACCEPT"
	serverCmd     = "ip netns exec " + C1.Name + " lab tool httpd --listen :80 --detach"
)

// CheckHTTPTimeout bounds the check's HTTP request: between namespaces on
// one machine an answer takes milliseconds.
const CheckHTTPTimeout = 500 * time.Millisecond

// items are the graded self-check. Each mistake the issue lists has its
// own item or its own hint within one: veth not on docker0, no default
// route, ip_forward off, MASQUERADE missing / on the wrong subnet /
// without `! -o docker0`, DNAT to the wrong address or port, FORWARD
// blocking the mapped port.
func items(env *engine.Env) []engine.Item {
	its := []engine.Item{bridgeItem()}
	for _, c := range []Container{C1, C2} {
		its = append(its, nsItem(c), portItem(c), addrItem(c), routeItem(c))
	}
	its = append(its,
		engine.PingItem("ping12", C1.Name, C2.Addr, "c1 reaches c2 (172.17.0.3) across docker0"),
		engine.PingItem("pinghost", "", C1.Addr, env.Lesson.Main+" reaches c1 (172.17.0.2)"),
		forwardItem(),
		masqItem(),
		fwdOutItem(),
		outboundItem(),
		httpdItem(),
		dnatItem(),
		fwdItem(),
		httpItem(),
		outputItem(),
		publishAllItem(),
	)
	return its
}

func bridgeItem() engine.Item {
	return engine.Item{ID: "bridge", Text: "docker0 is a bridge with 172.17.0.1/16, up", Eval: func(p *engine.Probe) engine.Verdict {
		st := p.NS("")
		if st == nil {
			return engine.Miss("cannot read the host's network state", "")
		}
		l := st.Link(Bridge)
		switch {
		case l == nil:
			return engine.Miss("no docker0", "ip link add %s type bridge", Bridge)
		case l.Kind != "bridge":
			return engine.Miss("docker0 is a "+l.Kind+", not a bridge", "ip link del %s && ip link add %s type bridge", Bridge, Bridge)
		case !slices.Contains(l.Addrs, BridgeIP+Prefix):
			found := "docker0 has no address"
			if len(l.Addrs) > 0 {
				found = "docker0 has " + strings.Join(l.Addrs, " ")
			}
			return engine.Miss(found, "ip addr add %s dev %s", BridgeIP+Prefix, Bridge)
		case l.State == "DOWN":
			return engine.Miss("docker0 is DOWN", "ip link set %s up", Bridge)
		}
		return engine.Pass()
	}}
}

func nsItem(c Container) engine.Item {
	return engine.Item{ID: c.Name + "ns", Text: "namespace " + c.Name + " exists", Eval: func(p *engine.Probe) engine.Verdict {
		if p.HasNetns(c.Name) {
			return engine.Pass()
		}
		return engine.Miss("no /var/run/netns/"+c.Name, "ip netns add %s", c.Name)
	}}
}

// portItem: the container's eth0 is a veth whose other end is a port of
// docker0, up. The host end may have any name: it is found by its peer.
func portItem(c Container) engine.Item {
	return engine.Item{ID: c.Name + "port", Text: c.Name + "'s eth0 is cabled to a port of docker0", Eval: func(p *engine.Probe) engine.Verdict {
		st := p.NS(c.Name)
		if st == nil {
			return engine.Miss(c.Name+" does not exist", "ip netns add %s", c.Name)
		}
		if st.Link("eth0") == nil {
			return engine.Miss("no eth0 in "+c.Name, "ip link add %s type veth peer name eth0 netns %s", c.Veth, c.Name)
		}
		end, err := hostEndOf(p, c.Name)
		if err != nil {
			return engine.Miss(err.Error(), "")
		}
		if end == nil {
			return engine.Miss(c.Name+"'s eth0 is not a veth whose other end is on "+p.Host.Name,
				"ip netns exec %s ip link del eth0 && ip link add %s type veth peer name eth0 netns %s", c.Name, c.Veth, c.Name)
		}
		if end.Master != Bridge {
			return engine.Miss(fmt.Sprintf("%s, the other end of %s's eth0, is not a port of docker0: %s's frames reach no bridge", end.Name, c.Name, c.Name),
				"ip link set %s master %s", end.Name, Bridge)
		}
		if !end.Up {
			return engine.Miss(end.Name+" is DOWN, so the port carries nothing", "ip link set %s up", end.Name)
		}
		return engine.Pass()
	}}
}

// hostEnd is the docker01 end of a container's eth0.
type hostEnd struct {
	Name   string `json:"name"`
	Master string `json:"master,omitempty"`
	Up     bool   `json:"up"`
}

// hostEndOf finds, through the probe (so `lab grade` can replay it), the
// veth on the host that is cabled to eth0 in ns; nil if there is none.
func hostEndOf(p *engine.Probe, ns string) (*hostEnd, error) {
	return engine.ObserveJSON(p, "veth peer of "+ns+" eth0", func() (*hostEnd, error) {
		a, err := netops.VethHostEnd(p.Host, ns, "eth0")
		if err != nil || a == nil {
			return nil, err
		}
		e := &hostEnd{Name: a.Name, Up: a.RawFlags&unix.IFF_UP != 0}
		if a.MasterIndex != 0 {
			hd, err := p.Host.Handle("")
			if err != nil {
				return nil, err
			}
			defer hd.Close()
			if m, err := hd.LinkByIndex(a.MasterIndex); err == nil {
				e.Master = m.Attrs().Name
			}
		}
		return e, nil
	})
}

func addrItem(c Container) engine.Item {
	want := c.Addr + Prefix
	return engine.Item{ID: c.Name + "addr", Text: fmt.Sprintf("%s's eth0 has %s and is up", c.Name, want), Eval: func(p *engine.Probe) engine.Verdict {
		st := p.NS(c.Name)
		if st == nil || st.Link("eth0") == nil {
			return engine.Miss("no eth0 in "+c.Name, "the items above first")
		}
		l := st.Link("eth0")
		if !slices.Contains(l.Addrs, want) {
			for _, a := range l.Addrs {
				if strings.HasPrefix(a, c.Addr+"/") {
					return engine.Miss(fmt.Sprintf("eth0 has %s: with the wrong prefix, 172.17.0.1 is not on-link", a),
						"ip netns exec %s ip addr del %s dev eth0 && ip netns exec %s ip addr add %s dev eth0", c.Name, a, c.Name, want)
				}
			}
			found := "eth0 has no address"
			if len(l.Addrs) > 0 {
				found = "eth0 has " + strings.Join(l.Addrs, " ")
			}
			return engine.Miss(found, "ip netns exec %s ip addr add %s dev eth0", c.Name, want)
		}
		if l.State == "DOWN" {
			return engine.Miss("eth0 is DOWN", "ip netns exec %s ip link set eth0 up", c.Name)
		}
		if lo := st.Link("lo"); lo != nil && lo.State == "DOWN" {
			return engine.Miss("lo is DOWN in "+c.Name, "ip netns exec %s ip link set lo up", c.Name)
		}
		return engine.Pass()
	}}
}

func routeItem(c Container) engine.Item {
	return engine.Item{ID: c.Name + "route", Text: c.Name + " has a default route via 172.17.0.1", Eval: func(p *engine.Probe) engine.Verdict {
		st := p.NS(c.Name)
		if st == nil {
			return engine.Miss(c.Name+" does not exist", "ip netns add %s", c.Name)
		}
		if st.HasRoute("default via " + BridgeIP + " ") {
			return engine.Pass()
		}
		found := c.Name + " has no default route: it reaches 172.17.0.0/16 and nothing else"
		for _, r := range st.Routes {
			if strings.HasPrefix(r, "default") {
				found = "the default route is `" + r + "`"
			}
		}
		return engine.Miss(found, "ip netns exec %s ip route add default via %s", c.Name, BridgeIP)
	}}
}

func forwardItem() engine.Item {
	return engine.Item{ID: "forward", Text: "docker01 forwards packets (net.ipv4.ip_forward = 1)", Eval: func(p *engine.Probe) engine.Verdict {
		if v := p.Sysctl("", "net.ipv4.ip_forward"); v != "1" {
			return engine.Miss("net.ipv4.ip_forward = "+v+": packets from the containers stop at docker0", "sysctl -w net.ipv4.ip_forward=1")
		}
		return engine.Pass()
	}}
}

// table reads a table of the host as `iptables -t NAME -S` prints it,
// through the probe.
func table(p *engine.Probe, name string) (*iptables.Table, error) {
	text, err := p.Observe("iptables -t "+name+" -S", func() (string, error) {
		out, _, err := iptables.Run(p.Host.NetnsPath(""), "iptables", "-t", name, "-S")
		return out, err
	})
	if err != nil {
		return nil, err
	}
	return iptables.Parse(name, text)
}

// portRange is net.ipv4.ip_local_port_range on the host.
func portRange(p *engine.Probe) (lo, hi int, err error) {
	v := p.Sysctl("", "net.ipv4.ip_local_port_range")
	f := strings.Fields(v)
	if len(f) == 2 {
		lo, err1 := strconv.Atoi(f[0])
		hi, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil {
			return lo, hi, nil
		}
	}
	return 0, 0, fmt.Errorf("cannot read net.ipv4.ip_local_port_range (%q)", v)
}

func ip(s string) net.IP { return net.ParseIP(s) }

// localTo returns the addresses of the host itself, for addrtype LOCAL.
func localTo(p *engine.Probe) func(net.IP) bool {
	var own []net.IP
	if st := p.NS(""); st != nil {
		for _, l := range st.Links {
			for _, a := range l.Addrs {
				if x, _, err := net.ParseCIDR(a); err == nil {
					own = append(own, x)
				}
			}
		}
	}
	return func(x net.IP) bool {
		if x.IsLoopback() {
			return true
		}
		return slices.ContainsFunc(own, x.Equal)
	}
}

func isSNAT(target string) bool { return target == "MASQUERADE" || target == "SNAT" }

// masqItem walks two packets through nat POSTROUTING: c1 to the internet
// must be masqueraded; c1 to c2 across docker0 must not.
func masqItem() engine.Item {
	return engine.Item{ID: "masq", Text: "docker01 masquerades 172.17.0.0/16 leaving by any interface but docker0", Eval: func(p *engine.Probe) engine.Verdict {
		nat, err := table(p, "nat")
		if err != nil {
			return engine.Miss(err.Error(), "")
		}
		out := iptables.Packet{In: Bridge, Out: "eth0", Src: ip(C1.Addr), Dst: ip(simhost.InternetAddr), Proto: "icmp", State: "NEW"}
		v := nat.Trace("POSTROUTING", out)
		if isSNAT(v.Target) {
			across := iptables.Packet{In: Bridge, Out: Bridge, Src: ip(C1.Addr), Dst: ip(C2.Addr), Proto: "icmp", State: "NEW"}
			if w := nat.Trace("POSTROUTING", across); isSNAT(w.Target) && w.Rule != nil {
				return engine.Miss(fmt.Sprintf("`%s` has no `! -o docker0`: traffic between containers on docker0 is masqueraded too, so c2 sees c1's packets come from 172.17.0.1", w.Rule.Text),
					"%s && %s", w.Rule.Command("nat", "-D"), masqCmd)
			}
			return engine.Pass()
		}
		for _, l := range nat.Chain("POSTROUTING") {
			if t, _ := l.Target(); isSNAT(t) {
				return engine.Miss(fmt.Sprintf("`%s` does not match c1's 172.17.0.2 going out: the containers' packets leave with a private source nobody outside can answer", l.Text),
					"%s && %s", l.Command("nat", "-D"), masqCmd)
			}
		}
		return engine.Miss("no MASQUERADE rule in nat POSTROUTING: the containers' packets leave with a private source nobody outside can answer", "%s", masqCmd)
	}}
}

// blocked explains a FORWARD verdict that is not ACCEPT, with its fix.
func blocked(v iptables.Verdict, what, add string) engine.Verdict {
	if v.Rule != nil {
		return engine.Miss(fmt.Sprintf("`%s` %ss %s", v.Rule.Text, strings.ToLower(v.Target), what), "%s", v.Rule.Command("filter", "-D"))
	}
	return engine.Miss(fmt.Sprintf("FORWARD's policy is %s and no rule accepts %s", v.Target, what), "%s", add)
}

// fwdOutItem: FORWARD lets the containers' connections out, their replies
// back, and (when the bridge hands frames to iptables, br_netfilter)
// traffic between containers through.
func fwdOutItem() engine.Item {
	return engine.Item{ID: "fwdout", Text: "FORWARD lets the containers' traffic out and its replies back in", Eval: func(p *engine.Probe) engine.Verdict {
		filter, err := table(p, "filter")
		if err != nil {
			return engine.Miss(err.Error(), "")
		}
		c1, inet := ip(C1.Addr), ip(simhost.InternetAddr)
		if v := filter.Trace("FORWARD", iptables.Packet{In: Bridge, Out: "eth0", Src: c1, Dst: inet, Proto: "icmp", State: "NEW"}); v.Target != "ACCEPT" {
			return blocked(v, "c1's new connections to the internet", fwdOutCmd)
		}
		if v := filter.Trace("FORWARD", iptables.Packet{In: "eth0", Out: Bridge, Src: inet, Dst: c1, Proto: "icmp", State: "ESTABLISHED"}); v.Target != "ACCEPT" {
			return blocked(v, "the replies to c1's connections", fwdRepliesCmd)
		}
		if p.Sysctl("", "net.bridge.bridge-nf-call-iptables") == "1" {
			if v := filter.Trace("FORWARD", iptables.Packet{In: Bridge, Out: Bridge, Src: c1, Dst: ip(C2.Addr), Proto: "icmp", State: "NEW"}); v.Target != "ACCEPT" {
				return blocked(v, "traffic between c1 and c2 (the bridge passes it to iptables: bridge-nf-call-iptables = 1)", fwdInnerCmd)
			}
		}
		return engine.Pass()
	}}
}

func outboundItem() engine.Item {
	return engine.Item{ID: "outbound", Text: "c1 reaches the internet (" + simhost.InternetAddr + ") through docker01", Eval: func(p *engine.Probe) engine.Verdict {
		if p.Env.OnMachine {
			return engine.Verdict{Skip: "the self-check sends no traffic off this machine"}
		}
		if !p.HasNetns(C1.Name) {
			return engine.Miss("c1 does not exist", "ip netns add %s", C1.Name)
		}
		r, err := p.Ping(C1.Name, simhost.InternetAddr)
		if err != nil {
			return engine.Miss(err.Error(), "")
		}
		if r.Reply {
			return engine.Pass()
		}
		return engine.Miss("`ip netns exec c1 ping "+simhost.InternetAddr+"`: "+r.Summary(), "fix the failing items above (route, ip_forward, MASQUERADE, FORWARD); this ping then answers")
	}}
}

// httpdItem: something listens on port 80 in c1 where a connection to
// 172.17.0.2 finds it, whatever the server (the lab's, python3 -m
// http.server on [::], busybox httpd, nc): read from the kernel's socket
// table, not asked of the server.
func httpdItem() engine.Item {
	return engine.Item{ID: "httpd", Text: "a web server listens on port 80 in c1", Eval: func(p *engine.Probe) engine.Verdict {
		if !p.HasNetns(C1.Name) {
			return engine.Miss("c1 does not exist", "ip netns add %s", C1.Name)
		}
		// A server that takes one connection at a time (an nc loop)
		// listens again a few milliseconds after each: the http item's
		// request, made at the same moment, must not make this one fail.
		addrs, err := engine.ObserveJSON(p, "tcp listeners c1 :80", func() ([]string, error) {
			deadline := time.Now().Add(CheckHTTPTimeout)
			for {
				cs, err := httpd.Conns(p.Host.NetnsPath(C1.Name))
				var out []string
				for _, c := range cs {
					if c.State == "LISTEN" && c.Local.Port() == 80 {
						out = append(out, c.Local.Addr().String())
					}
				}
				if len(out) > 0 || err != nil || time.Now().After(deadline) {
					return out, err
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
		if err != nil {
			return engine.Miss(err.Error(), "")
		}
		if len(addrs) == 0 {
			return engine.Miss("nothing listens on port 80 in c1", "%s", serverCmd)
		}
		for _, a := range addrs {
			if a == "0.0.0.0" || a == "::" || a == C1.Addr {
				return engine.Pass()
			}
		}
		return engine.Miss(fmt.Sprintf("c1 listens on port 80 only at %s: a connection to %s finds nobody", strings.Join(addrs, " "), C1.Addr), "%s", serverCmd)
	}}
}

// hostAddr is the main host's own address (10.0.0.81 on docker01).
func hostAddr(p *engine.Probe) string { return p.Env.MainAddr }

func dnatCmd(chain, port string) string {
	return fmt.Sprintf("iptables -t nat -A %s ! -i %s -p tcp --dport %s -j DNAT --to-destination %s", chain, Bridge, port, Target)
}

// dnatRules lists the nat rules that DNAT a --dport.
func dnatRules(nat *iptables.Table) []iptables.Line {
	var out []iptables.Line
	for _, l := range nat.Rules {
		if t, _ := l.Target(); t == "DNAT" {
			if _, _, ok := l.Opt("--dport"); ok {
				out = append(out, l)
			}
		}
	}
	return out
}

// dnatItem walks a connection from the internet to 10.0.0.81:8000 through
// nat PREROUTING: it must come out as DNAT to 172.17.0.2:80.
func dnatItem() engine.Item {
	return engine.Item{ID: "dnat", Text: "a connection from outside to port 8000 of docker01 is DNATed to 172.17.0.2:80", Eval: func(p *engine.Probe) engine.Verdict {
		addr := hostAddr(p)
		if addr == "" {
			return engine.Verdict{Skip: "this machine has no global IPv4 address to map"}
		}
		nat, err := table(p, "nat")
		if err != nil {
			return engine.Miss(err.Error(), "")
		}
		pk := iptables.Packet{In: "eth0", Src: ip(simhost.InternetAddr), Dst: ip(addr), Proto: "tcp", DPort: 8000, State: "NEW", Local: localTo(p)}
		v := nat.Trace("PREROUTING", pk)
		if v.Target == "DNAT" && v.Rule != nil {
			to := v.Opt("--to-destination")
			if to == Target {
				return engine.Pass()
			}
			fix := v.Rule.Command("nat", "-D") + " && " + dnatCmd(v.Rule.Chain, HostPort)
			toIP, toPort, _ := strings.Cut(to, ":")
			if toIP != C1.Addr {
				return engine.Miss(fmt.Sprintf("`%s` sends it to %s, but the server runs in c1, at %s", v.Rule.Text, to, C1.Addr), "%s", fix)
			}
			if toPort == "" {
				toPort = "8000 (unchanged)"
			}
			return engine.Miss(fmt.Sprintf("`%s` sends it to port %s of c1, but the server listens on port 80: -p 8000:80 is host port 8000, container port 80", v.Rule.Text, toPort), "%s", fix)
		}
		for _, l := range dnatRules(nat) {
			if port, _, _ := l.Opt("--dport"); port == HostPort {
				if l.Chain != "PREROUTING" {
					return engine.Miss(fmt.Sprintf("`%s` is in chain %s, but nat PREROUTING does not send the connection there", l.Text, l.Chain),
						"iptables -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j %s", l.Chain)
				}
				return engine.Miss(fmt.Sprintf("`%s` does not match a connection from %s on eth0 to %s:8000", l.Text, simhost.InternetAddr, addr), "%s", dnatCmd("PREROUTING", HostPort))
			}
		}
		lo, hi, _ := portRange(p)
		for _, l := range dnatRules(nat) {
			if t, args := l.Target(); t == "DNAT" && slices.Contains(args, Target) {
				port, _, _ := l.Opt("--dport")
				if n, err := strconv.Atoi(port); err == nil && n >= lo && n <= hi {
					continue // the -P mapping
				}
				return engine.Miss(fmt.Sprintf("`%s` maps host port %s, not 8000", l.Text, port), "%s && %s", l.Command("nat", "-D"), dnatCmd(l.Chain, HostPort))
			}
		}
		chain := "DOCKER"
		hint := "iptables -t nat -N DOCKER && iptables -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER && " + dnatCmd(chain, HostPort)
		if nat.HasChain(chain) {
			hint = dnatCmd(chain, HostPort)
		}
		return engine.Miss("no DNAT rule for port 8000", "%s", hint)
	}}
}

// fwdItem walks the translated connection (to 172.17.0.2:80: FORWARD sees
// it after DNAT) through the filter FORWARD chain.
func fwdItem() engine.Item {
	return engine.Item{ID: "fwd", Text: "FORWARD lets new connections from outside to 172.17.0.2:80 through", Eval: func(p *engine.Probe) engine.Verdict {
		filter, err := table(p, "filter")
		if err != nil {
			return engine.Miss(err.Error(), "")
		}
		pk := iptables.Packet{In: "eth0", Out: Bridge, Src: ip(simhost.InternetAddr), Dst: ip(C1.Addr), Proto: "tcp", DPort: 80, State: "NEW"}
		v := filter.Trace("FORWARD", pk)
		if v.Target == "ACCEPT" {
			return engine.Pass()
		}
		chain := "FORWARD"
		for _, l := range filter.Chain("FORWARD") {
			if t, _ := l.Target(); t == "DOCKER" && filter.HasChain("DOCKER") {
				chain = "DOCKER"
			}
		}
		add := fmt.Sprintf("iptables -A %s -d %s/32 ! -i %s -o %s -p tcp --dport %s -j ACCEPT", chain, C1.Addr, Bridge, Bridge, CtrPort)
		r := blocked(v, "new connections to 172.17.0.2:80", add)
		if v.Rule == nil {
			// The classic slip: accepting the port the client dialled.
			for _, l := range filter.Rules {
				port, _, ok := l.Opt("--dport")
				if t, _ := l.Target(); ok && t == "ACCEPT" && port == HostPort {
					r.Found += fmt.Sprintf("; `%s` accepts port 8000, but FORWARD sees the packet after DNAT: to 172.17.0.2, port 80", l.Text)
				}
			}
		}
		return r
	}}
}

// landing is what the check's request came to: the answer (summarised,
// never its body) and where the server's end of the connection was found.
type landing struct {
	Answer httpd.Answer `json:"answer"`
	Where  string       `json:"where,omitempty"` // "c1 172.17.0.2:80", "" when nowhere
	InC1   bool         `json:"in_c1"`
}

// land asks url from the internet host and, while the connection is open,
// finds its other end in the sockets of c1, c2 and docker01 itself: the
// socket whose remote end is the client's (DNAT leaves the source alone),
// else one from the client's port (a source rewritten on the way in).
func land(p *engine.Probe, url string) (landing, error) {
	var l landing
	places := []struct{ name, ns string }{{C1.Name, C1.Name}, {C2.Name, C2.Name}, {p.Env.Lesson.Main, ""}}
	a, err := httpd.Ask(p.Env.Host(Internet).NetnsPath(""), url, CheckHTTPTimeout, func(client netip.AddrPort) error {
		for _, pl := range places {
			cs, err := httpd.Conns(p.Host.NetnsPath(pl.ns))
			if err != nil {
				continue // c2 may not exist
			}
			for _, c := range cs {
				if c.State == "LISTEN" || c.Remote.Port() != client.Port() {
					continue
				}
				inC1 := pl.ns == C1.Name && c.Local.String() == Target
				if c.Remote == client {
					l.Where, l.InC1 = pl.name+" "+c.Local.String(), inC1
					return nil
				}
				if l.Where == "" {
					l.Where, l.InC1 = pl.name+" "+c.Local.String()+" (from "+c.Remote.String()+")", inC1
				}
			}
		}
		return nil
	})
	l.Answer = a
	return l, err
}

func httpItem() engine.Item {
	return engine.Item{ID: "http", Text: "the internet host gets an answer from port 8000 of docker01, served at 172.17.0.2:80 in c1", Eval: func(p *engine.Probe) engine.Verdict {
		if p.Env.OnMachine {
			return engine.Verdict{Skip: "the self-check sends no traffic off this machine"}
		}
		url := "http://" + hostAddr(p) + ":" + HostPort + "/"
		l, err := engine.ObserveJSON(p, "http GET "+url+" from "+Internet+", landed", func() (landing, error) { return land(p, url) })
		if err != nil {
			return engine.Miss(fmt.Sprintf("`curl %s` on the internet host: %v", url, err), "fix the failing items above (httpd, dnat, fwd); this request then gets its answer")
		}
		if l.InC1 {
			return engine.Pass()
		}
		if l.Where == "" {
			return engine.Miss(fmt.Sprintf("an answer came (%s), but no socket in c1, c2 or on %s holds the connection: it was not served at c1's %s", l.Answer.Summary(), p.Env.Lesson.Main, Target), "")
		}
		return engine.Miss(fmt.Sprintf("the connection was served at %s, not at c1's %s (answer: %s)", l.Where, Target, l.Answer.Summary()), "")
	}}
}

// outputItem: docker01's own connections to its address are translated
// in nat OUTPUT, which PREROUTING never sees.
func outputItem() engine.Item {
	return engine.Item{ID: "outputjump", Text: "docker01's own connections to its port 8000 are DNATed too (nat OUTPUT)", Eval: func(p *engine.Probe) engine.Verdict {
		addr := hostAddr(p)
		if addr == "" {
			return engine.Verdict{Skip: "this machine has no global IPv4 address to map"}
		}
		nat, err := table(p, "nat")
		if err != nil {
			return engine.Miss(err.Error(), "")
		}
		pk := iptables.Packet{Src: ip(addr), Dst: ip(addr), Proto: "tcp", DPort: 8000, State: "NEW", Local: localTo(p)}
		if v := nat.Trace("OUTPUT", pk); v.Target == "DNAT" && v.Opt("--to-destination") == Target {
			return engine.Pass()
		}
		if nat.HasChain("DOCKER") {
			return engine.Miss("nat OUTPUT does not send docker01's own connections to DOCKER", "iptables -t nat -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER")
		}
		return engine.Miss("nothing in nat OUTPUT translates docker01's own connections to port 8000", "iptables -t nat -A OUTPUT -d %s -p tcp --dport %s -j DNAT --to-destination %s", addr, HostPort, Target)
	}}
}

// publishAllItem: -P's mapping, from a port of the ephemeral range.
func publishAllItem() engine.Item {
	return engine.Item{ID: "publishall", Text: "a port from the ephemeral range is mapped to 172.17.0.2:80 too (-P)", Eval: func(p *engine.Probe) engine.Verdict {
		lo, hi, err := portRange(p)
		if err != nil {
			return engine.Miss(err.Error(), "")
		}
		nat, err := table(p, "nat")
		if err != nil {
			return engine.Miss(err.Error(), "")
		}
		addr := hostAddr(p)
		for _, l := range dnatRules(nat) {
			v, _, _ := l.Opt("--dport")
			port, err := strconv.Atoi(v)
			if _, args := l.Target(); err != nil || port < lo || port > hi || !slices.Contains(args, Target) {
				continue
			}
			if addr == "" {
				return engine.Pass()
			}
			pk := iptables.Packet{In: "eth0", Src: ip(simhost.InternetAddr), Dst: ip(addr), Proto: "tcp", DPort: port, State: "NEW", Local: localTo(p)}
			if w := nat.Trace("PREROUTING", pk); w.Target == "DNAT" && w.Opt("--to-destination") == Target {
				return engine.Pass()
			}
			return engine.Miss(fmt.Sprintf("`%s` is never reached from outside", l.Text), "iptables -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j %s", l.Chain)
		}
		// Docker's chain where there is one; a network made otherwise (CNI's
		// portmap keeps its own chains) gets a rule PREROUTING reaches.
		chain := "PREROUTING"
		if nat.HasChain("DOCKER") {
			chain = "DOCKER"
		}
		return engine.Miss(fmt.Sprintf("no DNAT to %s from a port in %d-%d", Target, lo, hi),
			`HOSTPORT=$(lab tool free-port) && %s`, dnatCmd(chain, `"$HOSTPORT"`))
	}}
}
