package engine

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/containers-underneath/lab/primitives/op"
)

// DryRun prints the lesson as a bash script to run on its main host (inside
// `lab LESSON shell`): every step up to the end state `check` grades, then
// the document's teardown, commented out. It touches nothing.
func DryRun(l *Lesson, w io.Writer) error { return WriteScript(l, w, false) }

// WriteScript writes the lesson as a bash script; with teardown true the
// document's cleanup runs too (benchmarks compare whole lessons).
//
// The script runs on the main host. A run of commands on another host is
// marked `# on docker02` and goes to that host through `lab LESSON shell
// --host docker02`, which works from inside the main host's shell too, so
// one script builds the whole world.
func WriteScript(l *Lesson, w io.Writer, teardown bool) error {
	s := l.Build(l.bind(nil))
	fmt.Fprintf(w, "#!/usr/bin/env bash\n")
	fmt.Fprintf(w, "# lab %s: %s\n", l.Name, l.Title())
	fmt.Fprintf(w, "# Source documents: %s\n", l.Sources)
	// The script goes in as an argument: the host has its own /root, /tmp
	// and /home, where a file saved on the machine is not.
	fmt.Fprintf(w, "# Run it on %s, the lesson's simulated host, from any directory:\n", l.Main)
	fmt.Fprintf(w, "#   sudo lab %s shell -- bash -c \"$(lab %s --dry-run)\" && sudo lab %s check\n", l.Name, l.Name, l.Name)
	if others := otherHosts(l, s); len(others) > 0 {
		fmt.Fprintf(w, "# The parts marked '# on HOST' run on %s through 'lab %s shell --host HOST'.\n", strings.Join(others, " and "), l.Name)
	}
	fmt.Fprintf(w, "set -euo pipefail\n")
	for i, st := range s.Steps {
		fmt.Fprintf(w, "\n# Step %d: %s\n", i+1, l.Text.Title(st.ID))
		writeActions(w, l, st.Actions, "")
	}
	if len(s.Teardown.Actions) > 0 {
		comment := "# "
		if teardown {
			comment = ""
			fmt.Fprintf(w, "\n# Teardown (%s):\n", l.Text.Title(s.Teardown.ID))
		} else {
			fmt.Fprintf(w, "\n# Teardown (%s); uncomment to undo the lesson:\n", l.Text.Title(s.Teardown.ID))
		}
		writeActions(w, l, s.Teardown.Actions, comment)
	}
	return nil
}

// otherHosts are the hosts other than the main one that s types on.
func otherHosts(l *Lesson, s *Script) []string {
	var out []string
	for _, st := range append(s.Steps, s.Teardown) {
		for _, a := range st.Actions {
			if h := l.HostOf(a.Op); h != l.Main && !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	return out
}

// writeActions writes actions as bash, each line prefixed by comment. A run
// of actions on one host other than the main one is one block sent to that
// host: a single command through `bash -c`, several through a here-document.
func writeActions(w io.Writer, l *Lesson, actions []Action, comment string) {
	for i := 0; i < len(actions); {
		h := l.HostOf(actions[i].Op)
		j := i + 1
		for j < len(actions) && l.HostOf(actions[j].Op) == h {
			j++
		}
		run := actions[i:j]
		i = j
		if h == l.Main {
			for _, a := range run {
				fmt.Fprintf(w, "%s%s\n", comment, scriptLine(a))
			}
			continue
		}
		fmt.Fprintf(w, "%s# on %s\n", comment, h)
		enter := fmt.Sprintf("lab %s shell --host %s --", l.Name, h)
		if len(run) == 1 {
			fmt.Fprintf(w, "%s%s bash -c %s\n", comment, enter, op.Quote(scriptLine(run[0])))
			continue
		}
		fmt.Fprintf(w, "%s%s bash -euo pipefail <<'ON_%s'\n", comment, enter, hereTag(h))
		for _, a := range run {
			fmt.Fprintf(w, "%s%s\n", comment, scriptLine(a))
		}
		fmt.Fprintf(w, "%sON_%s\n", comment, hereTag(h))
	}
}

// hereTag is a host name as a here-document delimiter.
func hereTag(h string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, h)
}

// scriptLine is one action as a line of bash.
func scriptLine(a Action) string {
	cmd := a.Op.Cmd
	if a.Expect == MayFail {
		return fmt.Sprintf("%s || true  # %s", cmd, a.Why)
	}
	if a.Expect == Fails {
		return fmt.Sprintf("%s || echo %s", cmd, op.Quote("(fails, as expected: "+strings.TrimSuffix(a.Why, ".")+")"))
	}
	return cmd
}
