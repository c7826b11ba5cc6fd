package iptables

import (
	"fmt"
	"io"
	"strings"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/op"
	goipt "github.com/coreos/go-iptables/iptables"
)

// Every op runs on a host, in its own namespace (ns == "") or in one made
// on it with `ip netns add`, and prints `ip netns exec NS` for the latter.

// Append is `iptables [-t TABLE] -A CHAIN SPEC`. A rule that is there
// already (same spec, same comment) is not added twice.
func Append(h *host.Host, ns string, r Rule) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  netops.In(ns, r.Command("-A")),
		Do: func(io.Writer) error {
			return In(h.NetnsPath(ns), func(t *goipt.IPTables) error {
				if err := t.AppendUnique(r.Table, r.Chain, r.Spec...); err != nil {
					return fmt.Errorf("failed to add %q: %w", r.Line(), err)
				}
				return nil
			})
		},
	}
}

// Delete is `iptables [-t TABLE] -D CHAIN SPEC`: it removes the first rule
// with exactly this spec (comment included, so a student's untagged copy
// of a tagged rule stays). A rule or chain that is not there is success.
func Delete(h *host.Host, ns string, r Rule) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  netops.In(ns, r.Command("-D")),
		Do: func(io.Writer) error {
			return In(h.NetnsPath(ns), func(t *goipt.IPTables) error {
				err := t.Delete(r.Table, r.Chain, r.Spec...)
				if err != nil && !notExist(err) {
					return fmt.Errorf("failed to delete %q: %w", r.Line(), err)
				}
				return nil
			})
		},
	}
}

// NewChain is `iptables [-t TABLE] -N CHAIN`; an existing chain is success.
func NewChain(h *host.Host, ns, table, chain string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  netops.In(ns, Cmd(table, "-N", chain)),
		Do: func(io.Writer) error {
			return In(h.NetnsPath(ns), func(t *goipt.IPTables) error {
				ok, err := t.ChainExists(table, chain)
				if err != nil || ok {
					return err
				}
				if err := t.NewChain(table, chain); err != nil && !exists(err) {
					return fmt.Errorf("failed to create chain %q in %s: %w", chain, table, err)
				}
				return nil
			})
		},
	}
}

// DeleteChain is `iptables [-t TABLE] -X CHAIN`. The kernel refuses to
// delete a chain that still holds rules or that a rule jumps to; such a
// chain is left where it is, and the op says so instead of failing, since
// what is left belongs to someone else. A missing chain is success.
func DeleteChain(h *host.Host, ns, table, chain string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  netops.In(ns, Cmd(table, "-X", chain)),
		Do: func(out io.Writer) error {
			return In(h.NetnsPath(ns), func(t *goipt.IPTables) error {
				ok, err := t.ChainExists(table, chain)
				if err != nil || !ok {
					return err
				}
				rules, err := t.List(table, chain)
				if err != nil {
					return err
				}
				if n := len(rules) - 1; n > 0 { // the first line is -N CHAIN
					fmt.Fprintf(out, "left chain %s in place: it still holds %d rule(s) the lesson did not add\n", chain, n)
					return nil
				}
				if err := t.DeleteChain(table, chain); err != nil {
					// Legacy iptables says "Too many links", nft "busy".
					if m := err.Error(); strings.Contains(m, "busy") || strings.Contains(m, "in use") || strings.Contains(m, "Too many links") {
						fmt.Fprintf(out, "left chain %s in place: a rule the lesson did not add jumps to it\n", chain)
						return nil
					}
					return fmt.Errorf("failed to delete chain %q in %s: %w", chain, table, err)
				}
				return nil
			})
		},
	}
}

// Policy is `iptables [-t TABLE] -P CHAIN TARGET`: what a built-in chain
// does with a packet no rule decided.
func Policy(h *host.Host, ns, table, chain, target string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  netops.In(ns, Cmd(table, "-P", chain, target)),
		Do: func(io.Writer) error {
			return In(h.NetnsPath(ns), func(t *goipt.IPTables) error {
				if err := t.ChangePolicy(table, chain, target); err != nil {
					return fmt.Errorf("failed to set the policy of %s to %s: %w", chain, target, err)
				}
				return nil
			})
		},
	}
}

// List is `iptables [-t TABLE] -L CHAIN -n -v -x`: the chain with its
// packet and byte counters, as iptables prints it.
func List(h *host.Host, ns, table, chain string) op.Op {
	table = orFilter(table)
	args := []string{"-L", chain, "-n", "-v", "-x"}
	return op.Op{
		Host: h.Name,
		Cmd:  netops.In(ns, Cmd(table, args...)),
		Do: func(out io.Writer) error {
			stdout, _, err := Run(h.NetnsPath(ns), "iptables", append([]string{"-t", table}, args...)...)
			if err != nil {
				return err
			}
			// iptables pads its columns; trailing blanks are noise.
			for _, l := range strings.Split(strings.TrimRight(stdout, "\n"), "\n") {
				fmt.Fprintln(out, strings.TrimRight(l, " "))
			}
			return nil
		},
	}
}

// ListRules is `iptables [-t TABLE] -S [CHAIN]`: the rules as commands.
func ListRules(h *host.Host, ns, table, chain string) op.Op {
	table = orFilter(table)
	args := []string{"-S"}
	if chain != "" {
		args = append(args, chain)
	}
	return op.Op{
		Host: h.Name,
		Cmd:  netops.In(ns, Cmd(table, args...)),
		Do: func(out io.Writer) error {
			t, err := Read(h.NetnsPath(ns), table)
			if err != nil {
				return err
			}
			for _, l := range t.Lines(chain) {
				fmt.Fprintln(out, l)
			}
			return nil
		},
	}
}

// Read reads a table of the namespace at nsPath (`iptables -t TABLE -S`).
func Read(nsPath, table string) (*Table, error) {
	table = orFilter(table)
	stdout, _, err := Run(nsPath, "iptables", "-t", table, "-S")
	if err != nil {
		return nil, err
	}
	return Parse(table, stdout)
}

// Tagged lists the rules of a table that carry the comment tag.
func Tagged(nsPath, table, tag string) ([]Line, error) {
	t, err := Read(nsPath, table)
	if err != nil {
		return nil, err
	}
	var out []Line
	for _, l := range t.Rules {
		if l.Comment() == tag {
			out = append(out, l)
		}
	}
	return out, nil
}

func orFilter(table string) string {
	if table == "" {
		return "filter"
	}
	return table
}
