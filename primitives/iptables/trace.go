package iptables

import (
	"net"
	"slices"
	"strconv"
	"strings"
)

// Packet is what Trace walks through a chain: the fields the lessons'
// rules match on, seen at that chain (in FORWARD, after DNAT).
type Packet struct {
	In, Out  string // interfaces; "" where the chain has none (no -i in OUTPUT)
	Src, Dst net.IP
	Proto    string // tcp, udp, icmp
	DPort    int
	State    string // conntrack state: NEW, ESTABLISHED, RELATED
	// Local tells addresses of the host itself (-m addrtype --dst-type LOCAL).
	Local func(net.IP) bool
}

// Verdict is where a packet ends up in a chain.
type Verdict struct {
	Target string   // ACCEPT, DROP, REJECT, DNAT, MASQUERADE, SNAT, ...
	Args   []string // the target's options, e.g. --to-destination 172.17.0.2:80
	Rule   *Line    // the rule that decided; nil when the chain's policy did
	Path   []string // chains walked, e.g. [PREROUTING DOCKER]
}

// Policy reports whether the chain's policy decided, not a rule.
func (v Verdict) Policy() bool { return v.Rule == nil }

// Opt returns a target option (--to-destination).
func (v Verdict) Opt(name string) string {
	for i := 0; i+1 < len(v.Args); i++ {
		if v.Args[i] == name {
			return v.Args[i+1]
		}
	}
	return ""
}

// terminal targets end the walk; others (LOG, MARK, ...) let it go on.
var terminal = map[string]bool{
	"ACCEPT": true, "DROP": true, "REJECT": true, "DNAT": true, "SNAT": true,
	"MASQUERADE": true, "REDIRECT": true, "NETMAP": true, "QUEUE": true, "NFQUEUE": true,
}

// Trace walks p through chain as the kernel would: rules in order, jumps
// into user chains and back, RETURN, and the built-in chain's policy when
// nothing decides. Only the matches the lessons use are understood (-s -d
// -i -o -p --dport --sport --dports, conntrack/state, addrtype LOCAL,
// comment); a rule with any other match is taken not to match.
func (t *Table) Trace(chain string, p Packet) Verdict {
	type frame struct {
		chain string
		next  int
	}
	stack := []frame{{chain, 0}}
	var path []string
	path = append(path, chain)
	for steps := 0; len(stack) > 0 && steps < 10000; steps++ {
		f := &stack[len(stack)-1]
		rules := t.Chain(f.chain)
		if f.next >= len(rules) {
			// Falling off the end: a user chain returns, a built-in one
			// applies its policy.
			if len(stack) == 1 {
				pol := t.Policies[f.chain]
				if pol == "" {
					pol = "ACCEPT"
				}
				return Verdict{Target: pol, Path: path}
			}
			stack = stack[:len(stack)-1]
			continue
		}
		l := rules[f.next]
		f.next++
		if !l.matches(p) {
			continue
		}
		target, args := l.Target()
		switch {
		case target == "":
			// No target: a counting rule.
		case target == "RETURN":
			if len(stack) == 1 {
				pol := t.Policies[f.chain]
				if pol == "" {
					pol = "ACCEPT"
				}
				return Verdict{Target: pol, Path: path}
			}
			stack = stack[:len(stack)-1]
		case terminal[target]:
			ll := l
			return Verdict{Target: target, Args: args, Rule: &ll, Path: path}
		case t.HasChain(target):
			path = append(path, target)
			if l.Goto() {
				stack[len(stack)-1] = frame{target, 0}
			} else {
				stack = append(stack, frame{target, 0})
			}
		}
	}
	return Verdict{Target: "ACCEPT", Path: path}
}

// matches reports whether p matches every match of the rule.
func (l Line) matches(p Packet) bool {
	a := l.Args
	neg := false
	for i := 0; i < len(a); i++ {
		w := a[i]
		if w == "!" {
			neg = true
			continue
		}
		if w == "-j" || w == "-g" || w == "--jump" || w == "--goto" {
			return true
		}
		if i+1 >= len(a) {
			return false
		}
		v := a[i+1]
		var ok bool
		switch w {
		case "-m", "--match":
			i++
			continue // a module only makes its options known
		case "--comment":
			i++
			neg = false
			continue
		case "-s", "--source":
			ok = inNet(p.Src, v)
		case "-d", "--destination":
			ok = inNet(p.Dst, v)
		case "-i", "--in-interface":
			ok = ifMatch(p.In, v)
		case "-o", "--out-interface":
			ok = ifMatch(p.Out, v)
		case "-p", "--protocol":
			ok = protoMatch(p.Proto, v)
		case "--dport", "--destination-port":
			ok = portIn(p.DPort, v)
		case "--dports", "--destination-ports":
			ok = false
			for _, r := range strings.Split(v, ",") {
				ok = ok || portIn(p.DPort, r)
			}
		case "--ctstate", "--state":
			ok = slices.Contains(strings.Split(v, ","), p.State)
		case "--dst-type":
			ok = slices.Contains(strings.Split(v, ","), "LOCAL") && p.Local != nil && p.Local(p.Dst)
		case "--src-type":
			ok = slices.Contains(strings.Split(v, ","), "LOCAL") && p.Local != nil && p.Local(p.Src)
		default:
			return false // a match Trace does not know
		}
		if ok == neg {
			return false
		}
		neg = false
		i++
	}
	return true
}

func inNet(ip net.IP, cidr string) bool {
	if ip == nil {
		return false
	}
	if !strings.Contains(cidr, "/") {
		cidr += "/32"
	}
	_, n, err := net.ParseCIDR(cidr)
	return err == nil && n.Contains(ip)
}

// ifMatch: iptables' `docker+` matches every name starting with docker.
func ifMatch(name, pat string) bool {
	if strings.HasSuffix(pat, "+") {
		return name != "" && strings.HasPrefix(name, strings.TrimSuffix(pat, "+"))
	}
	return name == pat
}

func protoMatch(proto, v string) bool {
	switch v {
	case "all", "0":
		return true
	case "6":
		v = "tcp"
	case "17":
		v = "udp"
	case "1":
		v = "icmp"
	}
	return proto == v
}

// portIn: a port or a range LO:HI.
func portIn(port int, v string) bool {
	lo, hi, isRange := strings.Cut(v, ":")
	a, err := strconv.Atoi(lo)
	if err != nil {
		return false
	}
	b := a
	if isRange {
		if b, err = strconv.Atoi(hi); err != nil {
			return false
		}
	}
	return port >= a && port <= b
}
