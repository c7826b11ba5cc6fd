// Package iptables is iptables as the lessons use it: each op returns the
// `iptables` command a person types and runs the real iptables binary (via
// coreos/go-iptables) inside a host's network namespace. Rules are per
// network namespace, like routes: a rule added for docker01 lives in
// docker01's namespace and nowhere else.
//
// The package also reads rules back (`iptables -S`) and walks a packet
// through them (Trace), which is how a self-check tells "FORWARD drops the
// mapped port" from "the DNAT goes to the wrong address".
package iptables

import (
	"regexp"
	"slices"
	"strings"

	"github.com/containers-underneath/lab/primitives/op"
)

// Rule is one rule as a person types it: the table, the chain, and the
// words after the chain.
type Rule struct {
	Table string // "filter" or "nat"
	Chain string
	Spec  []string // e.g. -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
}

// R builds a rule.
func R(table, chain string, spec ...string) Rule {
	return Rule{Table: table, Chain: chain, Spec: spec}
}

// Tagged returns r with `-m comment --comment TAG` before its target, so
// that cleanup can tell the lab's rules from anyone else's (a rule is
// deleted by its full spec, comment included).
func (r Rule) Tagged(tag string) Rule {
	i := slices.Index(r.Spec, "-j")
	if i < 0 {
		i = slices.Index(r.Spec, "-g")
	}
	if i < 0 {
		i = len(r.Spec)
	}
	spec := append([]string{}, r.Spec[:i]...)
	spec = append(spec, "-m", "comment", "--comment", tag)
	r.Spec = append(spec, r.Spec[i:]...)
	return r
}

// With returns r with every word equal to from replaced by to: a rule
// printed with a shell variable ($HOSTPORT) is run with its value.
func (r Rule) With(from, to string) Rule {
	spec := make([]string, len(r.Spec))
	for i, w := range r.Spec {
		if w == from {
			w = to
		}
		spec[i] = w
	}
	r.Spec = spec
	return r
}

// Command renders the rule as the iptables command for verb (-A, -D, -C,
// -I): `iptables -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j
// MASQUERADE`. The filter table, being the default, is left out.
func (r Rule) Command(verb string) string {
	return Cmd(r.Table, append([]string{verb, r.Chain}, r.Spec...)...)
}

// Line is the rule as `iptables -S` prints it (without -m tcp, which
// iptables adds by itself for --dport).
func (r Rule) Line() string { return "-A " + r.Chain + " " + words(r.Spec) }

// Cmd renders `iptables [-t TABLE] ARGS...`.
func Cmd(table string, args ...string) string {
	s := "iptables "
	if table != "" && table != "filter" {
		s += "-t " + table + " "
	}
	return s + words(args)
}

var shellVar = regexp.MustCompile(`^\$[A-Z_][A-Z0-9_]*$`)

// words joins shell words: `!` stays bare, as iptables' documentation
// writes it, and a shell variable is double-quoted so that bash expands it.
func words(ws []string) string {
	q := make([]string, len(ws))
	for i, w := range ws {
		switch {
		case w == "!":
			q[i] = w
		case shellVar.MatchString(w):
			q[i] = `"` + w + `"`
		default:
			q[i] = op.Quote(w)
		}
	}
	return strings.Join(q, " ")
}
