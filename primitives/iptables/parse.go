package iptables

import (
	"fmt"
	"slices"
	"strings"
)

// Table is one table as `iptables -t TABLE -S` prints it.
type Table struct {
	Name     string
	Policies map[string]string // built-in chain -> ACCEPT / DROP
	Chains   []string          // user chains, in order
	Rules    []Line            // every -A line, in order
}

// Line is one rule read back from the kernel.
type Line struct {
	Chain string
	Args  []string // the words after the chain
	Text  string   // the line as iptables printed it
}

// Parse reads the output of `iptables -t TABLE -S`.
func Parse(table, text string) (*Table, error) {
	t := &Table{Name: table, Policies: map[string]string{}}
	for n, raw := range strings.Split(text, "\n") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		w, err := split(raw)
		if err != nil {
			return nil, fmt.Errorf("line %d of iptables -S: %w", n+1, err)
		}
		switch {
		case len(w) == 3 && w[0] == "-P":
			t.Policies[w[1]] = w[2]
		case len(w) == 2 && w[0] == "-N":
			t.Chains = append(t.Chains, w[1])
		case len(w) >= 2 && w[0] == "-A":
			t.Rules = append(t.Rules, Line{Chain: w[1], Args: w[2:], Text: raw})
		default:
			return nil, fmt.Errorf("line %d of iptables -S: unexpected %q", n+1, raw)
		}
	}
	return t, nil
}

// split cuts a line of iptables -S into words: iptables double-quotes
// words with blanks (comments) and escapes quotes inside with a backslash.
func split(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			quoted = !quoted
			inWord = true
		case !quoted && (c == ' ' || c == '\t'):
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// Chain returns the rules of one chain, in order.
func (t *Table) Chain(name string) []Line {
	var out []Line
	for _, l := range t.Rules {
		if l.Chain == name {
			out = append(out, l)
		}
	}
	return out
}

// HasChain reports whether a user chain exists.
func (t *Table) HasChain(name string) bool { return slices.Contains(t.Chains, name) }

// Lines renders the table (or one chain of it) as iptables -S does.
func (t *Table) Lines(chain string) []string {
	var out []string
	for _, c := range builtins[t.Name] {
		if chain == "" || chain == c {
			if p, ok := t.Policies[c]; ok {
				out = append(out, "-P "+c+" "+p)
			}
		}
	}
	for _, c := range t.Chains {
		if chain == "" || chain == c {
			out = append(out, "-N "+c)
		}
	}
	for _, l := range t.Rules {
		if chain == "" || chain == l.Chain {
			out = append(out, l.Text)
		}
	}
	return out
}

var builtins = map[string][]string{
	"filter": {"INPUT", "FORWARD", "OUTPUT"},
	"nat":    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"raw":    {"PREROUTING", "OUTPUT"},
}

// Target is the rule's -j (or -g) target and the options after it:
// ("DNAT", ["--to-destination", "172.17.0.2:80"]).
func (l Line) Target() (string, []string) {
	for i := 0; i+1 < len(l.Args); i++ {
		if l.Args[i] == "-j" || l.Args[i] == "-g" || l.Args[i] == "--jump" || l.Args[i] == "--goto" {
			return l.Args[i+1], l.Args[i+2:]
		}
	}
	return "", nil
}

// Goto reports whether the rule uses -g rather than -j.
func (l Line) Goto() bool { return slices.Contains(l.Args, "-g") || slices.Contains(l.Args, "--goto") }

// Opt returns the value of an option and whether it was negated with `!`:
// Opt("-o") on `-s 172.17.0.0/16 ! -o docker0` is ("docker0", true, true).
func (l Line) Opt(name string) (value string, neg, ok bool) {
	for i := 0; i+1 < len(l.Args); i++ {
		if l.Args[i] == name {
			return l.Args[i+1], i > 0 && l.Args[i-1] == "!", true
		}
	}
	return "", false, false
}

// Comment is the rule's -m comment text, if any.
func (l Line) Comment() string {
	v, _, _ := l.Opt("--comment")
	return v
}

// Spec is the rule as words to hand back to iptables -D.
func (l Line) Spec() []string { return l.Args }

// Command is the rule as an iptables command for verb (-D to delete it).
func (l Line) Command(table, verb string) string {
	return Rule{Table: table, Chain: l.Chain, Spec: l.Args}.Command(verb)
}
