package iptables

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/op"
)

// Conntrack is `conntrack -L ARGS` in ns: the connection tracking table,
// where NAT keeps the translation of every connection it rewrote. Each
// entry is the original tuple (as the first packet left its sender) and
// the reply tuple (as the answer will arrive): with MASQUERADE, the reply
// goes to the host's address; with DNAT, it comes from the container's.
// It runs the real conntrack tool and prints what it prints.
func Conntrack(h *host.Host, ns string, args ...string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  netops.In(ns, op.Join(append([]string{"conntrack", "-L"}, args...)...)),
		Do: func(out io.Writer) error {
			stdout, stderr, err := Run(h.NetnsPath(ns), "conntrack", append([]string{"-L"}, args...)...)
			if err != nil {
				return err
			}
			fmt.Fprint(out, stdout)
			fmt.Fprint(out, stderr) // "N flow entries have been shown."
			return nil
		},
	}
}

// Flow is one conntrack entry.
type Flow struct {
	Proto       string
	State       string // TCP state (ESTABLISHED, TIME_WAIT, ...), "" for others
	Orig, Reply Tuple
	Assured     bool
	Unreplied   bool
}

// Tuple is one direction of a flow.
type Tuple struct {
	Src, Dst     string
	SPort, DPort int
}

// Flows reads the table in the namespace at nsPath (`conntrack -L ARGS`).
func Flows(nsPath string, args ...string) ([]Flow, error) {
	stdout, _, err := Run(nsPath, "conntrack", append([]string{"-L"}, args...)...)
	if err != nil {
		return nil, err
	}
	return ParseFlows(stdout), nil
}

// ParseFlows reads conntrack -L output: `tcp 6 119 TIME_WAIT src=...
// dst=... sport=... dport=... src=... [ASSURED] mark=0 use=1`.
func ParseFlows(text string) []Flow {
	var flows []Flow
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || !strings.Contains(line, " src=") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		fl := Flow{Proto: f[0]}
		cur := &fl.Orig
		seen := map[string]bool{}
		for _, w := range f[3:] {
			k, v, ok := strings.Cut(w, "=")
			switch {
			case !ok && w == "[ASSURED]":
				fl.Assured = true
			case !ok && w == "[UNREPLIED]":
				fl.Unreplied = true
			case !ok && fl.State == "" && !seen["src"]:
				fl.State = w
			case k == "src":
				if seen["src"] {
					cur = &fl.Reply
				}
				seen["src"] = true
				cur.Src = v
			case k == "dst":
				cur.Dst = v
			case k == "sport":
				cur.SPort, _ = strconv.Atoi(v)
			case k == "dport":
				cur.DPort, _ = strconv.Atoi(v)
			}
		}
		flows = append(flows, fl)
	}
	return flows
}
