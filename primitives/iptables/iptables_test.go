package iptables

import (
	"net"
	"strings"
	"testing"
)

func TestCommandRendering(t *testing.T) {
	r := R("nat", "POSTROUTING", "-s", "172.17.0.0/16", "!", "-o", "docker0", "-j", "MASQUERADE").Tagged("lab:bridge-nat")
	want := "iptables -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -m comment --comment lab:bridge-nat -j MASQUERADE"
	if got := r.Command("-A"); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	f := R("filter", "FORWARD", "-m", "comment", "--comment", "two words", "-j", "ACCEPT")
	if got := f.Command("-D"); got != "iptables -D FORWARD -m comment --comment 'two words' -j ACCEPT" {
		t.Errorf("filter table or quoting: %s", got)
	}
	v := R("nat", "DOCKER", "-p", "tcp", "--dport", "$HOSTPORT", "-j", "DNAT", "--to-destination", "172.17.0.2:80")
	if got := v.Command("-A"); !strings.Contains(got, `--dport "$HOSTPORT" -j DNAT`) {
		t.Errorf("a shell variable must stay expandable: %s", got)
	}
	if got := v.With("$HOSTPORT", "32768").Spec[3]; got != "32768" {
		t.Errorf("With: %s", got)
	}
	if v.Spec[3] != "$HOSTPORT" {
		t.Error("With changed the original rule")
	}
	// A rule without a target gets its comment at the end.
	if got := R("filter", "INPUT", "-p", "tcp").Tagged("x").Spec; strings.Join(got, " ") != "-p tcp -m comment --comment x" {
		t.Errorf("untargeted: %v", got)
	}
}

const natS = `-P PREROUTING ACCEPT
-P INPUT ACCEPT
-P OUTPUT ACCEPT
-P POSTROUTING ACCEPT
-N DOCKER
-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment "lab:bridge-nat" -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -m comment --comment "lab:bridge-nat" -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -m comment --comment "lab:bridge-nat" -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8000 -m comment --comment "say \"hi\" there" -j DNAT --to-destination 172.17.0.2:80
`

func TestParse(t *testing.T) {
	tb, err := Parse("nat", natS)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Rules) != 5 || !tb.HasChain("DOCKER") || tb.Policies["POSTROUTING"] != "ACCEPT" {
		t.Fatalf("parsed %+v", tb)
	}
	d := tb.Chain("DOCKER")[1]
	if got := d.Comment(); got != `say "hi" there` {
		t.Errorf("comment with quotes: %q", got)
	}
	if tgt, args := d.Target(); tgt != "DNAT" || strings.Join(args, " ") != "--to-destination 172.17.0.2:80" {
		t.Errorf("target %s %v", tgt, args)
	}
	if v, neg, ok := d.Opt("-i"); !ok || !neg || v != "docker0" {
		t.Errorf("Opt(-i) = %s %v %v", v, neg, ok)
	}
	if got := strings.Join(tb.Lines("DOCKER"), "\n"); !strings.HasPrefix(got, "-N DOCKER\n-A DOCKER -i docker0 -j RETURN") {
		t.Errorf("lines: %s", got)
	}
	if _, err := Parse("nat", "-A X -m comment --comment \"open\n"); err == nil {
		t.Error("an unterminated quote parsed")
	}
	if _, err := Parse("nat", "COMMIT\n"); err == nil {
		t.Error("iptables-save syntax is not -S output")
	}
}

func local(ips ...string) func(net.IP) bool {
	return func(ip net.IP) bool {
		for _, s := range ips {
			if net.ParseIP(s).Equal(ip) {
				return true
			}
		}
		return false
	}
}

func TestTraceNAT(t *testing.T) {
	tb, err := Parse("nat", natS)
	if err != nil {
		t.Fatal(err)
	}
	loc := local("10.0.0.81", "172.17.0.1", "127.0.0.1")
	in := Packet{In: "eth0", Src: net.ParseIP("203.0.113.4"), Dst: net.ParseIP("10.0.0.81"), Proto: "tcp", DPort: 8000, State: "NEW", Local: loc}
	v := tb.Trace("PREROUTING", in)
	if v.Target != "DNAT" || v.Opt("--to-destination") != "172.17.0.2:80" || strings.Join(v.Path, ">") != "PREROUTING>DOCKER" {
		t.Errorf("inbound: %+v", v)
	}
	// From a container, DOCKER returns at once: no DNAT, the policy.
	fromC := in
	fromC.In = "docker0"
	if v := tb.Trace("PREROUTING", fromC); v.Target != "ACCEPT" || !v.Policy() {
		t.Errorf("from docker0: %+v", v)
	}
	// Another port, or a destination that is not local: untouched.
	other := in
	other.DPort = 8001
	if v := tb.Trace("PREROUTING", other); v.Target != "ACCEPT" {
		t.Errorf("port 8001: %+v", v)
	}
	remote := in
	remote.Dst = net.ParseIP("10.0.0.82")
	if v := tb.Trace("PREROUTING", remote); v.Target != "ACCEPT" {
		t.Errorf("not local: %+v", v)
	}
	// OUTPUT: no in-interface, so `! -i docker0` holds; 127/8 is excluded.
	self := Packet{Src: net.ParseIP("10.0.0.81"), Dst: net.ParseIP("10.0.0.81"), Proto: "tcp", DPort: 8000, Local: loc}
	if v := tb.Trace("OUTPUT", self); v.Target != "DNAT" {
		t.Errorf("output: %+v", v)
	}
	lo := self
	lo.Dst = net.ParseIP("127.0.0.1")
	if v := tb.Trace("OUTPUT", lo); v.Target == "DNAT" {
		t.Errorf("127.0.0.1 must not be translated: %+v", v)
	}
	// POSTROUTING: out of eth0 masqueraded, across docker0 not.
	out := Packet{In: "docker0", Out: "eth0", Src: net.ParseIP("172.17.0.2"), Dst: net.ParseIP("203.0.113.4"), Proto: "icmp"}
	if v := tb.Trace("POSTROUTING", out); v.Target != "MASQUERADE" || v.Rule == nil || v.Rule.Comment() != "lab:bridge-nat" {
		t.Errorf("outbound: %+v", v)
	}
	across := out
	across.Out, across.Dst = "docker0", net.ParseIP("172.17.0.3")
	if v := tb.Trace("POSTROUTING", across); v.Target != "ACCEPT" {
		t.Errorf("across the bridge: %+v", v)
	}
}

func TestTraceFilter(t *testing.T) {
	const s = `-P INPUT ACCEPT
-P FORWARD DROP
-P OUTPUT ACCEPT
-N DOCKER
-N LOGDROP
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -p udp -m multiport --dports 53,1000:2000 -g LOGDROP
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A LOGDROP -j LOG
-A LOGDROP -j DROP
`
	tb, err := Parse("filter", s)
	if err != nil {
		t.Fatal(err)
	}
	in := Packet{In: "eth0", Out: "docker0", Src: net.ParseIP("203.0.113.4"), Dst: net.ParseIP("172.17.0.2"), Proto: "tcp", DPort: 80, State: "NEW"}
	if v := tb.Trace("FORWARD", in); v.Target != "ACCEPT" || v.Rule == nil || v.Rule.Chain != "DOCKER" {
		t.Errorf("mapped port: %+v", v)
	}
	// The pre-DNAT port does not reach FORWARD; 8000 falls to the policy.
	pre := in
	pre.DPort = 8000
	if v := tb.Trace("FORWARD", pre); v.Target != "DROP" || !v.Policy() {
		t.Errorf("port 8000: %+v", v)
	}
	reply := Packet{In: "eth0", Out: "docker0", Src: net.ParseIP("203.0.113.4"), Dst: net.ParseIP("172.17.0.2"), Proto: "icmp", State: "ESTABLISHED"}
	if v := tb.Trace("FORWARD", reply); v.Target != "ACCEPT" {
		t.Errorf("reply: %+v", v)
	}
	dns := Packet{In: "eth0", Out: "eth1", Proto: "udp", DPort: 1500, State: "NEW"}
	if v := tb.Trace("FORWARD", dns); v.Target != "DROP" || v.Rule == nil || v.Rule.Chain != "LOGDROP" {
		t.Errorf("goto, multiport range and a non-terminal LOG: %+v", v)
	}
	// A match Trace does not know never matches.
	odd, _ := Parse("filter", "-P FORWARD ACCEPT\n-A FORWARD -m physdev --physdev-in veth1 -j DROP\n")
	if v := odd.Trace("FORWARD", in); v.Target != "ACCEPT" {
		t.Errorf("unknown match: %+v", v)
	}
}
